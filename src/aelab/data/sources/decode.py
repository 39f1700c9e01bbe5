"""Decoding image files with Pillow: mode conversion, an antialiased resize by a stated policy.

Resize policies (output ``H x W``):

* ``stretch``: resize to ``H x W`` ignoring the aspect ratio;
* ``center_crop``: scale so the image covers ``H x W`` (keeping the aspect ratio), crop the middle;
* ``pad``: scale so the image fits inside ``H x W`` (keeping the aspect ratio), pad with black;
* ``none``: no resize; an image of another size is an error (sources whose data has one fixed size).

Resampling is Pillow's ``Image.Resampling.LANCZOS`` (antialiased when shrinking). JPEGs are first
decoded at a reduced scale where Pillow can (``Image.draft``, a power-of-two DCT scaling that keeps at
least twice the target size), which makes large photos much faster to decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from aelab.data.errors import DataError

RESIZE_POLICIES = ("stretch", "center_crop", "pad", "none")
MODES = {1: "L", 3: "RGB"}


def check_options(channels: int, size: Sequence[int], resize: str) -> tuple[int, int]:
    """Validate ``channels`` (1 or 3), ``size`` ``(H, W)`` and ``resize``; returns the size as a tuple.

    Raises:
        ValueError: for another value (naming it and the choices).
    """
    if channels not in MODES:
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {tuple(size)}")
    return h, w


def decode_image(path: str | Path, channels: int, size: Sequence[int], resize: str = "stretch") -> np.ndarray:
    """One image file -> uint8 ``(C, H, W)``.

    Raises:
        DataError: a file Pillow cannot decode (naming it), or (``resize="none"``) one of another size.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    h, w = check_options(channels, size, resize)
    try:
        with Image.open(path) as img:
            if img.format == "JPEG" and resize != "none":
                img.draft(MODES[channels], (2 * w, 2 * h))
            img = ImageOps.exif_transpose(img) if img.format in ("JPEG", "TIFF", "WEBP") else img
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")  # Pillow's advice for palette images with transparency
            img = img.convert(MODES[channels])
            if resize == "none":
                if img.size != (w, h):
                    raise DataError(f"{path}: image of {img.size[0]}x{img.size[1]} pixels; the model expects "
                                    f"{w}x{h} (this data set's images are not resized)")
            elif resize == "stretch":
                img = img.resize((w, h), Image.Resampling.LANCZOS)
            elif resize == "center_crop":
                img = ImageOps.fit(img, (w, h), Image.Resampling.LANCZOS)
            else:
                img = ImageOps.pad(img, (w, h), Image.Resampling.LANCZOS, color=0)
            array = np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        # DecompressionBombError: a header claiming over 2x Image.MAX_IMAGE_PIXELS pixels (corrupt or hostile)
        raise DataError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def decode_files(paths: Sequence[str | Path], channels: int, size: Sequence[int], resize: str = "stretch"
                 ) -> torch.Tensor:
    """Image files -> uint8 ``(N, C, H, W)``, in order, in this process.

    Raises:
        DataError: the first file that cannot be decoded (see :func:`decode_image`).
    """
    h, w = check_options(channels, size, resize)
    out = np.empty((len(paths), channels, h, w), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = decode_image(path, channels, (h, w), resize)
    return torch.from_numpy(out)
