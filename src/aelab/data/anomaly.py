"""Anomaly / novelty detection protocols on Fashion-MNIST (see shared DATA.md).

* :class:`Fashion5DataModule`: the Fashion-5 semi-supervised protocol. In-distribution classes
  Trouser, Sandal, Sneaker, Bag, Ankle boot (relabelled 0..4). From their 30,000 training images, a
  seeded draw of 26,000 unlabeled and 2,000 labeled images, each split 80/20 into train/validation
  (20,800 + 1,600 train, 5,200 + 400 validation). Test: 2,000 normal images drawn from the official
  test set plus ``num_anomalies`` anomalies: occluded normal test images (``occlusion``), images of
  the five other classes (``novel_class``), or ``num_anomalies`` of each (``both``).
* :class:`OneClassDataModule`: the one-class protocol (Ruff et al. 2018, Deep SVDD; Golan & El-Yaniv
  2018): train on the training images of the normal class(es), test on the whole 10,000-image test
  set, every other class anomalous.

Batches carry ``"anomaly"`` (0 normal, 1 anomalous), ``"anomaly_type"`` (0 normal, 1 occlusion,
2 novel class) and ``"labeled"`` (bool: the class label may be used for training); ``"label"`` is
the in-distribution class (0..k-1), or -1 where unknown (novel-class anomalies).
"""

from __future__ import annotations

import torch

from aelab.data.base import InMemoryImages, seeded_split
from aelab.data.fashion_mnist import FashionMNISTDataModule, labeled_mask
from aelab.data.transforms import occlude

FASHION5_CLASSES = ("Trouser", "Sandal", "Sneaker", "Bag", "Ankle boot")
ANOMALY_KINDS = ("occlusion", "novel_class", "both")
NORMAL, OCCLUSION, NOVEL = 0, 1, 2


def _extras(n: int, anomaly_type: int, labeled: bool | torch.Tensor = False) -> dict[str, torch.Tensor]:
    labeled_t = labeled if isinstance(labeled, torch.Tensor) else torch.full((n,), labeled, dtype=torch.bool)
    return {
        "anomaly": torch.full((n,), int(anomaly_type != NORMAL), dtype=torch.long),
        "anomaly_type": torch.full((n,), anomaly_type, dtype=torch.long),
        "labeled": labeled_t,
    }


def concat(parts: list[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]], pad: int | None) -> InMemoryImages:
    """Concatenate ``(images, labels, extras)`` parts into one :class:`InMemoryImages`."""
    images = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts])
    extras = {k: torch.cat([p[2][k] for p in parts]) for k in parts[0][2]}
    return InMemoryImages(images, labels, extras, pad=pad)


class AnomalyDataModule(FashionMNISTDataModule):
    """Shared options of the anomaly protocols: what the anomalies are and how they look.

    Args:
        normal_classes: in-distribution classes (names or ids), relabelled ``0..k-1``.
        anomaly_kind: ``occlusion``, ``novel_class`` or ``both``.
        num_anomalies: anomalies of each kind in the test set (``None``: protocol default).
        occlusion_size: rectangle side range as fractions of the image side.
        occlusion_fill: rectangle fill value in [0, 1] (0 = black, as in the report).
        (other arguments: see :class:`~aelab.data.FashionMNISTDataModule`)
    """

    def __init__(self, normal_classes: list[int | str], anomaly_kind: str = "occlusion",
                 num_anomalies: int | None = None, occlusion_size: tuple[float, float] = (0.25, 0.5),
                 occlusion_fill: float = 0.0, **kwargs) -> None:
        if anomaly_kind not in ANOMALY_KINDS:
            raise ValueError(f"anomaly_kind must be one of {ANOMALY_KINDS}, got {anomaly_kind!r}")
        super().__init__(classes=normal_classes, **kwargs)
        if len(self.classes) == 10 and anomaly_kind != "occlusion":
            raise ValueError("normal_classes lists all 10 classes: no class is left for novel-class anomalies")
        self.anomaly_kind = anomaly_kind
        self.num_anomalies = num_anomalies
        self.occlusion_size = tuple(occlusion_size)
        self.occlusion_fill = occlusion_fill
        self.novel_classes = [c for c in range(10) if c not in self.classes]

    def _anomalies(self, normal_pool: torch.Tensor, normal_labels: torch.Tensor, n: int | None,
                   generator: torch.Generator) -> list:
        """Anomaly parts ``(images, labels, extras)`` of the configured kind(s): ``n`` occluded copies
        of images from ``normal_pool`` and ``n`` images of the novel classes (``n=None``: all of them)."""
        t = self.tensors()
        parts = []
        if self.anomaly_kind in ("occlusion", "both"):
            n_occ = len(normal_pool) // 10 if n is None else n
            if n_occ > len(normal_pool):
                raise ValueError(f"num_anomalies={n} but only {len(normal_pool)} normal test images to occlude")
            idx = torch.randperm(len(normal_pool), generator=generator)[:n_occ]
            damaged = occlude(normal_pool[idx], generator, self.occlusion_size, self.occlusion_fill)
            parts.append((damaged, normal_labels[idx], _extras(n_occ, OCCLUSION)))
        if self.anomaly_kind in ("novel_class", "both"):
            pool = t["test_images"][torch.isin(t["test_labels"], torch.tensor(self.novel_classes))]
            n_novel = len(pool) if n is None else n
            if n_novel > len(pool):
                raise ValueError(f"num_anomalies={n} but only {len(pool)} novel-class test images")
            idx = torch.randperm(len(pool), generator=generator)[:n_novel].sort().values
            parts.append((pool[idx], torch.full((n_novel,), -1, dtype=torch.long), _extras(n_novel, NOVEL)))
        return parts


class Fashion5DataModule(AnomalyDataModule):
    """The Fashion-5 semi-supervised anomaly protocol (module docstring).

    Args:
        normal_classes: the five in-distribution classes (default: Trouser, Sandal, Sneaker, Bag,
            Ankle boot).
        num_unlabeled, num_labeled: training-pool draws (26,000 and 2,000).
        val_fraction: fraction of each draw held out for validation (0.2).
        num_test_normal: normal test images (2,000).
        num_anomalies: anomalies of each kind (104).
        labels_per_class: keep only this many of the labeled *training* images per class (seeded);
            the rest join the unlabeled images (``None``: all 1,600, about 320 per class).
        labeled_batch_size, labeled_only: paired unlabeled/labeled training batches for
            semi-supervised models, or the labeled images alone for supervised ones (see
            :class:`~aelab.data.base.InMemoryDataModule`).
        pad_to_32: zero-pad to 32x32 as in the report.
        (other arguments: see :class:`AnomalyDataModule`)

    Splits: ``train_set`` (unlabeled + labeled training images; ``"labeled"`` marks the labeled
    ones, the label of the others is kept for reference only and must not be used for training —
    models read it only where ``labeled`` is true), ``val_set`` (likewise, all normal),
    ``test_set`` (normal + anomalies, ``"anomaly"`` set). ``labeled_train_set`` /
    ``labeled_val_set`` hold the labeled images alone.
    """

    def __init__(self, normal_classes: list[int | str] = list(FASHION5_CLASSES), anomaly_kind: str = "occlusion",
                 num_anomalies: int = 104, num_unlabeled: int = 26_000, num_labeled: int = 2_000,
                 val_fraction: float = 0.2, num_test_normal: int = 2_000,
                 occlusion_size: tuple[float, float] = (0.25, 0.5), occlusion_fill: float = 0.0,
                 labels_per_class: int | None = None,
                 data_dir: str | None = "data", download: bool = True, verify: bool = True,
                 pad_to_32: bool = False, batch_size: int = 128, labeled_batch_size: int | None = None,
                 labeled_only: bool = False, seed: int = 42, num_workers: int = 0) -> None:
        super().__init__(normal_classes, anomaly_kind, num_anomalies, occlusion_size, occlusion_fill,
                         data_dir=data_dir, download=download, verify=verify, pad_to_32=pad_to_32,
                         labels_per_class=labels_per_class, batch_size=batch_size,
                         labeled_batch_size=labeled_batch_size, labeled_only=labeled_only, seed=seed,
                         num_workers=num_workers)
        self.num_unlabeled, self.num_labeled = num_unlabeled, num_labeled
        self.val_fraction = val_fraction
        self.num_test_normal = num_test_normal
        self.labeled_val_set: InMemoryImages | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = self.class_images("train")
        unl, lab = seeded_split(len(images), [self.num_unlabeled, self.num_labeled], self.seed)
        n_uv = round(self.val_fraction * len(unl))
        n_lv = round(self.val_fraction * len(lab))
        u_tr, u_va = (unl[i] for i in seeded_split(len(unl), [len(unl) - n_uv, n_uv], self.seed + 1))
        l_tr, l_va = (lab[i] for i in seeded_split(len(lab), [len(lab) - n_lv, n_lv], self.seed + 2))
        if self.labels_per_class is not None:
            keep = labeled_mask(labels[l_tr], self.labels_per_class, self.seed + 5)
            u_tr, l_tr = torch.cat([u_tr, l_tr[~keep]]), l_tr[keep]

        def part(idx, is_labeled):
            return images[idx], labels[idx], _extras(len(idx), NORMAL, is_labeled)

        self.train_set = concat([part(u_tr, False), part(l_tr, True)], self.pad)
        self.val_set = concat([part(u_va, False), part(l_va, True)], self.pad)
        self.labeled_train_set = concat([part(l_tr, True)], self.pad)
        self.labeled_val_set = concat([part(l_va, True)], self.pad)

        test_images, test_labels = self.class_images("test")
        normal_idx, rest_idx = seeded_split(len(test_images), [self.num_test_normal,
                                            len(test_images) - self.num_test_normal], self.seed + 3)
        g = torch.Generator().manual_seed(self.seed + 4)
        parts = [(test_images[normal_idx], test_labels[normal_idx], _extras(len(normal_idx), NORMAL, True))]
        parts += self._anomalies(test_images[rest_idx], test_labels[rest_idx], self.num_anomalies, g)
        self.test_set = concat(parts, self.pad)


class OneClassDataModule(AnomalyDataModule):
    """One-class protocol: train on the normal class(es), test on the whole 10,000-image test set.

    The training/validation split is :class:`~aelab.data.FashionMNISTDataModule`'s, restricted to
    the normal classes; only the test set differs.

    Args:
        normal_classes: the normal class(es), names or ids (e.g. ``[0]`` or ``["Sneaker"]``).
        anomaly_kind: ``novel_class`` (the protocol: every other class is anomalous), or
            ``occlusion`` / ``both`` (occluded copies of normal test images added).
        num_anomalies: anomalies of each kind; ``None`` (the protocol): all 9,000 novel-class test
            images, and one occluded copy per ten normal test images.
        val_size: validation images held out from the normal training images (int or fraction).
        (other arguments: see :class:`AnomalyDataModule`)
    """

    def __init__(self, normal_classes: list[int | str] = [0], anomaly_kind: str = "novel_class",
                 num_anomalies: int | None = None, val_size: int | float = 0.1,
                 occlusion_size: tuple[float, float] = (0.25, 0.5), occlusion_fill: float = 0.0,
                 data_dir: str | None = "data", download: bool = True, verify: bool = True,
                 pad_to_32: bool = False, batch_size: int = 128, seed: int = 42, num_workers: int = 0) -> None:
        super().__init__(normal_classes, anomaly_kind, num_anomalies, occlusion_size, occlusion_fill,
                         data_dir=data_dir, download=download, verify=verify, pad_to_32=pad_to_32,
                         val_size=val_size, batch_size=batch_size, seed=seed, num_workers=num_workers)

    def make_test_set(self) -> InMemoryImages:
        """All official test images of the normal classes, plus the anomalies of the configured kind."""
        normal_images, normal_labels = self.class_images("test")
        g = torch.Generator().manual_seed(self.seed + 4)
        parts = [(normal_images, normal_labels, _extras(len(normal_images), NORMAL, True))]
        parts += self._anomalies(normal_images, normal_labels, self.num_anomalies, g)
        return concat(parts, self.pad)
