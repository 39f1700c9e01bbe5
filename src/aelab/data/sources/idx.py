"""Read, verify, locate and download IDX files (no torchvision needed); IDX image files as a source.

IDX is the big-endian format of MNIST (LeCun, Cortes & Burges,
http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code (0x08 = uint8, the only
one supported here), the number of dimensions, each dimension as uint32, then the data.
Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747) ships in that format.

Fashion-MNIST files are looked for (1) in the configured ``data_dir``, (2) in
:data:`SYSTEM_DIR` (Debian/Ubuntu package ``dataset-fashion-mnist``), (3) on the official
:data:`MIRROR`. Content is verified on the *decompressed* bytes, since the Debian package
re-compresses the files. Every missing, truncated or corrupt file raises :class:`DataError`.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aelab.data.errors import DataError
from aelab.data.sources.base import ImageSource

MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
UINT8 = 0x08




@dataclass(frozen=True)
class FileSpec:
    """An expected file: base ``name`` (no ``.gz``), decompressed ``size`` and ``sha256``."""

    name: str
    size: int
    sha256: str


FASHION_MNIST_FILES: dict[str, FileSpec] = {
    "train_images": FileSpec("train-images-idx3-ubyte", 47040016,
                             "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train_labels": FileSpec("train-labels-idx1-ubyte", 60008,
                             "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test_images": FileSpec("t10k-images-idx3-ubyte", 7840016,
                            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test_labels": FileSpec("t10k-labels-idx1-ubyte", 10008,
                            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}


def how_to_get(data_dir: str | os.PathLike | None = None, mirror: str = MIRROR) -> str:
    """The three ways to provide Fashion-MNIST, as text appended to error messages."""
    where = f" ({data_dir})" if data_dir is not None else ""
    return ("\nFashion-MNIST can be provided in three ways:\n"
            f"  (1) put the four files (.gz or raw) in the configured data_dir{where}: "
            + ", ".join(s.name for s in FASHION_MNIST_FILES.values()) + ";\n"
            f"  (2) `apt-get install -y dataset-fashion-mnist` (files in {SYSTEM_DIR});\n"
            f"  (3) let aelab download them from {mirror} (download=True, needs network).")


def _decompress(payload: bytes, source: object) -> bytes:
    try:
        return gzip.decompress(payload)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{source}: corrupt or truncated gzip stream ({e})") from e


def read_bytes(path: str | os.PathLike) -> bytes:
    """Return the content of ``path``, decompressed when its name ends in ``.gz``.

    Raises DataError if the file is missing, unreadable, or not a valid gzip stream.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e})") from e
    return _decompress(raw, path) if path.suffix == ".gz" else raw


def _parse(data: bytes, source: object, hint: str = "") -> np.ndarray:
    if len(data) < 4 or data[:2] != b"\0\0":
        raise DataError(f"{source}: bad IDX magic: expected 00 00 08 <ndim>, "
                        f"found {data[:4].hex(' ') or 'an empty file'}{hint}")
    if data[2] != UINT8:
        raise DataError(f"{source}: unsupported IDX type code 0x{data[2]:02x}: "
                        f"expected 0x08 (uint8){hint}")
    ndim, header = data[3], 4 + 4 * data[3]
    if ndim == 0 or len(data) < header:
        raise DataError(f"{source}: bad IDX header: {ndim} dimensions need a {header}-byte "
                        f"header, found {len(data)} bytes in all{hint}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected, actual = int(np.prod(dims, dtype=np.int64)), len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        raise DataError(f"{source}: {what}: shape {dims} needs {expected} data bytes "
                        f"after the {header}-byte header, found {actual}{hint}")
    # copy: a writable array (torch.from_numpy warns on read-only buffers)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a uint8 IDX file (``.gz`` or raw) into a writable uint8 array of shape dims.

    E.g. images ``(N, 28, 28)``, labels ``(N,)``. Raises DataError for a missing file, a
    corrupt gzip stream, a bad magic number, a non-uint8 type code, or a payload whose
    length differs from the product of the dimensions (truncated or trailing bytes).
    """
    return _parse(read_bytes(path), Path(path))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 array (any ndim >= 1) as an IDX file, gzip-compressed if ``path`` ends in .gz."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim == 0:
        raise ValueError(f"write_idx needs a uint8 array with ndim >= 1, got {array.dtype} "
                         f"with shape {array.shape}")
    data = (bytes([0, 0, UINT8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + np.ascontiguousarray(array).tobytes())
    path = Path(path)
    path.write_bytes(gzip.compress(data, 6) if path.suffix == ".gz" else data)
    return path


def _check(data: bytes, spec: FileSpec, source: object, hint: str) -> None:
    if len(data) != spec.size:
        raise DataError(f"{source}: wrong size for {spec.name}: expected {spec.size} bytes "
                        f"(decompressed), found {len(data)}{hint}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise DataError(f"{source}: sha256 mismatch for {spec.name}: expected {spec.sha256}, "
                        f"found {digest}{hint}")


def _verified_bytes(path: str | os.PathLike, spec: FileSpec) -> bytes:
    hint = how_to_get()
    try:
        data = read_bytes(path)
    except DataError as e:
        raise DataError(str(e) + hint) from e
    _check(data, spec, Path(path), hint)
    return data


def verify(path: str | os.PathLike, spec: FileSpec) -> None:
    """Check the decompressed length and sha256 of ``path`` against ``spec``.

    Raises DataError (naming the path, expected and found values) on a mismatch, or if the
    file is missing or not a valid gzip stream.
    """
    _verified_bytes(path, spec)


def read_idx_verified(path: str | os.PathLike, spec: FileSpec) -> np.ndarray:
    """Like :func:`read_idx`, after :func:`verify` (decompressing only once). Raises DataError."""
    return _parse(_verified_bytes(path, spec), Path(path), how_to_get())


def find_file(directory: str | os.PathLike | None, spec: FileSpec) -> Path | None:
    """Return ``directory/<name>.gz`` if it exists, else ``directory/<name>``, else None."""
    if directory is None:
        return None
    for candidate in (Path(directory) / f"{spec.name}.gz", Path(directory) / spec.name):
        if candidate.is_file():
            return candidate
    return None


def download(spec: FileSpec, data_dir: str | os.PathLike, mirror: str = MIRROR,
             opener=None) -> Path:
    """Fetch ``mirror + name + ".gz"`` into ``data_dir/<name>.gz`` and return that path.

    ``opener(url)`` returns a context manager with ``.read()`` (default: ``urlopen`` with a
    60 s timeout). The content is verified against ``spec`` before the file appears under its
    final name (written to a temporary file, then renamed atomically); nothing is left
    behind on failure. Raises DataError naming the URL for network errors or bad content.
    """
    url = mirror + ("" if mirror.endswith("/") else "/") + spec.name + ".gz"
    hint = how_to_get(data_dir, mirror)
    opener = opener or (lambda u: urllib.request.urlopen(u, timeout=60))
    try:
        with opener(url) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
        raise DataError(f"{url}: download failed ({e}){hint}") from e
    try:
        _check(_decompress(payload, url), spec, url, "")
    except DataError as e:
        raise DataError(f"{e} (downloaded file discarded){hint}") from e
    data_dir = Path(data_dir)
    target, tmp = data_dir / f"{spec.name}.gz", None
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=f".{spec.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, target)
    except OSError as e:
        raise DataError(f"{target}: cannot save download from {url} ({e}){hint}") from e
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return target


def locate(spec: FileSpec, data_dir: str | os.PathLike | None = None, download: bool = True,
           opener=None, mirror: str = MIRROR,
           system_dir: str | os.PathLike | None = SYSTEM_DIR) -> Path:
    """Find ``spec`` in (1) ``data_dir``, (2) ``system_dir``, else (3) download it into ``data_dir``.

    Downloading happens only if ``download`` is true and ``data_dir`` is not None. The file
    found is not verified here. Raises DataError listing the places searched.
    """
    for directory in (data_dir, system_dir):
        found = find_file(directory, spec)
        if found is not None:
            return found
    if download and data_dir is not None:
        return _download(spec, data_dir, mirror=mirror, opener=opener)
    searched = [f"{Path(d) / spec.name}[.gz]" for d in (data_dir, system_dir) if d is not None]
    why = ("download=False" if not download else "no data_dir to download into")
    raise DataError(f"{spec.name}: not found; searched {', '.join(searched) or 'nowhere'} "
                    f"({why}){how_to_get(data_dir, mirror)}")


_download = download  # `locate` has a parameter named `download`


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, download: bool = True,
                       opener=None, verify_checksums: bool = True,
                       files: dict[str, FileSpec] = FASHION_MNIST_FILES,
                       system_dir: str | os.PathLike | None = SYSTEM_DIR, mirror: str = MIRROR,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load Fashion-MNIST as ``(train_images, train_labels, test_images, test_labels)``.

    Shapes ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)``, all uint8
    (images 0..255, labels 0..9). Each file is found with :func:`locate` and, if
    ``verify_checksums``, checked against ``files``. Raises DataError for a missing or corrupt
    file, images that are not 3-D, labels that are not 1-D, or mismatched counts.
    """
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    in_data_dir = {key: find_file(data_dir, files[key]) for key in keys}
    if any(in_data_dir.values()) and not all(in_data_dir.values()):
        missing = [files[k].name for k, v in in_data_dir.items() if v is None]
        raise DataError(f"data_dir {data_dir} holds only some of the four Fashion-MNIST files ({missing} "
                        "missing): aelab does not mix files of two copies; put all four there, or remove "
                        f"them to use another copy{how_to_get(data_dir, mirror)}")
    arrays, places = {}, set()
    for key in keys:
        spec = files[key]
        path = locate(spec, data_dir, download=download, opener=opener, mirror=mirror,
                      system_dir=system_dir)
        places.add(str(path.parent))
        arrays[key] = read_idx_verified(path, spec) if verify_checksums else read_idx(path)
    if data_dir is not None and places != {str(Path(data_dir))}:
        print(f"Fashion-MNIST: not in data_dir {data_dir}; read from {', '.join(sorted(places))}", flush=True)
    out = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"Fashion-MNIST {split} files ({files[split + '_images'].name}, "
                            f"{files[split + '_labels'].name}): expected images (N, H, W) and "
                            f"labels (N,), found {images.shape} and {labels.shape}"
                            f"{how_to_get(data_dir, mirror)}")
        out += [images, labels]
    return tuple(out)


def is_idx_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a uint8 IDX file (``00 00 08 <ndim>``), gzip-compressed or not."""
    path = Path(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            head = f.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return len(head) == 4 and head[:3] == bytes([0, 0, UINT8]) and head[3] in (1, 3, 4)


def read_idx_images(path: str | os.PathLike) -> "torch.Tensor":
    """A uint8 IDX image file (``(N, H, W)``, or ``(N, C, H, W)``) as a tensor ``(N, C, H, W)``.

    Raises:
        DataError: unreadable or corrupt file, or an IDX file of another rank (e.g. labels).
    """
    import torch

    array = read_idx(path)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise DataError(f"{path}: IDX file of shape {array.shape}; expected images (N, H, W) or (N, C, H, W)")
    return torch.from_numpy(array)


class IDXImages(ImageSource):
    """Images of one IDX file (e.g. MNIST's ``t10k-images-idx3-ubyte.gz``) as an image source, every
    image unlabeled: a second data set used as out-of-distribution input.

    Args:
        path: the IDX image file (``.gz`` or raw).
        labels_path: an optional IDX label file of the same length (labels kept as class ids).
    """

    def __init__(self, path: str, labels_path: str | None = None) -> None:
        self.path = path
        self.labels_path = labels_path
        self._set = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.load().images.shape[1:])  # type: ignore[return-value]

    def load(self):
        import torch

        from aelab.data.sources.base import ImageSet

        if self._set is None:
            images = read_idx_images(self.path)
            if self.labels_path is not None:
                labels = torch.from_numpy(read_idx(self.labels_path).astype(np.int64))
                if labels.ndim != 1 or len(labels) != len(images):
                    raise DataError(f"{self.labels_path}: {tuple(labels.shape)} labels for {len(images)} images in "
                                    f"{self.path}")
                names = tuple(str(k) for k in range(int(labels.max()) + 1)) if len(labels) else ()
            else:
                labels, names = torch.full((len(images),), -1, dtype=torch.long), ()
            self._set = ImageSet(images, labels, names)
        return self._set

    def describe(self) -> str:
        return f"IDX images {self.path}"
