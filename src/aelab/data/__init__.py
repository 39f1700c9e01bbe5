"""Where images come from: IDX files, in-memory datamodules, batch transforms."""

from aelab.data.anomaly import Fashion5DataModule, OneClassDataModule
from aelab.data.fashion_mnist import CLASS_NAMES, FashionMNISTDataModule
from aelab.data.idx import DataError

__all__ = ["CLASS_NAMES", "DataError", "Fashion5DataModule", "FashionMNISTDataModule", "OneClassDataModule"]
