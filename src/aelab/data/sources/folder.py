"""Image folders as a source: your own photos, decoded once with Pillow into memory and into a disk cache.

Layout (torchvision's ``ImageFolder`` / anomalib's ``Folder`` convention):

* **class folders**: when ``root`` has at least one non-hidden sub-folder, every non-hidden sub-folder is
  a class; ``class_names`` are the folder names sorted as Python sorts strings (case-sensitive, like
  torchvision: ``Faces`` before ``accordion``), the label of an image is the index of its class folder.
  Images are found recursively inside a class folder (its sub-folders belong to the class). Image files
  lying directly in ``root`` next to class folders belong to no class: they are left out, with a warning
  that gives their count and first names. A class folder without any image is an error (the labels would
  no longer match the folder list).
* **flat folder**: when ``root`` has no sub-folder, its images form one unlabeled set
  (``class_names == ()``, every label ``-1``).

Which files are images: a name ending in one of :data:`IMAGE_SUFFIXES` in any letter case (``.JPG``
counts); a file *without any extension* is opened and counts when its first bytes are the signature of
one of those formats (so Caltech-101's ``BACKGROUND_Google/tmp``, a JPEG, is an image and the folder
has 9,145 images). Files and folders whose name starts with ``"."`` are skipped; every other file
(``notes.txt``, ``Thumbs.db``) is ignored. The counts of what was ignored are printed once per load.

Order: images are ordered by label, then by path (compared folder by folder), so the same folder always
gives the same order, the same seeded splits, and the same cache key. ``ImageSet.names`` are the paths
relative to ``root`` in POSIX form (``cat/img_01.jpg``).

Decoding: :func:`aelab.data.sources.decode.decode_image` (mode conversion to ``L`` / ``RGB``, an
antialiased resize by the ``resize`` policy), in ``num_workers`` processes, each decoding chunks of files
into uint8 arrays; a progress bar (tqdm) when stderr is a terminal, a start and an end line otherwise.

Disk cache: one uncompressed ``.npz`` per folder and settings in ``cache_dir`` holding the images
``(N, C, H, W)`` uint8, the labels and a JSON record (names, class names, undecodable files). Its file
name is the sha256 of the cache format version, the Pillow version, the resolved root, the sorted
relative paths with each file's size and ``mtime_ns``, the channels, size and resize policy: any
changed, added or removed file, or another setting, gives another file name (the stale file of the same
root and settings is then deleted). The file is written atomically (a temporary file in the same folder
and ``os.replace``); a corrupt or inconsistent cache file is reported with a warning and rebuilt. Reading
the cache of ~9,000 96x96 RGB images takes well under a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aelab.data.errors import DataError
from aelab.data.sources.base import ImageSet, ImageSource
from aelab.data.sources.decode import check_options, decode_files, decode_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""File name endings of images (compared in lower case)."""

SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
"""First bytes of JPEG, PNG, GIF, BMP and TIFF files (WebP: ``RIFF....WEBP``, checked apart)."""

CACHE_VERSION = 1
"""Bumped whenever the cache layout or the decoding changes, so old cache files are never read."""

ON_ERROR = ("raise", "skip")
MAX_CHUNK = 128  # files per task sent to a decoding process (fewer, larger messages; still a smooth progress bar)


def looks_like_image(path: str | os.PathLike) -> bool:
    """Whether the file starts with the signature of an accepted image format (for files without extension)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head.startswith(SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else ('es' if word.endswith('s') else 's')}"


def _examples(names: Sequence[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + (", ..." if len(names) > k else "")


@dataclass
class FolderScan:
    """What :func:`scan_folder` found (nothing decoded yet).

    Attributes:
        root: the folder as given.
        class_names: sorted class folder names (``()`` for a flat folder).
        names: image paths relative to ``root`` (POSIX), ordered by label then path.
        labels: one class id per name (``-1`` in a flat folder).
        stats: ``(size in bytes, mtime_ns)`` per name (the cache key).
        ignored: relative paths of the files left out (not an image, or hidden).
        hidden_dirs: relative paths of the hidden folders not entered.
        loose: image files directly in ``root`` next to class folders (left out).
        sniffed: images recognised by content (no extension).
    """

    root: Path
    class_names: tuple[str, ...]
    names: list[str]
    labels: list[int]
    stats: list[tuple[int, int]]
    ignored: list[str] = field(default_factory=list)
    hidden_dirs: list[str] = field(default_factory=list)
    loose: list[str] = field(default_factory=list)
    sniffed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: images, classes and what was ignored."""
        where = f"in {_plural(len(self.class_names), 'class')}" if self.class_names else "(flat folder, unlabeled)"
        notes = []
        if self.ignored:
            notes.append(f"{_plural(len(self.ignored), 'file')} ignored: not an image or hidden, e.g. "
                         f"{_examples(self.ignored, 3)}")
        if self.hidden_dirs:
            notes.append(f"{_plural(len(self.hidden_dirs), 'hidden folder')} skipped")
        if self.loose:
            notes.append(f"{_plural(len(self.loose), 'image')} directly in the root left out: not in a class folder")
        if self.sniffed:
            notes.append(f"{_plural(len(self.sniffed), 'file')} without extension read as image: "
                         f"{_examples(self.sniffed, 3)}")
        return (f"ImageFolder {self.root}: {_plural(len(self.names), 'image')} {where}"
                + (f" ({'; '.join(notes)})" if notes else ""))


def _is_image(name: str, path: str, scan: FolderScan, rel: str) -> bool:
    """Classifies one non-hidden file; records it in ``scan.ignored`` / ``scan.sniffed``."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    if suffix == "" and looks_like_image(path):
        scan.sniffed.append(rel)
        return True
    scan.ignored.append(rel)
    return False


def scan_folder(root: str | os.PathLike) -> FolderScan:
    """List the images of ``root`` (module docstring: layout, which files count, order); decodes nothing.

    Raises:
        DataError: ``root`` missing or not a folder; no image found (naming the folder and the accepted
            extensions); class folders without any image (naming them).
    """
    root_path = Path(root)
    if not root_path.exists():
        raise DataError(f"{root}: no such folder (ImageFolder root)")
    if not root_path.is_dir():
        raise DataError(f"{root}: not a folder (ImageFolder expects a folder of images or of class folders)")
    try:
        entries = sorted(os.scandir(root_path), key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"{root}: cannot list folder ({err})") from err
    scan = FolderScan(root_path, (), [], [], [])
    class_dirs = [e for e in entries if not e.name.startswith(".") and e.is_dir()]
    scan.hidden_dirs = [e.name for e in entries if e.name.startswith(".") and e.is_dir()]
    scan.class_names = tuple(e.name for e in class_dirs)
    found: list[tuple[int, tuple[str, ...], str]] = []  # (label, path parts for sorting, absolute path)
    for e in entries:  # files directly in root
        if e.is_dir():
            continue
        if e.name.startswith("."):
            scan.ignored.append(e.name)
        elif _is_image(e.name, e.path, scan, e.name):
            if class_dirs:
                scan.loose.append(e.name)
            else:
                found.append((-1, (e.name,), e.path))
    empty = []
    for label, d in enumerate(class_dirs):
        n_before = len(found)
        for dirpath, dirnames, filenames in os.walk(d.path, followlinks=True):
            rel_dir = Path(dirpath).relative_to(root_path).as_posix()
            scan.hidden_dirs += [f"{rel_dir}/{n}" for n in dirnames if n.startswith(".")]
            dirnames[:] = [n for n in dirnames if not n.startswith(".")]
            for name in filenames:
                rel = f"{rel_dir}/{name}"
                path = os.path.join(dirpath, name)
                if name.startswith("."):
                    scan.ignored.append(rel)
                elif _is_image(name, path, scan, rel):
                    found.append((label, tuple(rel.split("/")), path))
        if len(found) == n_before:
            empty.append(d.name)
    accepted = (f"accepted: {', '.join(IMAGE_SUFFIXES)} in any letter case, or a file without extension "
                "whose content is one of these formats; names starting with '.' are skipped")
    if not found:
        raise DataError(f"{root}: no images found ({accepted}; "
                        f"{_plural(len(scan.ignored), 'file')} ignored)")
    if empty:
        raise DataError(f"{root}: class folder(s) without images: {_examples(empty, 10)} ({accepted}); "
                        "remove them or add images, since every sub-folder of the root is a class")
    found.sort(key=lambda t: (t[0], t[1]))
    for label, parts, path in found:
        try:
            st = os.stat(path)
        except OSError as err:
            raise DataError(f"{path}: cannot read file ({err})") from err
        scan.names.append("/".join(parts))
        scan.labels.append(label)
        scan.stats.append((st.st_size, st.st_mtime_ns))
    scan.ignored.sort()
    return scan


def _decode_chunk(paths: list[str], channels: int, size: tuple[int, int], resize: str, stop_on_error: bool
                  ) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decodes ``paths`` into uint8 ``(n, C, H, W)`` (zeros where a file failed) and ``(index, message)``
    of the failures; stops at the first failure if ``stop_on_error``. Runs in a decoding process."""
    out = np.zeros((len(paths), channels, *size), dtype=np.uint8)
    errors = []
    for i, path in enumerate(paths):
        try:
            out[i] = decode_image(path, channels, size, resize)
        except DataError as err:
            errors.append((i, str(err)))
            if stop_on_error:
                break
    return out, errors


class ImageFolder(ImageSource):
    """A folder with one sub-folder per class, or a flat folder of unlabeled images (label -1); see the
    module docstring for the layout, which files count, the order and the cache.

    Args:
        root: the folder.
        image_size: output size in pixels, ``S`` (square) or ``[H, W]``.
        channels: 1 (grey, Pillow's ``L``) or 3 (RGB); every image is converted.
        resize: ``stretch`` (to ``H x W``, ignoring the aspect ratio), ``center_crop`` (keep the aspect
            ratio, cover ``H x W``, crop the middle) or ``pad`` (keep the aspect ratio, fit inside, pad with
            black); antialiased (Lanczos); or ``none`` (every image must already be ``H x W``). See
            :mod:`aelab.data.sources.decode`.
        cache_dir: folder of the decoded-image cache (``None``: no disk cache).
        num_workers: decoding processes on a cold load (0 or 1: in this process).
        on_error: ``raise`` (a file that cannot be decoded is a :class:`DataError` naming it) or ``skip``
            (such files are left out, with a warning giving their count and first five names).

    Raises:
        ValueError: an invalid ``image_size``, ``channels``, ``resize``, ``num_workers`` or ``on_error``.
    """

    def __init__(self, root: str, image_size: int | list[int] = 64, channels: int = 3, resize: str = "stretch",
                 cache_dir: str | None = ".cache/aelab", num_workers: int = 2, on_error: str = "raise") -> None:
        size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
        if len(size) != 2:
            raise ValueError(f"image_size must be S or [H, W], got {image_size!r}")
        self.size = check_options(channels, size, resize)
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        self.root, self.channels, self.resize = root, channels, resize
        self.cache_dir, self.num_workers, self.on_error = cache_dir, num_workers, on_error
        self._set: ImageSet | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images (known before loading)."""
        return (self.channels, *self.size)

    def describe(self) -> str:
        c, h, w = self.input_shape
        return f"image folder {self.root} ({c}x{h}x{w}, resize={self.resize})"

    def read_files(self, paths: list[Path]) -> torch.Tensor:
        """New image files decoded as this folder's images (same channels, size and resize policy), in this
        process: uint8 ``(N, C, H, W)``.

        Raises:
            DataError: a file that cannot be decoded (named).
        """
        return decode_files(paths, self.channels, self.size, self.resize)

    # -- loading ----------------------------------------------------------------------------------------
    def load(self) -> ImageSet:
        """Every image of the folder in memory: uint8 ``(N, C, H, W)``, labels, class names, names
        (relative paths); from the disk cache when it is valid, otherwise decoded (and cached). Kept in the
        instance: later calls return the same :class:`ImageSet` without touching the disk.

        Raises:
            DataError: a missing root, no images, a class folder without images, or (``on_error="raise"``)
                a file that cannot be decoded (named).
        """
        if self._set is not None:
            return self._set
        scan = scan_folder(self.root)
        print(scan.summary(), flush=True)
        if scan.loose:
            warnings.warn(f"ImageFolder {self.root}: {_plural(len(scan.loose), 'image')} directly in the root "
                          f"next to class folders (in no class, left out): {_examples(scan.loose)}",
                          stacklevel=2)
        key = self.cache_key(scan)
        path = self.cache_path(key)
        cached = self._read_cache(path, scan, key) if path is not None else None
        if cached is not None:
            images, failed = cached
        else:
            images, failed = self._decode(scan)
            if path is not None:
                self._write_cache(path, images, scan, failed, key)
        self._set = self._finish(scan, images, failed)
        return self._set

    def cache_key(self, scan: FolderScan) -> str:
        """sha256 (hex) of everything the decoded images depend on (module docstring)."""
        import PIL

        h = hashlib.sha256()
        head = {"version": CACHE_VERSION, "pillow": PIL.__version__, "root": str(Path(self.root).resolve()),
                "channels": self.channels, "size": list(self.size), "resize": self.resize}
        h.update(json.dumps(head, sort_keys=True).encode())
        for name, (size, mtime) in zip(scan.names, scan.stats):
            h.update(f"\n{name}\0{size}\0{mtime}".encode())
        return h.hexdigest()

    def _settings_id(self) -> str:
        """Short hash of root and settings: the cache files of one folder and settings share it."""
        text = json.dumps([CACHE_VERSION, str(Path(self.root).resolve()), self.channels, list(self.size),
                           self.resize])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def cache_path(self, key: str) -> Path | None:
        """The cache file for ``key`` (``None`` without a ``cache_dir``)."""
        if self.cache_dir is None:
            return None
        return Path(self.cache_dir) / f"imagefolder-{self._settings_id()}-{key}.npz"

    def _read_cache(self, path: Path, scan: FolderScan, key: str) -> tuple[np.ndarray, list[tuple[int, str]]] | None:
        """``(images, failures)`` from a valid cache file; ``None`` when absent, or corrupt (with a warning)."""
        if not path.is_file():
            return None
        start = time.perf_counter()
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(data["meta"].tobytes().decode())
                images = data["images"]
                labels = data["labels"]
            failed = [(int(i), str(m)) for i, m in meta["failed"]]
            bad = {i for i, _ in failed}
            keep = [i for i in range(len(scan.names)) if i not in bad]
            expected_shape = (len(keep), *self.input_shape)
            problems = [what for what, ok in (
                ("key", meta.get("key") == key and meta.get("version") == CACHE_VERSION),
                ("names", meta.get("names") == scan.names),
                ("class names", tuple(meta.get("class_names", ())) == scan.class_names),
                ("image array", images.dtype == np.uint8 and images.shape == expected_shape),
                ("labels", labels.tolist() == [scan.labels[i] for i in keep]),
            ) if not ok]
            if problems:
                raise ValueError(f"content does not match the folder ({', '.join(problems)})")
        except Exception as err:  # noqa: BLE001 - any unreadable cache is rebuilt, never trusted
            warnings.warn(f"ImageFolder {self.root}: cache file {path} ignored ({type(err).__name__}: {err}); "
                          "decoding the images again", stacklevel=3)
            return None
        print(f"ImageFolder {self.root}: {len(images)} images read from cache {path} "
              f"({time.perf_counter() - start:.2f} s)", flush=True)
        return images, failed

    def _write_cache(self, path: Path, images: np.ndarray, scan: FolderScan, failed: list[tuple[int, str]],
                     key: str) -> None:
        """Atomic write (temporary file + ``os.replace``); then deletes stale files of the same root and
        settings. A failure to write is a warning, never an error."""
        bad = {i for i, _ in failed}
        meta = {"version": CACHE_VERSION, "key": key, "root": str(self.root), "names": scan.names,
                "class_names": list(scan.class_names), "failed": [list(f) for f in failed]}
        labels = np.array([lab for i, lab in enumerate(scan.labels) if i not in bad], dtype=np.int64)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, images=images, labels=labels,
                         meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
            os.replace(tmp, path)
            tmp = None
            for old in path.parent.glob(f"imagefolder-{self._settings_id()}-*.npz"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError as err:
            warnings.warn(f"ImageFolder {self.root}: cannot write cache file {path} ({err}); continuing without it",
                          stacklevel=3)
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)

    def _decode(self, scan: FolderScan) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Decodes every file of ``scan``: ``(images (N', C, H, W) uint8 of the decoded files, failures as
        (index into scan.names, message))``. With ``on_error="raise"`` the first failure raises."""
        from tqdm.auto import tqdm

        n = len(scan.names)
        paths = [str(scan.root / name) for name in scan.names]
        workers = self.num_workers if self.num_workers > 1 and n > 1 else 1
        chunk = max(1, min(MAX_CHUNK, -(-n // (4 * workers))))
        starts = list(range(0, n, chunk))
        workers = min(workers, len(starts))
        stop = self.on_error == "raise"
        c, h, w = self.input_shape
        bar_on = sys.stderr.isatty()
        how = f"{workers} processes" if workers > 1 else "in this process"
        if not bar_on:
            print(f"ImageFolder {self.root}: decoding {_plural(n, 'image')} to {c}x{h}x{w} "
                  f"(resize={self.resize}, {how})", flush=True)
        start_time = time.perf_counter()
        out = np.empty((n, c, h, w), dtype=np.uint8)
        failed: list[tuple[int, str]] = []
        args = (self.channels, self.size, self.resize, stop)
        with tqdm(total=n, desc=f"decoding {Path(self.root).name}", unit="img", disable=not bar_on,
                  file=sys.stderr) as bar:
            if workers == 1:
                for s in starts:
                    part, errors = _decode_chunk(paths[s:s + chunk], *args)
                    self._collect(out, failed, s, part, errors, scan)
                    bar.update(len(part))
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    pending = {pool.submit(_decode_chunk, paths[s:s + chunk], *args): s for s in starts}
                    try:
                        while pending:
                            done, _ = wait(pending, return_when=FIRST_COMPLETED)
                            for future in done:
                                s = pending.pop(future)
                                part, errors = future.result()
                                self._collect(out, failed, s, part, errors, scan)
                                bar.update(len(part))
                    except BaseException:
                        for future in pending:
                            future.cancel()
                        raise
        elapsed = time.perf_counter() - start_time
        if not bar_on:
            print(f"ImageFolder {self.root}: decoded {_plural(n - len(failed), 'image')} in {elapsed:.1f} s "
                  f"({n / max(elapsed, 1e-9):.0f} images/s)", flush=True)
        if failed:
            failed.sort()
            bad = {i for i, _ in failed}
            out = out[[i for i in range(n) if i not in bad]]
        return out, failed

    def _collect(self, out: np.ndarray, failed: list, start: int, part: np.ndarray, errors: list, scan: FolderScan
                 ) -> None:
        """Places a decoded chunk; with ``on_error="raise"`` its first failure raises."""
        out[start:start + len(part)] = part
        if errors and self.on_error == "raise":
            i, message = errors[0]
            raise DataError(f"{message} [ImageFolder {self.root}, on_error='raise'; on_error='skip' leaves "
                            "undecodable files out]")
        failed += [(start + i, message) for i, message in errors]

    def _finish(self, scan: FolderScan, images: np.ndarray, failed: list[tuple[int, str]]) -> ImageSet:
        """The :class:`ImageSet`, applying ``on_error`` to the undecodable files (from decoding or the cache)."""
        bad_names = [scan.names[i] for i, _ in failed]
        if failed and self.on_error == "raise":  # known from a cache written with on_error="skip"
            raise DataError(f"{failed[0][1]} [ImageFolder {self.root}: {_plural(len(failed), 'file')} cannot be "
                            f"decoded: {_examples(bad_names)}; on_error='skip' leaves them out]")
        if failed:
            warnings.warn(f"ImageFolder {self.root}: {_plural(len(failed), 'file')} could not be decoded and "
                          f"{'is' if len(failed) == 1 else 'are'} left out (on_error='skip'): "
                          f"{_examples(bad_names)}; first error: {failed[0][1]}", stacklevel=3)
        bad = {i for i, _ in failed}
        keep = [i for i in range(len(scan.names)) if i not in bad]
        if not keep:
            raise DataError(f"{self.root}: none of the {len(scan.names)} image files could be decoded "
                            f"(first error: {failed[0][1]})")
        labels = torch.tensor([scan.labels[i] for i in keep], dtype=torch.long)
        return ImageSet(torch.from_numpy(np.ascontiguousarray(images)), labels, scan.class_names,
                        names=[scan.names[i] for i in keep])
