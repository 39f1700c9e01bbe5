"""Fashion-MNIST as a LightningDataModule (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from aelab.data.base import InMemoryDataModule, InMemoryImages, draw_per_class, seeded_split
from aelab.data.idx import load_fashion_mnist

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


@functools.lru_cache(maxsize=4)
def fashion_mnist_tensors(data_dir: str | None, download: bool, verify: bool = True) -> dict[str, torch.Tensor]:
    """The whole data set as tensors, loaded (and checksum-verified) once per process.

    Returns ``{"train_images": (60000, 1, 28, 28) uint8, "train_labels": (60000,) int64,
    "test_images": (10000, 1, 28, 28) uint8, "test_labels": (10000,) int64}``.

    Raises:
        aelab.data.idx.DataError: if a file is missing, truncated or corrupt.
    """
    tr_x, tr_y, te_x, te_y = load_fashion_mnist(data_dir, download=download, verify_checksums=verify)
    return {
        "train_images": torch.from_numpy(np.ascontiguousarray(tr_x)).unsqueeze(1),
        "train_labels": torch.from_numpy(tr_y.astype(np.int64)),
        "test_images": torch.from_numpy(np.ascontiguousarray(te_x)).unsqueeze(1),
        "test_labels": torch.from_numpy(te_y.astype(np.int64)),
    }


def class_indices(names_or_ids: Sequence[int | str]) -> list[int]:
    """Map class names (``"Sandal"``) or ids (``5``) to Fashion-MNIST class ids.

    Raises:
        ValueError: for an unknown name or an id outside 0..9, listing the valid names.
    """
    out = []
    for c in names_or_ids:
        if isinstance(c, str) and not c.isdigit():
            matches = [i for i, n in enumerate(CLASS_NAMES) if n.lower() == c.lower()]
            if not matches:
                raise ValueError(f"unknown Fashion-MNIST class {c!r}; expected one of {list(CLASS_NAMES)} or 0..9")
            out.append(matches[0])
        else:
            i = int(c)
            if not 0 <= i < 10:
                raise ValueError(f"Fashion-MNIST class id must be in 0..9, got {c!r}")
            out.append(i)
    if len(set(out)) != len(out):
        raise ValueError(f"classes contains duplicates: {list(names_or_ids)}")
    return out


def remap(labels: torch.Tensor, classes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the images of ``classes`` and relabel them ``0..len(classes)-1`` in the given order.

    Returns ``(mask (N,) bool, new_labels (mask.sum(),) int64)``.
    """
    lookup = torch.full((10,), -1, dtype=torch.long)
    lookup[torch.as_tensor(list(classes))] = torch.arange(len(classes))
    mask = lookup[labels] >= 0
    return mask, lookup[labels[mask]]


def all_true(n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool)


def labeled_mask(labels: torch.Tensor, labels_per_class: int | None, seed: int) -> torch.Tensor:
    """``(N,)`` bool: which training images keep their label (all if ``labels_per_class`` is None)."""
    if labels_per_class is None:
        return all_true(len(labels))
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[draw_per_class(labels, labels_per_class, seed)] = True
    return mask


class FashionMNISTDataModule(InMemoryDataModule):
    """Fashion-MNIST: a seeded train/validation split of the 60,000 training images and the official
    10,000-image test set, all in memory as uint8 and converted per batch.

    Args:
        data_dir: where to look for (and download to) the four IDX files; then
            ``/usr/share/datasets/fashion-mnist``; then the official mirror (see ``aelab.data.idx``).
        download: allow downloading from the official mirror into ``data_dir``.
        verify: check size and sha256 of the decompressed files against the official ones; switch
            off to load other IDX files with the same names and layout (e.g. MNIST, or test data).
        val_size: validation images taken from the training set (int), or a fraction (float < 1).
        pad_to_32: zero-pad 28x28 images to 32x32 pixels.
        classes: keep only these classes (names or ids), relabelled ``0..k-1`` in this order.
        labels_per_class: keep the labels of only this many training images per class (a seeded
            draw); the other training images stay in the training set as unlabeled images
            (``"labeled"`` false). ``None``: every training image is labeled. The validation and
            test sets stay fully labeled (for monitoring and evaluation; selecting checkpoints on
            5,000 validation labels when training with few labels is optimistic, which is why
            ``benchmarks/few_labels.py`` trains for a fixed budget and uses no validation set).
        batch_size: images per batch.
        labeled_batch_size, labeled_only: paired unlabeled/labeled training batches, or training on
            the labeled images alone (see :class:`~aelab.data.base.InMemoryDataModule`).
        seed: seeds the split and the shuffling (same seed, same split, for every model).
        num_workers: DataLoader worker processes (0 is fastest for in-memory data).

    Batches: ``{"image": (B, 1, 28, 28) float32 in [0, 1] (32x32 if padded), "label": (B,) int64,
    "labeled": (B,) bool}``.
    """

    def __init__(
        self,
        data_dir: str | None = "data",
        download: bool = True,
        verify: bool = True,
        val_size: int | float = 5000,
        pad_to_32: bool = False,
        classes: list[int | str] | None = None,
        labels_per_class: int | None = None,
        batch_size: int = 128,
        labeled_batch_size: int | None = None,
        labeled_only: bool = False,
        seed: int = 42,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers,
                         labeled_batch_size=labeled_batch_size, labeled_only=labeled_only)
        self.labels_per_class = labels_per_class
        self.data_dir = data_dir
        self.download = download
        self.verify = verify
        self.val_size = val_size
        self.pad = 32 if pad_to_32 else None
        self.classes = class_indices(classes) if classes is not None else list(range(10))
        self.class_names = tuple(CLASS_NAMES[c] for c in self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        side = self.pad or 28
        return (1, side, side)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def tensors(self) -> dict[str, torch.Tensor]:
        data_dir = str(Path(self.data_dir).expanduser()) if self.data_dir is not None else None
        return fashion_mnist_tensors(data_dir, self.download, self.verify)

    def class_images(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(M, 1, 28, 28)`` uint8 and relabelled labels ``(M,)`` of the chosen classes in the
        official ``"train"`` or ``"test"`` split."""
        t = self.tensors()
        mask, labels = remap(t[f"{split}_labels"], self.classes)
        return t[f"{split}_images"][mask], labels

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = self.class_images("train")
        n = len(images)
        n_val = int(round(self.val_size * n)) if isinstance(self.val_size, float) else int(self.val_size)
        if not 0 <= n_val < n:
            raise ValueError(f"val_size={self.val_size} does not fit the {n} training images of classes "
                             f"{list(self.class_names)}")
        train_idx, val_idx = seeded_split(n, [n - n_val, n_val], self.seed)
        labeled = labeled_mask(labels[train_idx], self.labels_per_class, self.seed + 5)
        self.train_set = InMemoryImages(images[train_idx], labels[train_idx], {"labeled": labeled}, pad=self.pad)
        self.labeled_train_set = InMemoryImages(images[train_idx][labeled], labels[train_idx][labeled],
                                                {"labeled": labeled[labeled]}, pad=self.pad)
        self.val_set = InMemoryImages(images[val_idx], labels[val_idx], {"labeled": all_true(len(val_idx))},
                                      pad=self.pad)
        self.test_set = self.make_test_set()

    def make_test_set(self) -> InMemoryImages:
        """The official test images of the chosen classes (subclasses add anomalies)."""
        images, labels = self.class_images("test")
        return InMemoryImages(images, labels, {"labeled": all_true(len(images))}, pad=self.pad)
