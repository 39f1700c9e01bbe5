"""Test-time augmentation of a classifier: average its class probabilities over shifted copies.

For images ``x`` and every shift ``(dy, dx)`` with ``|dy|, |dx| <= s`` pixels (``(2s + 1)^2`` copies,
zero fill), the prediction is

    p(y | x) = mean over (dy, dx) of softmax(f(shift(x, dy, dx)))

the averaging of predictions over translated inputs of Krizhevsky et al. 2012 ("ImageNet
Classification with Deep Convolutional Neural Networks", NeurIPS, Sec. 4.1: ten crops) and Simonyan &
Zisserman 2015 (arXiv:1409.1556, Sec. 3.2). It undoes small misalignments that a classifier trained
with random shifts has learned to ignore only approximately.
"""

from __future__ import annotations

from typing import Callable

import torch

from aelab.models.transform_head import shift


def shift_averaged_logits(classify: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                          max_shift: int) -> torch.Tensor:
    """``log p(y | x)`` ``(N, K)`` averaged over all shifts of up to ``max_shift`` pixels.

    Args:
        classify: images ``(M, C, H, W)`` -> logits ``(M, K)``; called once on all ``(2s + 1)^2 * N`` copies.
        x: images ``(N, C, H, W)``, float in [0, 1].
        max_shift: ``s`` >= 0 (0 returns ``log_softmax(classify(x))``).

    Returns log-probabilities, usable as logits (their softmax is the averaged probability).

    Raises:
        ValueError: ``max_shift`` negative or not smaller than the image side.
    """
    h, w = x.shape[-2:]
    if not 0 <= max_shift < min(h, w):
        raise ValueError(f"max_shift must be in 0..{min(h, w) - 1} pixels for {h}x{w} images, got {max_shift}")
    offsets = range(-max_shift, max_shift + 1)
    copies = torch.cat([shift(x, dy, dx) for dy in offsets for dx in offsets])
    probs = classify(copies).softmax(-1)
    probs = probs.reshape(len(offsets) ** 2, x.shape[0], probs.shape[-1]).mean(0)  # also for N = 0
    return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
