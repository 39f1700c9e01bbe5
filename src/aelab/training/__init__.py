"""Training helpers below the models: the EMA of the weights (:mod:`~aelab.training.ema`), the
channels-last memory format (:mod:`~aelab.training.memory_format`) and the progress output for log files
(:mod:`~aelab.training.progress`)."""

from aelab.training.ema import EMAWeights, ema_teacher
from aelab.training.memory_format import ChannelsLast
from aelab.training.progress import LineProgress

__all__ = ["ChannelsLast", "EMAWeights", "LineProgress", "ema_teacher"]
