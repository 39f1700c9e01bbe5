"""What is trained, validated and tested on, for any source: plain classification
(:class:`ClassificationDataModule`, :class:`FashionMNISTDataModule`, :class:`ImageFolderDataModule`), the
normal-classes / one-class anomaly protocol (:class:`AnomalyDataModule`, :class:`OneClassDataModule`) and the
Fashion-5 semi-supervised protocol (:class:`Fashion5DataModule`); tables: :class:`TabularDataModule`."""

from aelab.data.protocols.anomaly import ANOMALY_TYPES, AnomalyDataModule, OneClassDataModule
from aelab.data.protocols.base import InMemoryDataModule
from aelab.data.protocols.classification import (
    ClassificationDataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
)
from aelab.data.protocols.fashion5 import FASHION5_CLASSES, Fashion5DataModule
from aelab.data.protocols.tabular import TabularDataModule

__all__ = ["ANOMALY_TYPES", "AnomalyDataModule", "ClassificationDataModule", "FASHION5_CLASSES",
           "Fashion5DataModule", "FashionMNISTDataModule", "ImageFolderDataModule", "InMemoryDataModule",
           "OneClassDataModule", "TabularDataModule"]
