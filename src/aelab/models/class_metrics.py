"""Classification metrics shared by the models that predict classes (torchmetrics).

Logged per stage: ``{stage}_acc`` (micro accuracy: correct / all) and ``{stage}_f1`` (macro F1);
on the test set also the confusion matrix (``model.test_confusion``, rows = true class; the CLI draws
it into TensorBoard with the data's class names, :func:`aelab.evaluation.plots.confusion_figure`). Only images with a known in-distribution class count: ``label >= 0`` and, where the
batch says so, ``anomaly == 0``; in training and validation also only images marked ``labeled``.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score


def known_class_mask(batch: dict[str, torch.Tensor], only_labeled: bool) -> torch.Tensor:
    """``(B,)`` bool: images whose class may be used (in-distribution, label >= 0, and marked
    ``labeled`` if ``only_labeled``)."""
    mask = batch["label"] >= 0
    if "anomaly" in batch:
        mask &= batch["anomaly"] == 0
    if only_labeled and "labeled" in batch:
        mask &= batch["labeled"].bool()
    return mask


class ClassificationMetricsMixin:
    """Adds accuracy / macro-F1 per stage and the test confusion matrix to an :class:`AelabModule`.

    The host's :meth:`losses` returns ``"_logits"`` ``(M, K)`` and ``"_labels"`` ``(M,)`` for the
    images whose class is known; :meth:`update_metrics` feeds them to torchmetrics.
    """

    def init_classification_metrics(self, num_classes: int) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        # keys are not bare stage names: nn.ModuleDict refuses "train" (a Module method)
        self.class_metrics = nn.ModuleDict({
            f"{stage}_metrics": MetricCollection({
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1": MulticlassF1Score(num_classes, average="macro"),
            }, prefix=f"{stage}_")
            for stage in ("train", "val", "test")
        })
        self.test_confusion_metric = MulticlassConfusionMatrix(num_classes)
        self.test_confusion: list[list[int]] | None = None

    def labels_usable_now(self) -> bool:
        """Training and validation use only images marked ``labeled`` (the protocol's labels, also for
        model selection); testing measures every in-distribution test image."""
        return not (self._trainer is not None and self.trainer.testing)

    def check_labels(self, labels: torch.Tensor) -> None:
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"{type(self).__name__}: labels must be in 0..{self.num_classes - 1} "
                             f"(model.num_classes={self.num_classes}), got {labels.min()}..{labels.max()}")

    def update_metrics(self, stage: str, out: dict[str, Any]) -> None:
        logits, labels = out.get("_logits"), out.get("_labels")
        if logits is None or labels.numel() == 0:
            return
        metrics = self.class_metrics[f"{stage}_metrics"]
        metrics.update(logits.detach(), labels)
        if stage != "train":  # training metrics are logged once, at the end of the epoch
            self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage == "val")  # they sync themselves
        if stage == "val":
            self._val_class_updates += 1
        if stage == "test":
            self.test_confusion_metric.update(logits.detach(), labels)

    def on_train_epoch_end(self) -> None:
        metrics = self.class_metrics["train_metrics"]
        if any(m.update_count for m in metrics.values()):
            self.log_dict(metrics)
        super().on_train_epoch_end()

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._val_class_updates = 0

    def on_validation_epoch_end(self) -> None:
        """Logs ``val_acc`` / ``val_f1`` as NaN (with a warning) when the validation batches held no labeled
        image (e.g. ``limit_val_batches`` stopped before the labeled part), so a checkpoint callback that
        monitors them keeps working instead of failing at the end of the epoch."""
        super().on_validation_epoch_end()
        if getattr(self, "_val_class_updates", 1) == 0 and not self.trainer.sanity_checking:
            rank_zero_warn("no labeled image in this epoch's validation batches: val_acc and val_f1 are NaN "
                           "(check limit_val_batches)")
            self.log_dict({"val_acc": float("nan"), "val_f1": float("nan")}, sync_dist=True)

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.test_confusion_metric.reset()

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.test_confusion_metric.update_count == 0:
            return
        self.test_confusion = self.test_confusion_metric.compute().long().tolist()
