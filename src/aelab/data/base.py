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


class InMemoryDataModule(pl.LightningDataModule):
    """Base class: subclasses fill ``self.train_set``, ``self.val_set``, ``self.test_set`` in ``setup``.

    Provides the loaders, ``image_shape`` (C, H, W) after padding (linked to the model's
    ``image_shape`` by the CLI) and ``class_names``.
    """

    class_names: tuple[str, ...] = ()

    def __init__(self, batch_size: int = 128, seed: int = 42, num_workers: int = 0) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.train_set: InMemoryImages | None = None
        self.val_set: InMemoryImages | None = None
        self.test_set: InMemoryImages | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return batch_loader(self._require("train_set"), self.batch_size, True, self.seed, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return batch_loader(self._require("val_set"), self.batch_size, False, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self._require("test_set"), self.batch_size, False, num_workers=self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def _require(self, name: str) -> InMemoryImages:
        if getattr(self, name) is None:
            self.setup("fit" if name != "test_set" else "test")
        return getattr(self, name)
