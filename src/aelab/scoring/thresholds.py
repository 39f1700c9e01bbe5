"""Decision thresholds that need no anomaly labels (what a deployed detector can use).

An item is flagged anomalous when ``score >= threshold``. Three rules, each a percentile of scores of
data assumed (mostly) normal:

* ``percentile``: the ``q``-th percentile of the scores of normal validation items, so about
  ``(100 - q)`` percent of normal items are flagged (default ``q = 99``).
* ``fpr``: the same rule written as a target false-positive rate ``r``: ``q = 100 (1 - r)``.
* ``contamination``: PyOD's ``threshold_`` convention (Zhao, Nasrullah & Li 2019, JMLR 20(96)): the
  ``100 (1 - c)``-th percentile of the *training* scores, for an expected fraction ``c`` of anomalies
  in the training data (the unsupervised setting).

Percentiles use linear interpolation (``torch.quantile``, NumPy's default). With normal validation
items only, these rules still give a threshold that flags about the stated fraction, unlike a
threshold that maximises F1 on validation labels, which flags everything when validation holds no
anomaly (anomalib's ``F1AdaptiveThreshold``, its issues #2433 and #3357).
"""

from __future__ import annotations

import torch

RULES = ("percentile", "fpr", "contamination")


def percentile_threshold(normal_scores: torch.Tensor, q: float = 99.0) -> float:
    """The ``q``-th percentile (linear interpolation) of scores of normal items, ``0 <= q <= 100``.

    Raises:
        ValueError: if ``q`` is outside [0, 100], no scores are given, or a score is NaN.
    """
    normal_scores = torch.as_tensor(normal_scores, dtype=torch.float64).flatten()
    if not 0 <= q <= 100 or normal_scores.numel() == 0:
        raise ValueError(f"percentile threshold needs 0 <= q <= 100 and some scores; got q={q}, "
                         f"{normal_scores.numel()} scores")
    if torch.isnan(normal_scores).any():
        raise ValueError(f"{int(torch.isnan(normal_scores).sum())} of the scores for the threshold are NaN")
    return float(torch.quantile(normal_scores, q / 100))


def rule_percentile(rule: str, value: float) -> float:
    """The percentile ``q`` that rule ``rule`` with parameter ``value`` takes.

    Raises:
        ValueError: an unknown rule, or a value outside its range (percentile in [0, 100]; rate and
            contamination in [0, 1)).
    """
    if rule == "percentile":
        if not 0 <= value <= 100:
            raise ValueError(f"threshold percentile must be in [0, 100], got {value}")
        return float(value)
    if rule in ("fpr", "contamination"):
        if not 0 <= value < 1:
            raise ValueError(f"threshold {rule} must be in [0, 1), got {value}")
        return 100.0 * (1.0 - value)
    raise ValueError(f"threshold rule must be one of {RULES}, got {rule!r}")
