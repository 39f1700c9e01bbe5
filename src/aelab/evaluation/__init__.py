"""Anomaly-detection evaluation: metrics, thresholds, plots and the ``aelab evaluate`` report."""

from aelab.evaluation.metrics import anomaly_metrics, pr_curve, roc_curve
from aelab.evaluation.thresholds import (
    confusion,
    f1_threshold,
    percentile_threshold,
    sweep_table,
    youden_threshold,
)

__all__ = [
    "anomaly_metrics", "confusion", "f1_threshold", "percentile_threshold", "pr_curve", "roc_curve",
    "sweep_table", "youden_threshold",
]
