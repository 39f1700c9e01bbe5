"""Progress for output that is not a terminal (a log file, CI): one line every N training steps and one
per epoch, instead of a progress bar that rewrites itself thousands of times."""

from __future__ import annotations

import time

from lightning.pytorch import Callback


class LineProgress(Callback):
    """Prints ``epoch E step S/T loss L (R steps/s)`` every ``every_n_steps`` optimizer steps and a line with
    the epoch's logged metrics after each validation, on the first process only.

    Args:
        every_n_steps: steps between lines (0: epoch lines only).
    """

    def __init__(self, every_n_steps: int = 100) -> None:
        self.every_n_steps = every_n_steps
        self._start = 0.0
        self._step0 = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start, self._step0 = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        n = self.every_n_steps
        if not n or not trainer.is_global_zero or trainer.global_step % n or trainer.global_step == self._step0:
            return
        rate = (trainer.global_step - self._step0) / max(time.perf_counter() - self._start, 1e-9)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        total = trainer.num_training_batches
        print(f"epoch {trainer.current_epoch} step {batch_idx + 1}/{total} loss {float(loss):.5g} "
              f"({rate:.1f} steps/s)", flush=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train_", "val_"))
                   and getattr(v, "numel", lambda: 1)() == 1}
        text = ", ".join(f"{k} {v:.5g}" for k, v in sorted(metrics.items()))
        print(f"epoch {trainer.current_epoch} done ({time.perf_counter() - self._start:.0f} s): {text}", flush=True)
