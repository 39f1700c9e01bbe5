"""What every image protocol shares: a source, the class selection, the train/test assignment and the
validation split, and reading new image files for ``aelab predict``.

Train / test assignment: a source with an official split (Fashion-MNIST) keeps it; otherwise every
class is split by a seeded per-class draw of ``test_size`` (a fraction or a count per class). The
validation items come from the training part: for an official split a seeded draw of ``val_size``
items over all classes (the published Fashion-MNIST split), otherwise a seeded per-class draw. The
same seed always gives the same items; a test item is never a training or validation item.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from aelab.data.inputs import as_image_batch, read_raw_images
from aelab.data.protocols.base import InMemoryDataModule
from aelab.data.sources.base import TEST, TRAIN, ImageSet, ImageSource
from aelab.data.splits import count_of, per_class_split, seeded_split



class Preprocess(nn.Module):
    """uint8 images ``(N, C, H, W)`` -> float32 in [0, 1], zero-padded to ``pad_to x pad_to`` if set."""

    def __init__(self, pad_to: int | None = None) -> None:
        super().__init__()
        self.pad_to = pad_to

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from aelab.data.transforms import pad_to, to_float

        x = to_float(x)
        return pad_to(x, self.pad_to) if self.pad_to is not None else x


def class_indices(names_or_ids: Sequence[int | str], class_names: Sequence[str]) -> list[int]:
    """Map class names (``"Sandal"``, any letter case) or ids (``5``) to ids into ``class_names``.

    Raises:
        ValueError: an unknown name or an out-of-range id (listing the valid names), or duplicates.
    """
    out = []
    for c in names_or_ids:
        if isinstance(c, str) and not c.isdigit():
            matches = [i for i, n in enumerate(class_names) if n.lower() == c.lower()]
            if not matches:
                raise ValueError(f"unknown class {c!r}; expected one of {list(class_names)} or 0..{len(class_names) - 1}")
            out.append(matches[0])
        else:
            i = int(c)
            if not 0 <= i < len(class_names):
                raise ValueError(f"class id must be in 0..{len(class_names) - 1}, got {c!r}")
            out.append(i)
    if len(set(out)) != len(out):
        raise ValueError(f"classes contains duplicates: {list(names_or_ids)}")
    return out


def remap(labels: torch.Tensor, classes: Sequence[int], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the items of ``classes`` and relabel them ``0..len(classes)-1`` in the given order.

    Returns ``(mask (N,) bool, new_labels (mask.sum(),) int64)``; unlabeled items (``-1``) are dropped.
    """
    lookup = torch.full((num_classes + 1,), -1, dtype=torch.long)  # the last entry serves label -1
    if len(classes):
        lookup[torch.as_tensor(list(classes))] = torch.arange(len(classes))
    mask = lookup[labels] >= 0
    return mask, lookup[labels[mask]]


class ImageDataModule(InMemoryDataModule):
    """Base class of the image protocols: holds the ``source`` and answers which images of which classes
    are in the training or the test part.

    Args:
        source: where the images come from (:mod:`aelab.data.sources`).
        val_size: validation items taken from the training part: a count (int) or a fraction (float).
        test_size: per class, the test part for sources without an official split (count or fraction;
            ignored where the source has one).
        pad_to: zero-pad images to ``pad_to x pad_to`` pixels per batch (``None``: no padding).
        (other arguments: see :class:`~aelab.data.protocols.base.InMemoryDataModule`)
    """

    def __init__(self, source: ImageSource, val_size: int | float = 0.1, test_size: int | float = 0.2,
                 pad_to: int | None = None, batch_size: int = 128, seed: int = 42, num_workers: int = 0,
                 labeled_batch_size: int | None = None, labeled_only: bool = False,
                 device_resident: bool | str = "auto") -> None:
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers,
                         labeled_batch_size=labeled_batch_size, labeled_only=labeled_only,
                         device_resident=device_resident)
        self.source = source
        self.val_size = val_size
        self.test_size = test_size
        self.pad = pad_to
        self._assignment: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.source.input_shape
        return (c, self.pad or h, self.pad or w)

    def image_set(self) -> ImageSet:
        """The source's images (loaded on first use)."""
        return self.source.load()

    def source_classes(self) -> tuple[str, ...]:
        """The class names of the source (loads it: folder names come from the disk)."""
        return tuple(self.image_set().class_names)

    def assignment(self) -> torch.Tensor:
        """``(N,)`` TRAIN / TEST per source image: the official split, or a seeded per-class draw of
        ``test_size``."""
        if self._assignment is None:
            data = self.image_set()
            if data.split is not None:
                self._assignment = data.split
            else:
                _, test_idx = per_class_split(data.labels, [self.test_size], self.seed + 7, names=("test_size",))
                assignment = torch.full((len(data),), TRAIN, dtype=torch.long)
                assignment[test_idx] = TEST
                self._assignment = assignment
        return self._assignment

    def select(self, classes: Sequence[int], part: int | None) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
        """Images ``(M, C, H, W)`` uint8, labels relabelled ``0..len(classes)-1`` and names of ``classes``
        in the ``TRAIN`` or ``TEST`` part (``None``: all images of those classes). For an unlabeled source
        every image is selected, with label ``-1``."""
        data = self.image_set()
        if data.class_names:
            mask, labels = remap(data.labels, classes, len(data.class_names))
        else:  # an unlabeled set (a flat folder): every image, label -1
            mask, labels = torch.ones(len(data), dtype=torch.bool), data.labels
        if part is not None:
            keep = self.assignment()[mask] == part
            mask = mask.clone()
            mask[mask.clone()] = keep
            labels = labels[keep]
        names = None if data.names is None else [n for n, m in zip(data.names, mask.tolist()) if m]
        return data.images[mask], labels, names

    def split_val(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(train_idx, val_idx)`` of the training part with these ``labels``."""
        n = len(labels)
        if self.image_set().split is not None:
            n_val = count_of(self.val_size, n, "val_size")
            if not 0 <= n_val < n:
                raise ValueError(f"val_size={self.val_size} does not fit the {n} training images")
            return tuple(seeded_split(n, [n - n_val, n_val], self.seed))  # type: ignore[return-value]
        train_idx, val_idx = per_class_split(labels, [self.val_size], self.seed, names=("val_size",))
        if len(train_idx) == 0:
            raise ValueError(f"val_size={self.val_size} leaves no training images")
        return train_idx, val_idx

    def input_spec(self) -> dict:
        """``{"kind": "images", "shape": [C, H, W] (before padding), "resize": the source's policy,
        "pad_to": pixels or None}``."""
        return {"kind": "images", "shape": list(self.source.input_shape),
                "resize": getattr(self.source, "resize", "none"), "pad_to": self.pad}

    def read_raw(self, path: str | Path) -> tuple[torch.Tensor, list[str]]:
        """Image files (one file, or every image in a folder and its sub-folders) or an IDX image file at
        ``path``, decoded as the training images (:func:`aelab.data.inputs.read_raw_images`)."""
        return read_raw_images(path, self.input_spec())

    def as_raw(self, x) -> torch.Tensor:
        """In-memory images (see :func:`aelab.data.inputs.as_image_batch`) as uint8 ``(N, C, H, W)``."""
        return as_image_batch(x, self.input_spec())

    def preprocessor(self) -> nn.Module:
        """uint8 images -> float32 in [0, 1] (zero-padded to ``pad_to`` if set)."""
        return Preprocess(self.pad)
