"""Fashion-MNIST as an image source (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747): 70,000 28x28
grey images of 10 classes with the official 60,000 / 10,000 train / test split, read from the four IDX
files (:mod:`aelab.data.sources.idx`: the configured ``data_dir``, then the Debian package's folder,
then the official mirror; checksums verified)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from aelab.data.sources.base import TEST, TRAIN, ImageSet, ImageSource
from aelab.data.sources.idx import load_fashion_mnist

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


@functools.lru_cache(maxsize=4)
def fashion_mnist_set(data_dir: str | None, download: bool, verify: bool = True) -> ImageSet:
    """The whole data set as one :class:`ImageSet` (the 60,000 training images first), loaded (and
    checksum-verified) once per process: images ``(70000, 1, 28, 28)`` uint8, labels ``(70000,)``,
    ``split`` TRAIN / TEST.

    Raises:
        aelab.data.errors.DataError: if a file is missing, truncated or corrupt.
    """
    tr_x, tr_y, te_x, te_y = load_fashion_mnist(data_dir, download=download, verify_checksums=verify)
    images = torch.from_numpy(np.ascontiguousarray(np.concatenate([tr_x, te_x]))).unsqueeze(1)
    labels = torch.from_numpy(np.concatenate([tr_y, te_y]).astype(np.int64))
    split = torch.cat([torch.full((len(tr_y),), TRAIN), torch.full((len(te_y),), TEST)])
    return ImageSet(images, labels, CLASS_NAMES, split)


class FashionMNIST(ImageSource):
    """Fashion-MNIST from its IDX files.

    Args:
        data_dir: where to look for (and download to) the four IDX files; then
            ``/usr/share/datasets/fashion-mnist``; then the official mirror. A ``data_dir`` holding only
            some of the four files is an error (copies are never mixed).
        download: allow downloading from the official mirror into ``data_dir``.
        verify: check size and sha256 of the decompressed files against the official ones; switch
            off to load other IDX files with the same names and layout (e.g. MNIST, or test data).
    """

    def __init__(self, data_dir: str | None = "data", download: bool = True, verify: bool = True) -> None:
        self.data_dir = data_dir
        self.download = download
        self.verify = verify

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28)

    def load(self) -> ImageSet:
        data_dir = str(Path(self.data_dir).expanduser()) if self.data_dir is not None else None
        return fashion_mnist_set(data_dir, self.download, self.verify)

    def describe(self) -> str:
        return f"Fashion-MNIST (data_dir {self.data_dir})"
