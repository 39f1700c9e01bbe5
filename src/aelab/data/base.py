"""Shared machinery of the in-memory image datamodules.

A whole (small) data set lives in memory as a uint8 tensor ``(N, C, H, W)``; a DataLoader draws
*index batches* (``BatchSampler``) and :class:`InMemoryImages` returns the whole batch with one
tensor indexing operation, converted to float32 in [0, 1]. No per-sample Python work on the hot path.

Batches are dicts: ``{"image": (B, C, H, W) float32 in [0, 1], "label": (B,) int64}`` plus, where a
data set has them, ``"anomaly": (B,) int64`` (1 = anomalous) and ``"labeled": (B,) bool``.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from aelab.data.transforms import pad_to, to_float


class InMemoryImages(Dataset):
    """Indexable by a list of indices; returns a batch dict (see module docstring).

    Args:
        images: uint8 ``(N, C, H, W)`` (or float32 in [0, 1]).
        labels: int ``(N,)`` class labels (``-1`` = unknown).
        extras: further ``(N,)`` tensors returned under their key (e.g. ``"anomaly"``).
        pad: if given, images are zero-padded to ``pad x pad`` pixels per batch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        extras: dict[str, torch.Tensor] | None = None,
        pad: int | None = None,
    ) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.long()
        self.extras = extras or {}
        self.pad = pad

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(index, dtype=torch.long)
        x = to_float(self.images[index])
        if self.pad is not None:
            x = pad_to(x, self.pad)
        batch = {"image": x, "label": self.labels[index]}
        for key, value in self.extras.items():
            batch[key] = value[index]
        return batch


def batch_loader(
    dataset: InMemoryImages, batch_size: int, shuffle: bool, seed: int | None = None, num_workers: int = 0
) -> DataLoader:
    """A DataLoader that fetches whole batches from ``dataset`` by index lists.

    ``shuffle`` draws a new permutation each epoch from a generator seeded with ``seed``.
    """
    if shuffle:
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        sampler=BatchSampler(sampler, batch_size=batch_size, drop_last=False),
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def seeded_split(n: int, sizes: Sequence[int], seed: int) -> list[torch.Tensor]:
    """Split ``range(n)`` into disjoint index tensors of the given sizes, from a seeded permutation.

    The same ``(n, sizes, seed)`` always gives the same split, on any machine.

    Raises:
        ValueError: if the sizes add up to more than ``n`` or one is negative.
    """
    if any(s < 0 for s in sizes) or sum(sizes) > n:
        raise ValueError(f"cannot split {n} items into parts of sizes {list(sizes)}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out, start = [], 0
    for s in sizes:
        out.append(perm[start : start + s].sort().values)
        start += s
    return out


def draw_per_class(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` items of every class in ``labels`` ``(N,)``, seeded and sorted.

    Raises:
        ValueError: if a class has fewer than ``per_class`` items (naming the class and its count).
    """
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"labels_per_class={per_class} but class {c} has only {len(idx)} training images")
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(chosen).sort().values


class InMemoryDataModule(pl.LightningDataModule):
    """Base class: subclasses fill ``self.train_set``, ``self.val_set``, ``self.test_set`` (and, with
    labels, ``self.labeled_train_set``) in ``setup``.

    Provides the loaders, ``image_shape`` (C, H, W) after padding (linked to the model's
    ``image_shape`` by the CLI) and ``class_names``.

    Args:
        batch_size: images per batch.
        labeled_batch_size: if set, ``train_dataloader`` yields *paired* batches
            ``{"unlabeled": batch of all training images, "labeled": batch of labeled ones}`` from a
            Lightning ``CombinedLoader`` (``max_size_cycle``: the small labeled set is cycled), so a
            semi-supervised model sees both every step.
        labeled_only: train on the labeled training images alone (supervised models with few
            labels: an epoch is then one pass over the labeled images).
        seed: seeds splits and shuffling.
        num_workers: DataLoader workers (0 is fastest for in-memory data).
    """

    class_names: tuple[str, ...] = ()

    def __init__(self, batch_size: int = 128, seed: int = 42, num_workers: int = 0,
                 labeled_batch_size: int | None = None, labeled_only: bool = False) -> None:
        super().__init__()
        if batch_size < 1 or (labeled_batch_size is not None and labeled_batch_size < 1):
            raise ValueError(f"batch sizes must be >= 1, got {batch_size}, {labeled_batch_size}")
        self.batch_size = batch_size
        self.labeled_batch_size = labeled_batch_size
        self.labeled_only = labeled_only
        if labeled_only and labeled_batch_size is not None:
            raise ValueError("labeled_only and labeled_batch_size exclude each other")
        self.seed = seed
        self.num_workers = num_workers
        self.train_set: InMemoryImages | None = None
        self.val_set: InMemoryImages | None = None
        self.test_set: InMemoryImages | None = None
        self.labeled_train_set: InMemoryImages | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        train = self._require("labeled_train_set" if self.labeled_only else "train_set")
        loader = batch_loader(train, self.batch_size, True, self.seed, self.num_workers)
        if self.labeled_batch_size is None:
            return loader
        labeled = self._require("labeled_train_set")
        if labeled is None or len(labeled) == 0:
            raise ValueError(f"{type(self).__name__}: labeled_batch_size is set but there are no labeled "
                             "training images (set labels_per_class or use a protocol with labels)")
        labeled_loader = batch_loader(labeled, self.labeled_batch_size, True, self.seed + 1, self.num_workers)
        return CombinedLoader({"unlabeled": loader, "labeled": labeled_loader}, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader:
        return batch_loader(self._require("val_set"), self.batch_size, False, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self._require("test_set"), self.batch_size, False, num_workers=self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def _require(self, name: str) -> InMemoryImages:
        if self.train_set is None:
            self.setup("fit" if name != "test_set" else "test")
        return getattr(self, name)
