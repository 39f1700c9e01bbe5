"""The Fashion-5 semi-supervised anomaly protocol (a published course report; see ``docs/data.md``).

In-distribution classes Trouser, Sandal, Sneaker, Bag, Ankle boot (relabelled 0..4). From their
30,000 training images, a seeded draw of 26,000 unlabeled and 2,000 labeled images, each split 80/20
into train/validation (20,800 + 1,600 train, 5,200 + 400 validation). Test: 2,000 normal images drawn
from the official test set plus ``num_anomalies`` anomalies: occluded normal test images
(``occlusion``), images of the five other classes (``novel_class``), ``num_anomalies`` of each
(``both``), and, with an ``ood`` source, a second data set.

The same protocol runs on any image source (``source``): the draws then come from the source's
training part of the normal classes (counts, or fractions of it), the normal test images from its test part.
"""

from __future__ import annotations

import torch

from aelab.data.datasets import InMemoryDataset, concat
from aelab.data.protocols.anomaly import NORMAL, AnomalyDataModule, anomaly_extras
from aelab.data.sources.base import TEST, TRAIN, ImageSource
from aelab.data.sources.fashion_mnist import FashionMNIST
from aelab.data.splits import count_of, labeled_mask, seeded_split

FASHION5_CLASSES = ("Trouser", "Sandal", "Sneaker", "Bag", "Ankle boot")


class Fashion5DataModule(AnomalyDataModule):
    """The Fashion-5 semi-supervised anomaly protocol (module docstring).

    Args:
        normal_classes: the five in-distribution classes (default: Trouser, Sandal, Sneaker, Bag,
            Ankle boot).
        num_unlabeled, num_labeled: training-pool draws (26,000 and 2,000; or fractions of the pool).
        val_fraction: fraction of each draw held out for validation (0.2).
        num_test_normal: normal test images (2,000; or a fraction of the test part).
        num_anomalies: anomalies of each kind (104).
        labels_per_class: keep only this many of the labeled *training* images per class (seeded);
            the rest join the unlabeled images (``None``: all 1,600, about 320 per class).
        labeled_batch_size, labeled_only: paired unlabeled/labeled training batches for
            semi-supervised models, or the labeled images alone for supervised ones (see
            :class:`~aelab.data.protocols.base.InMemoryDataModule`).
        source: the images (default: Fashion-MNIST from ``data_dir``, ``download``, ``verify``).
        pad_to_32: zero-pad to 32x32 as in the report.
        (other arguments: see :class:`~aelab.data.protocols.anomaly.AnomalyDataModule`)

    Splits: ``train_set`` (unlabeled + labeled training images; ``"labeled"`` marks the labeled
    ones, the label of the others is kept for reference only and must not be used for training —
    models read it only where ``labeled`` is true), ``val_set`` (likewise, all normal),
    ``test_set`` (normal + anomalies, ``"anomaly"`` set). ``labeled_train_set`` /
    ``labeled_val_set`` hold the labeled images alone.
    """

    def __init__(self, normal_classes: list[int | str] = list(FASHION5_CLASSES), anomaly_kind: str = "occlusion",
                 num_anomalies: int = 104, num_unlabeled: int | float = 26_000, num_labeled: int | float = 2_000,
                 val_fraction: float = 0.2, num_test_normal: int | float = 2_000,
                 occlusion_size: tuple[float, float] = (0.25, 0.5), occlusion_fill: float = 0.0,
                 labels_per_class: int | None = None, ood: ImageSource | None = None, num_ood: int | None = None,
                 source: ImageSource | None = None, data_dir: str | None = "data", download: bool = True,
                 verify: bool = True, test_size: int | float = 0.2, pad_to_32: bool = False, batch_size: int = 128,
                 labeled_batch_size: int | None = None, labeled_only: bool = False, seed: int = 42,
                 num_workers: int = 0,
                 device_resident: bool | str = "auto") -> None:
        super().__init__(source if source is not None else FashionMNIST(data_dir, download, verify),
                         normal_classes, anomaly_kind, num_anomalies, occlusion_size, occlusion_fill, ood=ood,
                         num_ood=num_ood, test_size=test_size, pad_to=32 if pad_to_32 else None,
                         batch_size=batch_size, labeled_batch_size=labeled_batch_size, labeled_only=labeled_only,
                         labels_per_class=labels_per_class, seed=seed, num_workers=num_workers, device_resident=device_resident)
        self.num_unlabeled, self.num_labeled = num_unlabeled, num_labeled
        self.val_fraction = val_fraction
        self.num_test_normal = num_test_normal
        self.labeled_val_set: InMemoryDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels, _ = self.select(self.classes, TRAIN)
        n_unl = count_of(self.num_unlabeled, len(images), "num_unlabeled")
        n_lab = count_of(self.num_labeled, len(images), "num_labeled")
        unl, lab = seeded_split(len(images), [n_unl, n_lab], self.seed)
        n_uv = round(self.val_fraction * len(unl))
        n_lv = round(self.val_fraction * len(lab))
        u_tr, u_va = (unl[i] for i in seeded_split(len(unl), [len(unl) - n_uv, n_uv], self.seed + 1))
        l_tr, l_va = (lab[i] for i in seeded_split(len(lab), [len(lab) - n_lv, n_lv], self.seed + 2))
        if self.labels_per_class is not None:
            keep = labeled_mask(labels[l_tr], self.labels_per_class, self.seed + 5)
            u_tr, l_tr = torch.cat([u_tr, l_tr[~keep]]), l_tr[keep]

        def part(idx, is_labeled):
            return images[idx], labels[idx], anomaly_extras(len(idx), NORMAL, is_labeled)

        self.train_set = concat([part(u_tr, False), part(l_tr, True)], self.pad)
        self.val_set = concat([part(u_va, False), part(l_va, True)], self.pad)
        self.labeled_train_set = concat([part(l_tr, True)], self.pad)
        self.labeled_val_set = concat([part(l_va, True)], self.pad)

        test_images, test_labels, _ = self.select(self.classes, TEST)
        n_normal = count_of(self.num_test_normal, len(test_images), "num_test_normal")
        normal_idx, rest_idx = seeded_split(len(test_images), [n_normal, len(test_images) - n_normal], self.seed + 3)
        g = torch.Generator().manual_seed(self.seed + 4)
        parts = [(test_images[normal_idx], test_labels[normal_idx], anomaly_extras(len(normal_idx), NORMAL, True))]
        parts += self.anomalies(test_images[rest_idx], test_labels[rest_idx], self.num_anomalies, g)
        self.test_set = concat(parts, self.pad)
