"""Where images come from: an :class:`ImageSource` loads an :class:`ImageSet` (uint8 images, labels,
class names, an official train/test split where the data set has one, item names), and decodes new
files for prediction exactly as it decoded its own.

Protocols (:mod:`aelab.data.protocols`) take a source and decide what is trained, validated and tested
on; a source knows nothing about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

TRAIN, TEST = 0, 1  # ImageSet.split values


@dataclass
class ImageSet:
    """A loaded image data set.

    Attributes:
        images: ``(N, C, H, W)`` uint8.
        labels: ``(N,)`` int64 class ids into ``class_names``; ``-1`` = unlabeled.
        class_names: names of the classes (empty for an unlabeled set).
        split: ``(N,)`` int64, ``TRAIN`` (0) or ``TEST`` (1), for data sets with an official split
            (Fashion-MNIST); ``None`` when the protocol splits (image folders).
        names: ``N`` item names (file paths relative to the root) or ``None``.

    Raises:
        ValueError: shapes or lengths that do not fit together.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...] = ()
    split: torch.Tensor | None = None
    names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        n = len(self.images)
        for what, value in (("labels", self.labels), ("split", self.split), ("names", self.names)):
            if value is not None and len(value) != n:
                raise ValueError(f"{n} images but {len(value)} {what}")

    def __len__(self) -> int:
        return len(self.images)


class ImageSource:
    """Base class of the image sources (Fashion-MNIST, image folders, IDX files, scikit-learn digits).

    Subclasses implement :meth:`load` and :attr:`input_shape`, and :meth:`read_files` where they can
    decode new files.
    """

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images :meth:`load` returns (known before loading)."""
        raise NotImplementedError

    def load(self) -> ImageSet:
        """The whole data set in memory (cached where the source can).

        Raises:
            aelab.data.errors.DataError: a missing, unreadable or corrupt file (named).
        """
        raise NotImplementedError

    def read_files(self, paths: list[Path]) -> torch.Tensor:
        """New image files decoded as this source decodes its own: uint8 ``(N, C, H, W)``.

        Raises:
            aelab.data.errors.DataError: a file that cannot be decoded, or of the wrong size for a
                source that does not resize (named, with the expected shape).
        """
        from aelab.data.sources.decode import decode_files

        c, h, w = self.input_shape
        return decode_files(paths, channels=c, size=(h, w), resize="none")

    def describe(self) -> str:
        return type(self).__name__
