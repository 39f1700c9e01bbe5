"""Channels-last memory format for convolutional training on the CPU (and GPU).

oneDNN's convolutions run faster on ``(N, H, W, C)``-ordered data (``torch.channels_last``): the callback
converts the model's weights once and every image batch as it arrives. Measured together with bfloat16
autocast (``trainer.precision: bf16-mixed``) on the semi-supervised recipe on this project's CPU
(docs/speed.md): the same test accuracy in half the wall time.
"""

from __future__ import annotations

import torch
from lightning.pytorch import Callback


def to_channels_last(batch):
    """Image tensors ``(N, C, H, W)`` of a batch dict (or a paired batch of dicts) in channels-last order, in place."""
    if isinstance(batch, dict):
        for key, value in batch.items():
            if isinstance(value, dict):
                to_channels_last(value)
            elif isinstance(value, torch.Tensor) and value.ndim == 4:
                batch[key] = value.contiguous(memory_format=torch.channels_last)
    return batch


class ChannelsLast(Callback):
    """Converts the model to ``torch.channels_last`` when a fit, validation or test starts and every batch
    (dict inputs ``(N, C, H, W)``) before the step. Results are the same up to floating-point rounding."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        to_channels_last(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        to_channels_last(batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        to_channels_last(batch)
