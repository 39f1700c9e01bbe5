"""Training helpers below the models: the EMA of the weights (:mod:`~aelab.training.ema`) and the
progress output for terminals and log files (:mod:`~aelab.training.progress`)."""

from aelab.training.ema import EMAWeights, ema_teacher

__all__ = ["EMAWeights", "ema_teacher"]
