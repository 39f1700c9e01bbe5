"""Data: sources (where images and rows come from), protocols (what is trained, validated and tested on,
composed with any source), in-memory data sets drawn by index batches, splits, transforms and
augmentation. Nothing here knows a model."""

from aelab.data.errors import DataError
from aelab.data.protocols import (
    ANOMALY_TYPES,
    AnomalyDataModule,
    ClassificationDataModule,
    Fashion5DataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    InMemoryDataModule,
    OneClassDataModule,
    TabularDataModule,
)
from aelab.data.sources import CLASS_NAMES, FashionMNIST, IDXImages, ImageFolder, ImageSource, SklearnDigits

__all__ = ["ANOMALY_TYPES", "AnomalyDataModule", "CLASS_NAMES", "ClassificationDataModule", "DataError",
           "Fashion5DataModule", "FashionMNIST", "FashionMNISTDataModule", "IDXImages", "ImageFolder",
           "ImageFolderDataModule", "ImageSource", "InMemoryDataModule", "OneClassDataModule", "SklearnDigits",
           "TabularDataModule"]
