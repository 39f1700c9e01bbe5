"""In-memory data sets drawn by index batches.

A whole (small) data set lives in memory: images as uint8 ``(N, C, H, W)``, table rows as float32
``(N, D)``. A DataLoader draws *index batches* (``BatchSampler``) and :class:`InMemoryDataset` returns
the whole batch with one tensor indexing operation (images converted to float32 in [0, 1]). No
per-item Python work on the hot path.

Batches are dicts: ``{"input": (B, C, H, W) float32 in [0, 1] or (B, D) float32, "label": (B,) int64}``
plus, where a data set has them, ``"anomaly"`` (1 = anomalous), ``"anomaly_type"`` and ``"labeled"``.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from aelab.data.transforms import pad_to, to_float


class InMemoryDataset(Dataset):
    """Indexable by a list of indices; returns a batch dict (see module docstring).

    Args:
        inputs: uint8 images ``(N, C, H, W)`` (or float32 in [0, 1]), or float32 rows ``(N, D)``.
        labels: int ``(N,)`` class labels (``-1`` = unknown).
        extras: further ``(N,)`` tensors returned under their key (e.g. ``"anomaly"``).
        pad: if given, images are zero-padded to ``pad x pad`` pixels per batch.
        names: optional item names ``(N,)`` (file paths, row numbers) for prediction files.

    Raises:
        ValueError: inputs of another rank, or lengths that differ.
    """

    takes_index_lists = True  # aelab.runs.batches hands whole index lists

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, extras: dict[str, torch.Tensor] | None = None,
                 pad: int | None = None, names: list[str] | None = None) -> None:
        if inputs.ndim not in (2, 4):
            raise ValueError(f"inputs must be images (N, C, H, W) or rows (N, D), got shape {tuple(inputs.shape)}")
        if len(labels) != len(inputs):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        if names is not None and len(names) != len(inputs):
            raise ValueError(f"{len(inputs)} inputs but {len(names)} names")
        self.inputs = inputs
        self.labels = labels.long()
        self.extras = extras or {}
        self.pad = pad
        self.names = names

    @property
    def images(self) -> torch.Tensor:
        """The stored inputs (uint8 images for image data sets)."""
        return self.inputs

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(index, dtype=torch.long, device=self.inputs.device)
        x = to_float(self.inputs[index])
        if self.pad is not None:
            x = pad_to(x, self.pad)
        batch = {"input": x, "label": self.labels[index]}
        for key, value in self.extras.items():
            batch[key] = value[index]
        return batch

    def subset(self, index: torch.Tensor) -> InMemoryDataset:
        """The items at ``index`` (a bool mask or positions) as a new data set."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        names = None if self.names is None else [self.names[int(i)] for i in index]
        return InMemoryDataset(self.inputs[index], self.labels[index], {k: v[index] for k, v in self.extras.items()},
                               pad=self.pad, names=names)

    def to(self, device: torch.device | str) -> InMemoryDataset:
        """This data set with every tensor moved to ``device`` (device-resident batches)."""
        return InMemoryDataset(self.inputs.to(device), self.labels.to(device),
                               {k: v.to(device) for k, v in self.extras.items()}, pad=self.pad, names=self.names)


InMemoryImages = InMemoryDataset  # the name of earlier versions


def concat(parts: list[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]], pad: int | None = None,
           names: list[str] | None = None) -> InMemoryDataset:
    """Concatenate ``(inputs, labels, extras)`` parts into one :class:`InMemoryDataset`."""
    inputs = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts])
    extras = {k: torch.cat([p[2][k] for p in parts]) for k in parts[0][2]}
    return InMemoryDataset(inputs, labels, extras, pad=pad, names=names)


class IndexBatchSampler(Sampler):
    """Yields lists of indices (whole batches) over ``range(n)``: a seeded permutation each epoch when
    ``shuffle`` (``torch.randperm`` with one generator, the order of ``RandomSampler``), else in order.

    Under ``torch.distributed`` (DDP) every process takes its own share (``rank::world_size``): for
    training the permutation is first padded by wrapping so every process runs the same number of steps
    (DistributedSampler's rule); for evaluation shares are not padded (no item is scored twice).
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int | None = None) -> None:
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed) if shuffle and seed is not None else None

    @staticmethod
    def rank_and_world() -> tuple[int, int]:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def order(self) -> torch.Tensor:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        rank, world = self.rank_and_world()
        if world > 1:
            if self.shuffle and self.n % world:
                order = torch.cat([order, order[: world - self.n % world]])
            order = order[rank::world]
        return order

    def __iter__(self):
        order = self.order().tolist()
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size]

    def __len__(self) -> int:
        rank, world = self.rank_and_world()
        share = -(-self.n // world) if self.shuffle else len(range(rank, self.n, world))
        return -(-share // self.batch_size)


def batch_loader(dataset: InMemoryDataset, batch_size: int, shuffle: bool, seed: int | None = None,
                 num_workers: int = 0) -> DataLoader:
    """A DataLoader that fetches whole batches from ``dataset`` by index lists (:class:`IndexBatchSampler`).

    ``shuffle`` draws a new permutation each epoch from a generator seeded with ``seed``.
    """
    return DataLoader(
        dataset,
        sampler=IndexBatchSampler(len(dataset), batch_size, shuffle, seed),
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
