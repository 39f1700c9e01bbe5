"""AUROC, AUPRC and their curves for anomaly scores of any scale (torchmetrics underneath).

torchmetrics' binary metrics treat float inputs outside [0, 1] as logits and apply a sigmoid: scores
in nats (hundreds) all become 1.0 and the AUROC collapses to 0.5. Scores are therefore min-max scaled
to [0, 1] in float64 first (order-preserving, so AUROC/AUPRC are unchanged) and thresholds are mapped
back to the score's own units.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_precision_recall_curve,
    binary_roc,
)


def _check(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
    labels = torch.as_tensor(labels).long().flatten()
    if scores.shape != labels.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} differ in length")
    if not torch.isfinite(scores).all():
        raise ValueError(f"{int((~torch.isfinite(scores)).sum())} anomaly scores are NaN or infinite")
    if labels.min() < 0 or labels.max() > 1:
        raise ValueError("labels must be 0 (normal) or 1 (anomalous)")
    return scores, labels


def _unit(scores: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    lo, hi = float(scores.min()), float(scores.max())
    span = hi - lo if hi > lo else 1.0
    return (scores - lo) / span, lo, span


def anomaly_metrics(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """AUROC and AUPRC (average precision, anomalies = positive class) of scores ``(N,)``.

    Raises:
        ValueError: if the labels hold only one class (both metrics are undefined), or on NaN scores.
    """
    scores, labels = _check(scores, labels)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == len(labels):
        raise ValueError(f"AUROC/AUPRC need normal and anomalous images; got {n_pos} anomalous of {len(labels)}")
    unit, _, _ = _unit(scores)
    return {
        "auroc": float(binary_auroc(unit, labels)),
        "auprc": float(binary_average_precision(unit, labels)),
        "anomaly_rate": n_pos / len(labels),
    }


def roc_curve(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(fpr, tpr, thresholds)``; thresholds in the score's units (decreasing), flagged = score >= t."""
    scores, labels = _check(scores, labels)
    unit, lo, span = _unit(scores)
    fpr, tpr, thr = binary_roc(unit, labels)
    return fpr, tpr, lo + thr.double() * span


def pr_curve(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(precision, recall, thresholds)`` as torchmetrics returns them (``len(thresholds) + 1``
    points), thresholds in the score's units (increasing)."""
    scores, labels = _check(scores, labels)
    unit, lo, span = _unit(scores)
    precision, recall, thr = binary_precision_recall_curve(unit, labels)
    return precision, recall, lo + thr.double() * span
