"""Anomaly-detection evaluation: metrics (:mod:`~aelab.evaluation.metrics`), label-based thresholds
(:mod:`~aelab.evaluation.thresholds`), the evaluation computed (:mod:`~aelab.evaluation.compute`) then
written (:mod:`~aelab.evaluation.write`), figures (:mod:`~aelab.evaluation.plots`) and the classifier's
view of anomalies (:mod:`~aelab.evaluation.classes`)."""

from aelab.evaluation.metrics import anomaly_metrics, pr_curve, roc_curve
from aelab.evaluation.thresholds import confusion, f1_threshold, sweep_table, youden_threshold

__all__ = ["anomaly_metrics", "confusion", "f1_threshold", "pr_curve", "roc_curve", "sweep_table", "youden_threshold"]
