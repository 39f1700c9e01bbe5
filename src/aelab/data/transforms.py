"""Batch-level image transforms: uint8 -> float, padding, and anomaly corruptions.

Everything here works on whole batches ``(N, C, H, W)`` at once; nothing runs per sample in Python.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` in [0, 255] -> float32 in [0, 1] (float input is returned as float32)."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def pad_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad ``(N, C, H, W)`` images symmetrically to ``size x size`` (e.g. 28 -> 32 pixels).

    Raises:
        ValueError: if the images are larger than ``size``.
    """
    h, w = images.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"cannot pad images of {h}x{w} pixels to {size}x{size}")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(images, (left, size - w - left, top, size - h - top))


def occlude(
    images: torch.Tensor,
    generator: torch.Generator,
    size_range: tuple[float, float] = (0.25, 0.5),
    fill: float = 0.0,
    on_object: bool = True,
    object_threshold: float = 0.1,
) -> torch.Tensor:
    """Paint one filled axis-aligned rectangle of random size and place into each image.

    The anomaly of the Fashion-5 protocol ("images damaged by a black rectangular region").

    Args:
        images: ``(N, C, H, W)`` uint8 or float in [0, 1]; a corrupted copy is returned (same dtype).
        generator: seeded ``torch.Generator``: the same seed gives the same rectangles.
        size_range: rectangle height and width, each drawn uniformly, as fractions of the image side.
        fill: fill value in [0, 1] (0 = black); scaled to 255 for uint8 images.
        on_object: centre the rectangle on a random object pixel (value > ``object_threshold``), so a
            black rectangle never lands on black background where it would change nothing.
        object_threshold: what counts as an object pixel (fraction of full intensity).

    Raises:
        ValueError: if ``size_range`` is not within (0, 1] or ``fill`` not within [0, 1].
    """
    lo, hi = size_range
    if not 0 < lo <= hi <= 1 or not 0 <= fill <= 1:
        raise ValueError(f"occlusion needs 0 < size_range[0] <= size_range[1] <= 1 and fill in [0, 1], "
                         f"got size_range={size_range}, fill={fill}")
    n, _, h, w = images.shape
    rh = (lo + (hi - lo) * torch.rand(n, generator=generator)) * h
    rw = (lo + (hi - lo) * torch.rand(n, generator=generator)) * w
    if on_object:
        intensity = to_float(images).amax(dim=1).flatten(1)  # (N, H*W)
        weights = (intensity > object_threshold).float() + 1e-6  # all-black image: uniform
        centre = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        cy, cx = (centre // w).float() + 0.5, (centre % w).float() + 0.5
    else:
        cy, cx = torch.rand(n, generator=generator) * h, torch.rand(n, generator=generator) * w
    top = (cy - rh / 2).clamp(0, h).round()
    bottom = (cy + rh / 2).clamp(0, h).round()
    left = (cx - rw / 2).clamp(0, w).round()
    right = (cx + rw / 2).clamp(0, w).round()
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    mask = ((ys >= top.view(n, 1, 1)) & (ys < bottom.view(n, 1, 1))
            & (xs >= left.view(n, 1, 1)) & (xs < right.view(n, 1, 1))).unsqueeze(1)
    value = round(fill * 255) if images.dtype == torch.uint8 else fill
    return images.masked_fill(mask, value)


class ToFloat(torch.nn.Module):
    """The image preprocessing of every aelab datamodule as a module (for export): uint8 images
    ``(N, C, H, W)`` -> float32 in [0, 1] (float input passes through as float32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_float(x)


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, the weights of Pillow's "L" conversion


def conform(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 images ``(N, C', H', W')`` converted to ``shape`` ``(C, H, W)``: grey <-> RGB (luma
    weights of Pillow's ``L`` mode; grey repeated), then resized with antialiased bilinear interpolation
    (``torch.nn.functional.interpolate``, ``antialias=True``) when the size differs. For second data sets
    used as out-of-distribution inputs.

    Raises:
        ValueError: for channel counts other than 1 or 3.
    """
    c, h, w = shape
    x = images.float()
    if x.shape[1] != c:
        if x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and c == 1:
            x = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise ValueError(f"cannot convert {x.shape[1]}-channel images to {c} channels")
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)
