"""New inputs for a trained model (``aelab predict``, :class:`aelab.Detector`, an exported model):
image files, folders and IDX image files decoded as at training time, from an *input spec* — the
JSON-able description of the raw inputs that a datamodule gives (``input_spec()``) and an exported
model carries in its metadata.

Image spec: ``{"kind": "images", "shape": [C, H, W], "resize": "stretch" | "center_crop" | "pad" | "none"}``
(the raw images, before padding); rows: ``{"kind": "rows", "columns": [...], "shape": [D]}``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aelab.data.errors import DataError
from aelab.data.sources.folder import IMAGE_SUFFIXES, looks_like_image


def image_files(path: Path) -> list[Path]:
    """The image files at ``path``: the file itself, or every image in a folder and its sub-folders
    (sorted; hidden files and folders skipped; which files are images: as for
    :class:`aelab.data.sources.ImageFolder`, an image suffix in any case or, without extension, an image
    signature).

    Raises:
        DataError: no such path, or no image file there.
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts)
                       and (p.suffix.lower() in IMAGE_SUFFIXES or (not p.suffix and looks_like_image(p))))
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"{path}: no such file or folder")
    if not files:
        raise DataError(f"{path}: no image files (expected {', '.join(IMAGE_SUFFIXES)})")
    return files


def read_raw_images(path: str | Path, spec: dict) -> tuple[torch.Tensor, list[str]]:
    """Raw images at ``path`` as uint8 ``(N, C, H, W)`` of the spec's shape, and their names.

    An IDX image file must have the spec's size (its grey images are converted to the spec's channels);
    image files are decoded with Pillow with the spec's channels, size and resize policy.

    Raises:
        DataError: unreadable files, or images of the wrong size where the spec does not resize (naming the
            file and the shape the model expects).
    """
    from aelab.data.sources.decode import decode_files
    from aelab.data.sources.idx import is_idx_file, read_idx_images
    from aelab.data.transforms import conform

    path = Path(path)
    c, h, w = spec["shape"]
    if path.is_file() and is_idx_file(path):
        images = read_idx_images(path)
        if tuple(images.shape[2:]) != (h, w):
            raise DataError(f"{path}: IDX images of {images.shape[2]}x{images.shape[3]} pixels; the model expects "
                            f"{h}x{w}")
        return conform(images, (c, h, w)), [f"{path.name}:{i}" for i in range(len(images))]
    files = image_files(path)
    return decode_files(files, channels=c, size=(h, w), resize=spec.get("resize", "none")), [str(p) for p in files]


def as_image_batch(x, spec: dict) -> torch.Tensor:
    """Images given in memory -> uint8 ``(N, C, H, W)`` of the spec's shape: numpy or torch, uint8
    ``(N, H, W)`` / ``(N, H, W, C)`` / ``(N, C, H, W)``, or float ``(N, C, H, W)`` in [0, 1] (rounded to 8 bits).

    Raises:
        DataError: another shape or dtype (naming the shape the model expects).
    """
    c, h, w = spec["shape"]
    t = torch.as_tensor(x)
    if t.dtype == torch.uint8:
        if t.ndim == 3 and c == 1:
            t = t.unsqueeze(1)
        elif t.ndim == 4 and tuple(t.shape[1:]) != (c, h, w) and tuple(t.shape[1:]) == (h, w, c):
            t = t.permute(0, 3, 1, 2)
    elif t.is_floating_point() and t.ndim == 4:
        t = (t.clamp(0, 1) * 255).round().to(torch.uint8)
    if t.ndim != 4 or tuple(t.shape[1:]) != (c, h, w):
        raise DataError(f"images of shape {tuple(torch.as_tensor(x).shape)} ({torch.as_tensor(x).dtype}); the model "
                        f"expects uint8 (N, {h}, {w}{', ' + str(c) if c > 1 else ''}) or (N, {c}, {h}, {w}), or "
                        f"float (N, {c}, {h}, {w}) in [0, 1]")
    return t.contiguous()


def read_raw(path: str | Path, spec: dict) -> tuple[torch.Tensor, list[str]]:
    """Raw inputs at ``path`` by the spec's kind: images (:func:`read_raw_images`) or table rows
    (:func:`aelab.data.sources.table.read_raw_rows`)."""
    if spec["kind"] == "images":
        return read_raw_images(path, spec)
    from aelab.data.sources.table import read_raw_rows

    return read_raw_rows(path, spec)


def as_raw(x, spec: dict) -> torch.Tensor:
    """In-memory inputs as the raw tensor of the spec's kind (:func:`as_image_batch`, or
    :func:`aelab.data.sources.table.as_rows` for tables)."""
    if spec["kind"] == "images":
        return as_image_batch(x, spec)
    from aelab.data.sources.table import as_rows

    return as_rows(x, spec)
