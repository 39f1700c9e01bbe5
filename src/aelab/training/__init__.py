"""Training helpers below the models: the EMA of the weights (:mod:`~aelab.training.ema`), the
channels-last memory format (:mod:`~aelab.training.memory_format`), the progress output for log files
(:mod:`~aelab.training.progress`) and the bfloat16 check (:mod:`~aelab.training.precision`)."""

from aelab.training.ema import EMAWeights, ema_teacher
from aelab.training.memory_format import ChannelsLast
from aelab.training.precision import native_bf16_cpu, warn_if_slow_bf16
from aelab.training.progress import LineProgress

__all__ = ["ChannelsLast", "EMAWeights", "LineProgress", "ema_teacher", "native_bf16_cpu", "warn_if_slow_bf16"]
