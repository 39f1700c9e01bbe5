"""Shared LightningModule machinery.

* :class:`AelabModule`: what every model shares: the training / validation / test steps around
  :meth:`AelabModule.losses`, epoch-level logging (``{stage}_{name}``), the optimiser and learning-rate
  schedule, a finite-loss guard, and the hparams/metrics summary for TensorBoard.
* :class:`AutoencoderModule`: adds what autoencoders share: ``encode`` / ``reconstruct``, the
  reconstruction grid in TensorBoard, anomaly scores (``score``), test AUROC/AUPRC when the test set
  has anomaly labels, and the fitted score statistics saved in checkpoints.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics import CatMetric

from aelab.denormals import flush_denormals
from aelab.models.transform_head import TransformHead

SCHEDULERS = ("none", "onecycle", "cosine")


def batch_size_of(batch: dict) -> int:
    """Images in a batch dict, or in all parts of a paired ``{"unlabeled": ..., "labeled": ...}`` batch."""
    if "image" in batch:
        return int(batch["image"].shape[0])
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
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = lr
        self.weight_decay = weight_decay
        self.scheduler = scheduler

    def setup(self, stage: str) -> None:
        flush_denormals()  # main thread, in case it was turned off after import (see aelab.denormals)

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
        for name, value in out.items():
            if not name.startswith("_"):
                self.log(f"{stage}_{name}", value.detach(), on_step=False, on_epoch=True,
                         prog_bar=name == "loss", batch_size=n)
        self.update_metrics(stage, out)
        return loss

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


class AutoencoderModule(AelabModule):
    """Base class of the autoencoders; subclasses implement :meth:`losses`, :meth:`encode`, :meth:`reconstruct`.

    Args:
        lr, weight_decay, scheduler: see :class:`AelabModule`.
        log_images: number of fixed validation images whose reconstructions are logged to
            TensorBoard at each validation epoch (0 disables).
        anomaly_score: the score (see :mod:`aelab.scores`) whose AUROC / AUPRC are logged as
            ``test_auroc`` / ``test_auprc`` when test batches carry ``"anomaly"`` labels, and that
            ``predict`` returns.
        transform_weight: weight of the self-supervised transformation-prediction loss on the
            encoder (:mod:`aelab.models.transform_head`; 0 = off). When on, the loss gains
            ``transform_weight * {stage}_transform_ce`` (nats per image), ``{stage}_transform_acc`` is
            logged, and the ``transform`` anomaly score applies. Subclasses call
            :meth:`init_transform_head` once their encoder exists.
    """

    def __init__(self, lr: float = 1e-3, weight_decay: float = 1e-5, scheduler: str = "none",
                 log_images: int = 8, anomaly_score: str = "mse", transform_weight: float = 0.0) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, scheduler=scheduler)
        from aelab.scores import SCORES, applicable, applicable_scores

        if transform_weight < 0:
            raise ValueError(f"transform_weight must be >= 0, got {transform_weight}")
        self.transform_weight = transform_weight
        self.transform_head: TransformHead | None = None

        if anomaly_score not in SCORES or not applicable(self, SCORES[anomaly_score]):
            raise ValueError(f"anomaly_score for {type(self).__name__} must be one of {applicable_scores(self)}, "
                             f"got {anomaly_score!r}")
        self.log_images = log_images
        self._fixed_images: torch.Tensor | None = None
        self.anomaly_score = anomaly_score
        self.score_stats: dict[str, torch.Tensor] | None = None  # latent statistics, see aelab.scores
        # per-score settings chosen by `aelab evaluate` (e.g. {"local_error": {"sigma": 2.0}}), saved in
        # scored.ckpt so `aelab predict` scores with them
        self.score_settings: dict[str, dict[str, Any]] = {}
        # test-set anomaly scores and labels, gathered across batches (and devices) by torchmetrics
        self.test_scores = CatMetric(nan_strategy="disable")  # NaN scores are reported, not dropped
        self.test_targets = CatMetric(nan_strategy="disable")

    def init_transform_head(self) -> None:
        """Build the transformation-prediction head on ``self.encoder`` if ``transform_weight > 0``."""
        if self.transform_weight > 0:
            self.transform_head = TransformHead(self.encoder)

    def auxiliary_losses(self, batch: dict[str, Any], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Adds ``transform_weight * transform_ce`` on all images of the batch (both parts of a paired batch)."""
        if self.transform_head is None:
            return out
        if "image" in batch:
            x = batch["image"]
        else:  # paired {"unlabeled": ..., "labeled": ...} batch
            x = torch.cat([part["image"] for part in batch.values() if isinstance(part, dict)])
        ce, acc = self.transform_head.loss(self.encoder, x)
        return {**out, "loss": out["loss"] + self.transform_weight * ce, "transform_ce": ce.detach(),
                "transform_acc": acc}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] -> codes ``(N, latent_dim)``."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] -> reconstructions of the same shape, in [0, 1]."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(x)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if batch_idx == 0 and self._fixed_images is None and self.log_images > 0:
            self._fixed_images = batch["image"][: self.log_images].detach().clone()
        self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        tb = self.tensorboard()
        if tb is None or self._fixed_images is None or self.trainer.sanity_checking:
            return
        x = self._fixed_images.to(self.device)
        with torch.no_grad():
            recon = self.reconstruct(x)
        # first row originals, second row reconstructions (TensorBoard lays out 8 per row)
        tb.experiment.add_images("val/reconstructions", torch.cat([x, recon]).clamp(0, 1).cpu(),
                                 self.global_step, dataformats="NCHW")

    # -- anomaly scores -------------------------------------------------------------------------
    def score(self, x: torch.Tensor, method: str | None = None, **kwargs) -> torch.Tensor:
        """Anomaly scores ``(N,)`` of images ``(N, C, H, W)``; see :func:`aelab.scores.score`.
        Settings not given in ``kwargs`` come from ``score_settings`` (saved by ``aelab evaluate``)."""
        from aelab.scores import score

        method = method or self.anomaly_score
        return score(self, x, method, **{**self.score_settings.get(method, {}), **kwargs})

    def _ensure_score_stats(self) -> None:
        from aelab.scores import SCORES, fit_model_stats_on

        if SCORES[self.anomaly_score].needs_fit and not self.score_stats:
            datamodule = self.trainer.datamodule
            if datamodule is None or getattr(datamodule, "train_set", None) is None:
                raise RuntimeError(f"score {self.anomaly_score!r} needs training codes: use an aelab datamodule")
            fit_model_stats_on(self, datamodule.train_set)

    def on_fit_start(self) -> None:
        self.score_stats = None  # statistics of earlier weights (e.g. resumed from scored.ckpt) are stale

    def on_test_epoch_start(self) -> None:
        self.test_scores.reset()
        self.test_targets.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "test")
        if "anomaly" in batch:
            if batch_idx == 0:
                self._ensure_score_stats()
            self.test_scores.update(self.score(batch["image"]).double())
            self.test_targets.update(batch["anomaly"].double())

    def on_test_epoch_end(self) -> None:
        """Logs ``test_auroc`` / ``test_auprc`` of the configured score (skipped for a single-class
        test set, where both are undefined)."""
        from aelab.evaluation.metrics import anomaly_metrics

        if self.test_targets.update_count == 0:
            return
        targets = self.test_targets.compute()
        if 0 < targets.sum() < targets.numel():
            metrics = anomaly_metrics(self.test_scores.compute(), targets.long())
            self.log("test_auroc", metrics["auroc"])
            self.log("test_auprc", metrics["auprc"])

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """Codes ``(B, latent_dim)``, per-pixel ``mse`` ``(B,)``, the configured anomaly ``score``
        ``(B,)`` (latent-density scores need statistics saved by ``aelab evaluate``) and labels."""
        x = batch["image"]
        out = {"code": self.encode(x), "mse": self.score(x, "mse"), "label": batch["label"]}
        out["score"] = out["mse"] if self.anomaly_score == "mse" else self.score(x)
        return out

    # -- checkpoints keep the fitted score statistics and settings ---------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.score_stats:
            checkpoint["score_stats"] = {k: v.cpu() for k, v in self.score_stats.items()}
        if self.score_settings:
            checkpoint["score_settings"] = self.score_settings

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.score_stats = checkpoint.get("score_stats")
        self.score_settings = dict(checkpoint.get("score_settings") or {})
