"""The base of every aelab datamodule: in-memory train / validation / test sets drawn by index
batches, paired unlabeled/labeled batches for semi-supervised models, and what the scorer, the
commands and the CLI ask of a datamodule (``input_shape``, ``class_names``, normal validation items,
reading new inputs for ``aelab predict``, and the preprocessing as a module for export).
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch import nn
from torch.utils.data import DataLoader

from aelab.data.datasets import InMemoryDataset, batch_loader

DEVICE_MEMORY_FRACTION = 0.25  # device_resident="auto": the data may take at most this share of the GPU memory


class InMemoryDataModule(pl.LightningDataModule):
    """Base class: subclasses fill ``self.train_set``, ``self.val_set``, ``self.test_set`` (and, with
    labels, ``self.labeled_train_set``) in ``setup``.

    Args:
        batch_size: items per batch.
        labeled_batch_size: if set, ``train_dataloader`` yields *paired* batches
            ``{"unlabeled": batch of all training items, "labeled": batch of labeled ones}`` from a
            Lightning ``CombinedLoader`` (``max_size_cycle``: the small labeled set is cycled), so a
            semi-supervised model sees both every step.
        labeled_only: train on the labeled training items alone (supervised models with few
            labels: an epoch is then one pass over the labeled items).
        seed: seeds splits and shuffling.
        num_workers: DataLoader workers (0 is fastest for in-memory data).
        device_resident: put the whole data set on the training device once and draw index batches there
            (no per-batch copies; the recipe of the fastest small-image trainers). ``"auto"``: on a GPU
            when the data takes at most ``DEVICE_MEMORY_FRACTION`` (a quarter) of its memory, never on
            the CPU; ``True`` / ``False`` force it.
    """

    class_names: tuple[str, ...] = ()

    def __init__(self, batch_size: int = 128, seed: int = 42, num_workers: int = 0,
                 labeled_batch_size: int | None = None, labeled_only: bool = False,
                 device_resident: bool | str = "auto") -> None:
        super().__init__()
        if batch_size < 1 or (labeled_batch_size is not None and labeled_batch_size < 1):
            raise ValueError(f"batch sizes must be >= 1, got {batch_size}, {labeled_batch_size}")
        if labeled_only and labeled_batch_size is not None:
            raise ValueError("labeled_only and labeled_batch_size exclude each other")
        self.batch_size = batch_size
        self.labeled_batch_size = labeled_batch_size
        self.labeled_only = labeled_only
        self.seed = seed
        self.num_workers = num_workers
        if device_resident not in (True, False, "auto"):
            raise ValueError(f"device_resident must be true, false or 'auto', got {device_resident!r}")
        self.device_resident = device_resident
        self.resident_device: torch.device | None = None
        self.train_set: InMemoryDataset | None = None
        self.val_set: InMemoryDataset | None = None
        self.test_set: InMemoryDataset | None = None
        self.labeled_train_set: InMemoryDataset | None = None

    # -- what the model and the commands need to know -----------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of the images or ``(D,)`` of the rows in a batch (linked to the model by the CLI)."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def normal_val_set(self) -> InMemoryDataset:
        """The validation items known to be normal (all of them unless the validation set marks
        anomalies): the scorer's threshold is fitted on them."""
        val = self._require("val_set")
        if "anomaly" in val.extras and bool(val.extras["anomaly"].any()):
            return val.subset(val.extras["anomaly"] == 0)
        return val

    def input_spec(self) -> dict:
        """The raw inputs as JSON-able data (:mod:`aelab.data.inputs`): kind, shape and how files are read."""
        raise NotImplementedError(f"{type(self).__name__} cannot describe its raw inputs")

    def read_raw(self, path: str | Path) -> tuple[torch.Tensor, list[str]]:
        """New raw inputs at ``path`` (files, a folder, an IDX file, a table) and their names, read exactly
        as the training data was: uint8 images ``(N, C, H, W)`` or raw rows ``(N, D)``.

        Raises:
            aelab.data.errors.DataError: unreadable input, or input of the wrong shape or columns (naming
                the file and what the model expects).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot read new inputs")

    def as_raw(self, x) -> torch.Tensor:
        """Raw inputs given in memory (numpy, torch, pandas) checked and converted to the raw tensor form.

        Raises:
            aelab.data.errors.DataError: another shape, dtype or set of columns.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot take in-memory inputs")

    def raw_test_inputs(self) -> torch.Tensor:
        """The test items as raw inputs (what an exported model takes): uint8 images or raw rows."""
        return self._require("test_set").inputs

    def preprocessor(self) -> nn.Module:
        """Raw inputs -> model inputs, as a module (the same one runs in eager scoring and in an exported
        graph): uint8 images ``(N, C, H, W)`` -> float32 in [0, 1] (tables: transforms and scaling)."""
        from aelab.data.transforms import ToFloat

        return ToFloat()

    # -- device-resident data -----------------------------------------------------------------------
    def data_bytes(self) -> int:
        """Bytes of every set this module holds."""
        sets = {id(d): d for d in (self.train_set, self.val_set, self.test_set, self.labeled_train_set,
                                   getattr(self, "labeled_val_set", None)) if d is not None}
        return sum(t.numel() * t.element_size() for d in sets.values()
                   for t in (d.inputs, d.labels, *d.extras.values()))

    def place_on_device(self) -> None:
        """Move every set to the trainer's device once, when ``device_resident`` says so (see the class
        docstring); prints what it did. Called by the loaders."""
        trainer = getattr(self, "trainer", None)
        if self.device_resident is False or trainer is None or self.resident_device is not None:
            return
        device = torch.device(trainer.strategy.root_device)
        if self.device_resident == "auto":
            if device.type != "cuda":
                return
            free, total = torch.cuda.mem_get_info(device)
            if self.data_bytes() > DEVICE_MEMORY_FRACTION * total:
                print(f"{type(self).__name__}: {self.data_bytes() / 2**20:.0f} MiB of data stay on the CPU (more "
                      f"than {DEVICE_MEMORY_FRACTION:.0%} of the {total / 2**30:.0f} GiB of {device})", flush=True)
                return
        moved = {}
        for name in ("train_set", "val_set", "test_set", "labeled_train_set", "labeled_val_set"):
            data = getattr(self, name, None)
            if data is not None:
                moved.setdefault(id(data), data.to(device))
                setattr(self, name, moved[id(data)])
        self.resident_device = device
        self.num_workers = 0  # batches are drawn on the device
        print(f"{type(self).__name__}: {self.data_bytes() / 2**20:.0f} MiB of data resident on {device}", flush=True)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """Batches already on ``device`` (CPU training, device-resident data) pass through without
        Lightning's walk over the collection (a measurable cost per step for small models)."""
        if on_device(batch, device):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # -- loaders ----------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader | CombinedLoader:
        train = self._require("labeled_train_set" if self.labeled_only else "train_set")
        self.place_on_device()
        train = getattr(self, "labeled_train_set" if self.labeled_only else "train_set")
        loader = batch_loader(train, self.batch_size, True, self.seed, self.num_workers)
        if self.labeled_batch_size is None:
            return loader
        labeled = self._require("labeled_train_set")
        if labeled is None or len(labeled) == 0:
            raise ValueError(f"{type(self).__name__}: labeled_batch_size is set but there are no labeled "
                             "training items (set labels_per_class or use a protocol with labels)")
        labeled_loader = batch_loader(labeled, self.labeled_batch_size, True, self.seed + 1, self.num_workers)
        return CombinedLoader({"unlabeled": loader, "labeled": labeled_loader}, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader:
        self._require("val_set")
        self.place_on_device()
        return batch_loader(self.val_set, self.batch_size, False, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        self._require("test_set")
        self.place_on_device()
        return batch_loader(self.test_set, self.batch_size, False, num_workers=self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def _require(self, name: str) -> InMemoryDataset:
        if self.train_set is None:
            self.setup("fit" if name != "test_set" else "test")
        return getattr(self, name)


def on_device(batch, device: torch.device) -> bool:
    """Whether every tensor of a batch dict (or of a paired batch of dicts) is on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.device == device
    if isinstance(batch, dict):
        return all(on_device(v, device) for v in batch.values())
    return False


def all_true(n: int) -> torch.Tensor:
    """``(n,)`` bool, all true."""
    return torch.ones(n, dtype=torch.bool)
