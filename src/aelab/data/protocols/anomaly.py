"""Anomaly / novelty detection protocols on any image source.

* :class:`AnomalyDataModule`: train on the images of the normal class(es); test on the normal test
  images plus anomalies: occluded copies of normal test images (``occlusion``), images of the other
  classes (``novel_class``), both, or only a second data set (``ood``). With an ``ood`` source its
  images (converted to the in-distribution channels and size) are added as a third anomaly type.
  The one-class protocol (Ruff et al. 2018, Deep SVDD; Golan & El-Yaniv 2018) is this with one normal
  class and every other class anomalous; :class:`OneClassDataModule` runs it on Fashion-MNIST.
* Novel-class images come from the test part when the source has an official split (Fashion-MNIST:
  the official test images of the other classes), and otherwise from *all* images of the other
  classes (an image folder: they are never trained on; the Caltech-101 airplane protocol tests on
  held-out airplanes plus every other image).

Batches carry ``"anomaly"`` (0 normal, 1 anomalous), ``"anomaly_type"`` (see :data:`ANOMALY_TYPES`) and
``"labeled"``; ``"label"`` is the in-distribution class (0..k-1), or -1 where unknown.
"""

from __future__ import annotations

import torch

from aelab.data.datasets import InMemoryDataset, concat
from aelab.data.protocols.classification import ClassificationDataModule
from aelab.data.sources.base import TEST, ImageSource
from aelab.data.sources.fashion_mnist import FashionMNIST
from aelab.data.transforms import conform, occlude

NORMAL, OCCLUSION, NOVEL, OOD = 0, 1, 2, 3
ANOMALY_TYPES = {OCCLUSION: "occlusion", NOVEL: "novel_class", OOD: "ood"}
ANOMALY_KINDS = ("occlusion", "novel_class", "both", "ood")


def anomaly_extras(n: int, anomaly_type: int, labeled: bool | torch.Tensor = False) -> dict[str, torch.Tensor]:
    """The ``anomaly``, ``anomaly_type`` and ``labeled`` columns ``(n,)`` of ``n`` items of one type."""
    labeled_t = labeled if isinstance(labeled, torch.Tensor) else torch.full((n,), labeled, dtype=torch.bool)
    return {
        "anomaly": torch.full((n,), int(anomaly_type != NORMAL), dtype=torch.long),
        "anomaly_type": torch.full((n,), anomaly_type, dtype=torch.long),
        "labeled": labeled_t,
    }


class AnomalyDataModule(ClassificationDataModule):
    """Normal-classes anomaly protocol on any image source (module docstring).

    Args:
        source: the images (:mod:`aelab.data.sources`).
        normal_classes: in-distribution classes (names or ids), relabelled ``0..k-1``.
        anomaly_kind: ``occlusion``, ``novel_class``, ``both`` or ``ood`` (only the ``ood`` images).
        num_anomalies: anomalies of each kind in the test set; ``None``: every novel-class image and
            one occluded copy per ten normal test images.
        occlusion_size: rectangle side range as fractions of the image side.
        occlusion_fill: rectangle fill value in [0, 1] (0 = black).
        ood: a second image source whose images are all anomalies (``anomaly_type`` 3), e.g.
            :class:`aelab.data.sources.SklearnDigits` or :class:`aelab.data.sources.IDXImages`.
        num_ood: how many of them (a seeded draw; ``None``: all).
        (other arguments: see :class:`~aelab.data.protocols.classification.ClassificationDataModule`)

    Raises:
        ValueError: an unknown kind, ``ood`` kind without an ``ood`` source, or no class left for
            novel-class anomalies.
    """

    def __init__(self, source: ImageSource, normal_classes: list[int | str], anomaly_kind: str = "novel_class",
                 num_anomalies: int | None = None, occlusion_size: tuple[float, float] = (0.25, 0.5),
                 occlusion_fill: float = 0.0, ood: ImageSource | None = None, num_ood: int | None = None,
                 val_size: int | float = 0.1, test_size: int | float = 0.2, pad_to: int | None = None,
                 batch_size: int = 128, labeled_batch_size: int | None = None, labeled_only: bool = False,
                 labels_per_class: int | None = None, seed: int = 42, num_workers: int = 0,
                 device_resident: bool | str = "auto") -> None:
        if anomaly_kind not in ANOMALY_KINDS:
            raise ValueError(f"anomaly_kind must be one of {ANOMALY_KINDS}, got {anomaly_kind!r}")
        if anomaly_kind == "ood" and ood is None:
            raise ValueError("anomaly_kind='ood' needs an `ood` source (a second data set of anomalies)")
        super().__init__(source, classes=normal_classes, labels_per_class=labels_per_class, val_size=val_size,
                         test_size=test_size, pad_to=pad_to, batch_size=batch_size,
                         labeled_batch_size=labeled_batch_size, labeled_only=labeled_only, seed=seed,
                         num_workers=num_workers, device_resident=device_resident)
        self.anomaly_kind = anomaly_kind
        self.num_anomalies = num_anomalies
        self.occlusion_size = tuple(occlusion_size)
        self.occlusion_fill = occlusion_fill
        self.ood = ood
        self.num_ood = num_ood

    @property
    def novel_classes(self) -> list[int]:
        """Ids of the source's classes that are not normal.

        Raises:
            ValueError: novel-class anomalies asked for and every class is normal.
        """
        novel = [c for c in range(len(self.source_classes())) if c not in self.classes]
        if not novel and self.anomaly_kind in ("novel_class", "both"):
            raise ValueError("normal_classes lists every class: no class is left for novel-class anomalies")
        return novel

    def anomalies(self, normal_pool: torch.Tensor, normal_labels: torch.Tensor, n: int | None,
                  generator: torch.Generator) -> list:
        """Anomaly parts ``(images, labels, extras)`` of the configured kind(s): ``n`` occluded copies of
        images from ``normal_pool``, ``n`` novel-class images (``n=None``: all of them), and the ``ood`` images."""
        parts = []
        if self.anomaly_kind in ("occlusion", "both"):
            n_occ = len(normal_pool) // 10 if n is None else n
            if n_occ > len(normal_pool):
                raise ValueError(f"num_anomalies={n} but only {len(normal_pool)} normal test images to occlude")
            idx = torch.randperm(len(normal_pool), generator=generator)[:n_occ]
            damaged = occlude(normal_pool[idx], generator, self.occlusion_size, self.occlusion_fill)
            parts.append((damaged, normal_labels[idx], anomaly_extras(n_occ, OCCLUSION)))
        if self.anomaly_kind in ("novel_class", "both"):
            official = self.image_set().split is not None
            pool, _, _ = self.select(self.novel_classes, TEST if official else None)
            n_novel = len(pool) if n is None else n
            if n_novel > len(pool):
                raise ValueError(f"num_anomalies={n} but only {len(pool)} novel-class test images")
            idx = torch.randperm(len(pool), generator=generator)[:n_novel].sort().values
            parts.append((pool[idx], torch.full((n_novel,), -1, dtype=torch.long), anomaly_extras(n_novel, NOVEL)))
        if self.ood is not None:
            images = conform(self.ood.load().images, self.source.input_shape)
            n_ood = len(images) if self.num_ood is None else self.num_ood
            if n_ood > len(images):
                raise ValueError(f"num_ood={n_ood} but the ood source has {len(images)} images")
            idx = torch.randperm(len(images), generator=generator)[:n_ood].sort().values
            parts.append((images[idx], torch.full((n_ood,), -1, dtype=torch.long), anomaly_extras(n_ood, OOD)))
        return parts

    def make_test_set(self) -> InMemoryDataset:
        """The normal classes' test images plus the anomalies of the configured kind."""
        normal_images, normal_labels, _ = self.select(self.classes, TEST)
        g = torch.Generator().manual_seed(self.seed + 4)
        parts = [(normal_images, normal_labels, anomaly_extras(len(normal_images), NORMAL, True))]
        parts += self.anomalies(normal_images, normal_labels, self.num_anomalies, g)
        return concat(parts, self.pad)


class OneClassDataModule(AnomalyDataModule):
    """The one-class protocol on Fashion-MNIST: train on the normal class(es), test on the whole
    10,000-image test set (every other class anomalous).

    The training/validation split is :class:`~aelab.data.FashionMNISTDataModule`'s, restricted to the
    normal classes; only the test set differs.

    Args:
        normal_classes: the normal class(es), names or ids (e.g. ``[0]`` or ``["Sneaker"]``).
        anomaly_kind: ``novel_class`` (the protocol), ``occlusion`` / ``both`` (occluded copies of
            normal test images added) or ``ood`` (with ``ood``).
        num_anomalies: anomalies of each kind; ``None`` (the protocol): all 9,000 novel-class test
            images, and one occluded copy per ten normal test images.
        val_size: validation images held out from the normal training images (int or fraction).
        data_dir, download, verify: see :class:`aelab.data.sources.FashionMNIST`.
        pad_to_32: zero-pad to 32x32.
        (other arguments: see :class:`AnomalyDataModule`)
    """

    def __init__(self, normal_classes: list[int | str] = [0], anomaly_kind: str = "novel_class",
                 num_anomalies: int | None = None, val_size: int | float = 0.1,
                 occlusion_size: tuple[float, float] = (0.25, 0.5), occlusion_fill: float = 0.0,
                 ood: ImageSource | None = None, num_ood: int | None = None,
                 data_dir: str | None = "data", download: bool = True, verify: bool = True,
                 pad_to_32: bool = False, batch_size: int = 128, seed: int = 42, num_workers: int = 0,
                 device_resident: bool | str = "auto") -> None:
        super().__init__(FashionMNIST(data_dir, download, verify), normal_classes, anomaly_kind, num_anomalies,
                         occlusion_size, occlusion_fill, ood=ood, num_ood=num_ood, val_size=val_size,
                         pad_to=32 if pad_to_32 else None, batch_size=batch_size, seed=seed,
                         num_workers=num_workers, device_resident=device_resident)
