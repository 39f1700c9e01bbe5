"""scikit-learn's handwritten digits as an image source: 1,797 real 8x8 images (0..16 grey levels)
shipped inside scikit-learn (``sklearn.datasets.load_digits``; the UCI "Optical Recognition of
Handwritten Digits" test set, Alpaydin & Kaynak 1998), scaled to 0..255 and upsampled. A bundled,
simpler second data set for out-of-distribution tests (Nalisnick et al. 2019, arXiv:1810.09136: likelihood
models can score simpler images *higher* than their own data)."""

from __future__ import annotations

import numpy as np
import torch

from aelab.data.sources.base import ImageSet, ImageSource
from aelab.data.transforms import conform


class SklearnDigits(ImageSource):
    """The 1,797 digits, labels 0..9, resized to ``image_size`` with ``channels`` channels.

    Args:
        image_size: side of the square output images (antialiased bilinear upsampling from 8x8).
        channels: 1 (grey) or 3 (grey repeated).
        invert: dark digits on a light background (the original has light digits on black, like
            Fashion-MNIST).
    """

    def __init__(self, image_size: int = 28, channels: int = 1, invert: bool = False) -> None:
        if image_size < 8 or channels not in (1, 3):
            raise ValueError(f"SklearnDigits needs image_size >= 8 and channels 1 or 3, got {image_size}, {channels}")
        self.image_size = image_size
        self.channels = channels
        self.invert = invert
        self._set: ImageSet | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def load(self) -> ImageSet:
        if self._set is None:
            from sklearn.datasets import load_digits

            digits = load_digits()
            grey = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8), 0..16 -> 0..255
            if self.invert:
                grey = 255 - grey
            images = conform(torch.from_numpy(grey).unsqueeze(1), self.input_shape)
            labels = torch.from_numpy(digits.target.astype(np.int64))
            self._set = ImageSet(images, labels, tuple(str(k) for k in range(10)))
        return self._set

    def describe(self) -> str:
        return f"scikit-learn digits ({self.image_size}x{self.image_size})"
