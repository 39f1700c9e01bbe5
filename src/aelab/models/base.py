"""What every aelab model shares (:class:`AelabModule`): the training / validation / test steps around
:meth:`AelabModule.losses`, epoch-level logging (``{stage}_{name}``, synchronised across processes), the
optimiser and learning-rate schedule, a finite-loss guard, the hparams/metrics summary for TensorBoard,
and the model's capabilities (what the scores and reports may ask of it).

Batches are dicts: ``{"input": (B, C, H, W) images in [0, 1] or (B, D) table rows, "label": (B,)}``
plus optional ``"anomaly"``, ``"anomaly_type"``, ``"labeled"``; semi-supervised models also take
paired batches ``{"unlabeled": batch, "labeled": batch}``.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics import CatMetric

from aelab.denormals import flush_denormals
from aelab.training.precision import warn_if_slow_bf16

SCHEDULERS = ("none", "onecycle", "cosine")

# What a model can do, as read by the scores, reports and export (instead of hasattr checks):
ENCODE = "encode"            # encode(x) -> codes (N, latent_dim)
RECONSTRUCT = "reconstruct"  # reconstruct(x) -> x_hat like x; decode(z) -> x_hat
LIKELIHOOD = "likelihood"    # posterior(x), reparameterize, decode_logits(z), decoder_distribution(out),
#                              log_likelihood(x, out): a VAE
CLASSIFY = "classify"        # classify(x) -> logits (N, K)
TRANSFORM = "transform"      # transform_head: the geometric-transformation head (models.transform_head)
IMAGES = "images"            # inputs are images (N, C, H, W) (spatial maps, PNG lengths, shifts apply)
VECTORS = "vectors"          # inputs are table rows (N, D) (a D x D covariance of the residuals is affordable)


def batch_size_of(batch: dict) -> int:
    """Items in a batch dict, or in all parts of a paired ``{"unlabeled": ..., "labeled": ...}`` batch."""
    if "input" in batch:
        return int(batch["input"].shape[0])
    return sum(batch_size_of(part) for part in batch.values() if isinstance(part, dict))


class AelabModule(pl.LightningModule):
    """Base class of every aelab model. Args are the optimisation settings they share.

    Subclasses implement :meth:`losses`. Entries of its output whose name starts with ``_`` are not
    logged but handed to :meth:`update_metrics` (e.g. logits for accuracy).

    Args:
        lr: Adam learning rate (the peak rate with ``scheduler="onecycle"``).
        weight_decay: Adam L2 weight decay.
        scheduler: ``"none"``, ``"onecycle"`` (Smith & Topin 2017, arXiv:1708.07120; stepped per
            batch) or ``"cosine"`` (cosine annealing to 0 over the run, per batch).
    """

    def __init__(self, lr: float = 1e-3, weight_decay: float = 1e-5, scheduler: str = "none") -> None:
        super().__init__()
        self._train_sums: dict[str, torch.Tensor] = {}
        self._train_items = 0
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = lr
        self.weight_decay = weight_decay
        self.scheduler = scheduler

    def setup(self, stage: str) -> None:
        flush_denormals()  # main thread, in case it was turned off after import (see aelab.denormals)
        if self._trainer is not None:
            warn_if_slow_bf16(self._trainer.precision, self._trainer.strategy.root_device.type)

    @property
    def capabilities(self) -> frozenset[str]:
        """What this model can do (the constants of this module); subclasses add theirs."""
        return frozenset()

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Scalar losses for a batch; must contain ``"loss"`` (the quantity minimised)."""
        raise NotImplementedError

    def auxiliary_losses(self, batch: dict[str, Any], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Hook: add terms shared by a family of models to :meth:`losses`' output (default: none)."""
        return out

    def update_metrics(self, stage: str, out: dict[str, torch.Tensor]) -> None:
        """Hook: update torchmetrics objects from :meth:`losses`' ``_``-prefixed outputs."""

    # -- steps ----------------------------------------------------------------------------------
    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        out = self.auxiliary_losses(batch, self.losses(batch))
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{type(self).__name__}: {stage} loss is {loss.item()} at epoch {self.current_epoch}, "
                f"step {self.global_step}; try a lower model.lr (now {self.lr}) or gradient clipping "
                "(trainer.gradient_clip_val)"
            )
        n = batch_size_of(batch)
        if stage == "train":  # summed here, logged once per epoch (Lightning's per-step log costs ~1 ms a call)
            for name, value in out.items():
                if not name.startswith("_"):
                    self._train_sums[name] = self._train_sums.get(name, 0.0) + value.detach() * n
            self._train_items += n
        else:
            for name, value in out.items():
                if not name.startswith("_"):
                    self.log(f"{stage}_{name}", value.detach(), on_step=False, on_epoch=True,
                             prog_bar=name == "loss", batch_size=n, sync_dist=True)
        self.update_metrics(stage, out)
        return loss

    def on_train_epoch_end(self) -> None:
        """Logs the epoch means ``train_{name}`` of the training losses (weighted by batch size, averaged
        over processes), the numbers Lightning's ``on_epoch`` logging would give."""
        for name, total in self._train_sums.items():
            self.log(f"train_{name}", total / self._train_items, prog_bar=name == "loss", sync_dist=True)
        self._train_sums, self._train_items = {}, 0

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "test")

    # -- optimisation ---------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups (override for per-part learning rates); frozen parameters excluded."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": self.lr}]

    def configure_optimizers(self) -> Any:
        groups = [g for g in self.parameter_groups() if g["params"]]
        opt = torch.optim.Adam(groups, lr=self.lr, weight_decay=self.weight_decay)
        if self.scheduler == "none":
            return opt
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 1:
            raise ValueError(f"scheduler={self.scheduler!r} needs trainer.max_epochs or max_steps")
        if self.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=int(total))
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- TensorBoard ----------------------------------------------------------------------------
    def tensorboard(self) -> TensorBoardLogger | None:
        """The run's TensorBoard logger, if any."""
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger
        return None

    def on_test_end(self) -> None:
        """Writes the hparams with the final test metrics to TensorBoard's HParams tab."""
        tb = self.tensorboard()
        if tb is None:
            return
        metrics = {f"hp/{k}": float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test_")}
        if metrics:
            tb.log_hyperparams(dict(self.hparams), metrics)
