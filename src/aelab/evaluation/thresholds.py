"""Label-based thresholds (oracles for reports) and reading off a threshold's confusion matrix.

An item is flagged anomalous when ``score >= threshold``.

* Youden's J (Youden 1950, "Index for rating diagnostic tests"): the ROC point maximising
  ``J = TPR - FPR``.
* Best F1: the threshold maximising ``F1 = 2 P R / (P + R)`` on the precision-recall curve.

Both are chosen on the labels they are then measured on: the best a score can do, not a threshold
one could deploy. The deployable, label-free rules live in :mod:`aelab.scoring.thresholds`.

The sweep table mirrors the threshold tables of the published Caltech-101 anomaly study: accuracy,
precision, recall, F1 and TP/FP/TN/FN per threshold.
"""

from __future__ import annotations

import torch

from aelab.evaluation.metrics import _check, pr_curve, roc_curve


def confusion(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, float]:
    """Confusion matrix and rates of flagging ``score >= threshold`` (anomaly = positive).

    Returns ``{"threshold", "tp", "fp", "tn", "fn", "accuracy", "precision", "recall", "f1",
    "fpr"}``; precision is 0 when nothing is flagged.
    """
    scores, labels = _check(scores, labels)
    flagged = scores >= threshold
    tp = int((flagged & (labels == 1)).sum())
    fp = int((flagged & (labels == 0)).sum())
    fn = int((~flagged & (labels == 1)).sum())
    tn = int((~flagged & (labels == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": float(threshold), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "accuracy": (tp + tn) / len(labels), "precision": precision, "recall": recall, "f1": f1,
            "fpr": fp / (fp + tn) if fp + tn else 0.0}


def youden_threshold(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The ROC threshold maximising Youden's ``J = TPR - FPR`` (first one on ties)."""
    fpr, tpr, thr = roc_curve(scores, labels)
    finite = torch.isfinite(thr)
    j = torch.where(finite, tpr - fpr, torch.tensor(-2.0, dtype=tpr.dtype))
    return float(thr[int(torch.argmax(j))])


def f1_threshold(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The threshold maximising F1 on the precision-recall curve."""
    precision, recall, thr = pr_curve(scores, labels)
    precision, recall = precision[:-1].double(), recall[:-1].double()
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall),
                     torch.zeros_like(precision))
    return float(thr[int(torch.argmax(f1))])


def sweep_table(scores: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor | None = None,
                num: int = 11) -> list[dict[str, float]]:
    """:func:`confusion` at each threshold; by default ``num`` quantiles of the scores from 50 % to 100 %
    (where thresholds of interest lie when anomalies are rare)."""
    scores_t = torch.as_tensor(scores, dtype=torch.float64)
    if thresholds is None:
        thresholds = torch.quantile(scores_t, torch.linspace(0.5, 1.0, num, dtype=torch.float64))
    return [confusion(scores, labels, float(t)) for t in thresholds]
