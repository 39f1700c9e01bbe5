"""Which input features a summed per-feature anomaly score should add up, chosen on labelled rows.

A per-feature score (e.g. ``-log p(x_j | z)`` of :func:`aelab.scoring.functions.recon_nll_per_feature`) is summed
over a subset ``F`` of the features; ``F`` is found by greedy backward elimination (the wrapper
approach of Kohavi & John 1997, "Wrappers for feature subset selection", Artificial Intelligence 97,
Sec. 3; Guyon & Elisseeff 2003, JMLR 3, Sec. 4.2): start from all features, drop the one whose removal
raises the average precision (AUPRC) of the summed score the most, stop when no removal raises it.
The rows must be ones the test never sees (e.g. normal validation rows plus anomalies from the training
period); the choice then uses anomaly labels, which makes the detector semi-supervised.
"""

from __future__ import annotations

import numpy as np


def backward_feature_subset(feature_scores: np.ndarray, labels: np.ndarray,
                            sample_weight: np.ndarray | None = None,
                            min_features: int = 1) -> tuple[list[int], list[dict]]:
    """Greedy backward elimination of the columns of ``feature_scores`` on the AUPRC of their row sums.

    Args:
        feature_scores: ``(N, D)`` per-feature anomaly scores of labelled rows (higher = more anomalous).
        labels: ``(N,)`` 0 (normal) / 1 (anomalous); both classes present.
        sample_weight: ``(N,)`` row weights for the AUPRC (e.g. normal rows weighted up to the deployed
            anomaly rate), or ``None``.
        min_features: stop before fewer features than this remain.

    Returns:
        ``(kept, path)``: the kept column indices in increasing order, and one entry per step
        ``{"dropped": index or None, "auprc": AUPRC after the step}`` (the first entry: all features).

    Raises:
        ValueError: shapes that do not match, non-finite scores, labels other than 0 / 1 or of one
            class only, ``min_features`` outside ``1 .. D``.
    """
    from sklearn.metrics import average_precision_score

    scores = np.asarray(feature_scores, dtype=np.float64)
    y = np.asarray(labels).astype(int).ravel()
    if scores.ndim != 2 or len(scores) != len(y):
        raise ValueError(f"feature_scores must be (N, D) with N = len(labels) = {len(y)}, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} per-feature scores are NaN or infinite")
    if set(np.unique(y)) != {0, 1}:
        raise ValueError(f"labels must hold both 0 (normal) and 1 (anomalous), got values {sorted(set(y))}")
    if not 1 <= min_features <= scores.shape[1]:
        raise ValueError(f"min_features must be in 1..{scores.shape[1]}, got {min_features}")

    def auprc(columns: list[int]) -> float:
        return float(average_precision_score(y, scores[:, columns].sum(1), sample_weight=sample_weight))

    kept = list(range(scores.shape[1]))
    best = auprc(kept)
    path = [{"dropped": None, "auprc": best}]
    while len(kept) > min_features:
        value, drop = max((auprc([k for k in kept if k != j]), j) for j in kept)
        if value <= best:
            break
        kept.remove(drop)
        best = value
        path.append({"dropped": drop, "auprc": best})
    return kept, path
