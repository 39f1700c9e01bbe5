"""Encoding a data split into latent codes.

:func:`encode_split` runs ``model.encode`` over (a subset of) one split of a datamodule and returns an
:class:`Embedding`: codes ``(N, latent_dim)`` float32, labels ``(N,)`` int64, the images ``(N, C, H, W)``
as uint8 (optional; for sprites and interpolations) and the positions ``(N,)`` of the encoded items in
the split's data set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from aelab.runs import batches

SPLITS = ("train", "val", "test")
_STAGE = {"train": "fit", "val": "fit", "test": "test"}


@dataclass
class Embedding:
    """Latent codes of a set of images.

    Attributes:
        codes: ``(N, latent_dim)`` float32, ``model.encode(x)`` (the posterior mean for a VAE).
        labels: ``(N,)`` int64 class labels (``-1`` = unknown).
        index: ``(N,)`` int64 positions of the items in the split's data set.
        images: ``(N, C, H, W)`` uint8 images (pixel value * 255, rounded), or ``None``.
    """

    codes: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, rows: np.ndarray) -> Embedding:
        """The rows ``rows`` (an index array) of every field."""
        return Embedding(self.codes[rows], self.labels[rows], self.index[rows],
                         None if self.images is None else self.images[rows])

    def float_images(self) -> torch.Tensor:
        """The images as a float32 tensor ``(N, C, H, W)`` in [0, 1]."""
        if self.images is None:
            raise ValueError("this Embedding was computed with keep_images=False")
        return torch.from_numpy(self.images).float().div_(255.0)


def split_dataset(datamodule, split: str) -> Dataset:
    """The data set of ``split`` (``"train"``, ``"val"`` or ``"test"``) of a datamodule, set up as needed.

    Uses the datamodule's ``{split}_set`` attribute (see :class:`aelab.data.base.InMemoryDataModule`),
    calling ``prepare_data()`` and ``setup(stage)`` first if it is not there yet.

    Raises:
        ValueError: for an unknown split name, or if the datamodule has no such data set.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if datamodule is None:
        raise ValueError("a datamodule is needed to encode a split (give `--data` or a config with `data:`)")
    attr = f"{split}_set"
    if getattr(datamodule, attr, None) is None:
        datamodule.prepare_data()
        datamodule.setup(_STAGE[split])
    dataset = getattr(datamodule, attr, None)
    if dataset is None:
        raise ValueError(f"{type(datamodule).__name__} has no {attr!r} after setup('{_STAGE[split]}'); "
                         f"it cannot provide the {split!r} split")
    return dataset


def seeded_subset(n: int, k: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a seeded random subset of ``min(k, n)`` of ``range(n)`` (all if ``k`` is None)."""
    if k is None or k >= n:
        return np.arange(n)
    if k < 1:
        raise ValueError(f"subset size must be >= 1, got {k}")
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


@torch.inference_mode()
def encode_dataset(
    model,
    dataset: Dataset,
    indices: np.ndarray | None = None,
    batch_size: int = 500,
    keep_images: bool = True,
    device: torch.device | str | None = None,
) -> Embedding:
    """Encodes ``dataset[indices]`` (all items if ``indices`` is None) with ``model.encode``.

    Args:
        model: any model with ``encode(x: (B, C, H, W)) -> (B, latent_dim)``; put in eval mode here.
        dataset: items (or index batches) are dicts with ``"input"`` and ``"label"``.
        indices: positions to encode, in this order.
        batch_size: images per forward pass.
        keep_images: also return the images (uint8).
        device: where to run the model (default: where its parameters are).
    """
    model.eval()
    if device is not None:
        model.to(device)
    device = next(model.parameters()).device if device is None else torch.device(device)
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    codes, labels, images = [], [], []
    for batch in batches(dataset, batch_size, indices):
        x = batch["input"]
        z = model.encode(x.to(device))
        if z.ndim != 2:
            raise ValueError(f"{type(model).__name__}.encode returned shape {tuple(z.shape)}, expected (B, latent_dim)")
        codes.append(z.float().cpu().numpy())
        labels.append(batch["label"].long().cpu().numpy())
        if keep_images:
            images.append((x.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy())
    if not codes:
        raise ValueError("nothing to encode: the data set (or subset) is empty")
    return Embedding(
        codes=np.concatenate(codes).astype(np.float32),
        labels=np.concatenate(labels).astype(np.int64),
        index=indices.copy(),
        images=np.concatenate(images) if keep_images else None,
    )


def encode_split(model, datamodule, split: str = "test", max_items: int | None = None, seed: int = 0,
                 keep_images: bool = True, batch_size: int = 500, device=None) -> Embedding:
    """Encodes ``split`` of ``datamodule`` (a seeded subset of ``max_items`` if given; all otherwise).

    Returns an :class:`Embedding` whose ``index`` holds the positions in the split's data set.
    """
    dataset = split_dataset(datamodule, split)
    indices = seeded_subset(len(dataset), max_items, seed)
    return encode_dataset(model, dataset, indices, batch_size=batch_size, keep_images=keep_images, device=device)
