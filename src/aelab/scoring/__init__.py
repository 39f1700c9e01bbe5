"""Anomaly scoring: score functions ``(model, x) -> (N,)`` (:mod:`~aelab.scoring.functions`), which
score applies to which model (:mod:`~aelab.scoring.registry`), statistics of the training codes and
residuals (:mod:`~aelab.scoring.training_stats`), label-free thresholds (:mod:`~aelab.scoring.thresholds`), and
the :class:`Scorer` module that holds a score's settings, statistics and threshold as model state
(:mod:`~aelab.scoring.scorer`), fitted by :func:`calibrate`."""

from aelab.scoring.calibrate import calibrate
from aelab.scoring.registry import SCORES, ScoreSpec, applicable_scores, check_score
from aelab.scoring.scorer import Scorer, attach_scorer

__all__ = ["SCORES", "ScoreSpec", "Scorer", "applicable_scores", "attach_scorer", "calibrate", "check_score"]
