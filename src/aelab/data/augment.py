"""Batch augmentation of images for training (kornia, on whole batches ``(N, C, H, W)``)."""

from __future__ import annotations

import kornia.augmentation as K
from torch import nn


def augmentation(shift: float = 0.1, flip: bool = True, erase: float = 0.25) -> nn.Module:
    """kornia batch augmentation of images ``(N, C, H, W)`` in [0, 1]: random shifts up to ``shift`` of
    the side, horizontal flips, and random erasing (Zhong et al. 2020, arXiv:1708.04896) with
    probability ``erase``."""
    ops: list[nn.Module] = [K.RandomAffine(degrees=0.0, translate=(shift, shift), p=1.0)]
    if flip:
        ops.append(K.RandomHorizontalFlip())
    if erase > 0:
        ops.append(K.RandomErasing(p=erase, scale=(0.02, 0.15)))
    return nn.Sequential(*ops)
