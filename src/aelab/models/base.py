"""Shared LightningModule machinery for every autoencoder-like model.

Subclasses implement :meth:`AutoencoderModule.losses` (a dict of scalar tensors with a ``"loss"``
entry), :meth:`encode` and :meth:`reconstruct`; this base class supplies the training, validation
and test steps, metric logging (``{stage}_{name}``, on epoch), the optimiser and learning-rate
schedule, a finite-loss guard, the TensorBoard reconstruction grid and the hparams/metrics summary.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics import CatMetric

SCHEDULERS = ("none", "onecycle", "cosine")


def _to_device(batches, device):
    for batch in batches:
        yield {k: v.to(device) for k, v in batch.items()}


class AutoencoderModule(pl.LightningModule):
    """Base class. Args are the optimisation settings every model shares.

    Args:
        lr: Adam learning rate (the peak rate with ``scheduler="onecycle"``).
        weight_decay: Adam L2 weight decay.
        scheduler: ``"none"``, ``"onecycle"`` (Smith & Topin 2017, arXiv:1708.07120; stepped per
            batch) or ``"cosine"`` (cosine annealing to 0 over the run, per batch).
        log_images: number of fixed validation images whose reconstructions are logged to
            TensorBoard at each validation epoch (0 disables).
        anomaly_score: the score (see :mod:`aelab.scores`) whose AUROC / AUPRC are logged as
            ``test_auroc`` / ``test_auprc`` when test batches carry ``"anomaly"`` labels, and that
            ``predict`` returns.
    """

    def __init__(self, lr: float = 1e-3, weight_decay: float = 1e-5, scheduler: str = "none",
                 log_images: int = 8, anomaly_score: str = "mse") -> None:
        super().__init__()
        from aelab.scores import SCORES

        if anomaly_score not in SCORES:
            raise ValueError(f"anomaly_score must be one of {list(SCORES)}, got {anomaly_score!r}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = lr
        self.weight_decay = weight_decay
        self.scheduler = scheduler
        self.log_images = log_images
        self._fixed_images: torch.Tensor | None = None
        self.anomaly_score = anomaly_score
        self.score_stats: dict[str, torch.Tensor] | None = None  # latent statistics, see aelab.scores
        # test-set anomaly scores and labels, gathered across batches (and devices) by torchmetrics
        self.test_scores = CatMetric()
        self.test_targets = CatMetric()

    # -- to implement -------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Scalar losses for a batch; must contain ``"loss"`` (the quantity minimised)."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] -> codes ``(N, latent_dim)``."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] -> reconstructions of the same shape, in [0, 1]."""
        raise NotImplementedError

    # -- steps ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(x)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        out = self.losses(batch)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{type(self).__name__}: {stage} loss is {loss.item()} at epoch {self.current_epoch}, "
                f"step {self.global_step}; try a lower model.lr (now {self.lr}) or gradient clipping "
                "(trainer.gradient_clip_val)"
            )
        n = batch["image"].shape[0]
        for name, value in out.items():
            self.log(f"{stage}_{name}", value.detach(), on_step=False, on_epoch=True,
                     prog_bar=name == "loss", batch_size=n)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if batch_idx == 0 and self._fixed_images is None and self.log_images > 0:
            self._fixed_images = batch["image"][: self.log_images].detach().clone()
        self._step(batch, "val")

    def score(self, x: torch.Tensor, method: str | None = None, **kwargs) -> torch.Tensor:
        """Anomaly scores ``(N,)`` of images ``(N, C, H, W)``; see :func:`aelab.scores.score`."""
        from aelab.scores import score

        return score(self, x, method or self.anomaly_score, **kwargs)

    def _ensure_score_stats(self) -> None:
        from aelab.scores import SCORES, fit_model_stats

        if SCORES[self.anomaly_score].needs_fit and not self.score_stats:
            datamodule = self.trainer.datamodule
            if datamodule is None:
                raise RuntimeError(f"score {self.anomaly_score!r} needs training codes: use a datamodule")
            fit_model_stats(self, _to_device(datamodule.train_dataloader(), self.device))

    def on_test_epoch_start(self) -> None:
        self.test_scores.reset()
        self.test_targets.reset()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
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

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Codes ``(B, latent_dim)``, per-pixel ``mse`` ``(B,)``, the configured anomaly ``score``
        ``(B,)`` (latent-density scores need statistics saved by ``aelab evaluate``) and labels."""
        x = batch["image"]
        out = {"code": self.encode(x), "mse": self.score(x, "mse"), "label": batch["label"]}
        out["score"] = out["mse"] if self.anomaly_score == "mse" else self.score(x)
        return out

    # -- checkpoints keep the fitted score statistics -------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.score_stats:
            checkpoint["score_stats"] = {k: v.cpu() for k, v in self.score_stats.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.score_stats = checkpoint.get("score_stats")

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.scheduler == "none":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        if not math.isfinite(total) or total < 1:
            raise ValueError(f"scheduler={self.scheduler!r} needs trainer.max_epochs or max_steps")
        if self.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=total)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- TensorBoard ----------------------------------------------------------------------------
    def _tensorboard(self):
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger
        return None

    def on_validation_epoch_end(self) -> None:
        tb = self._tensorboard()
        if tb is None or self._fixed_images is None or self.trainer.sanity_checking:
            return
        x = self._fixed_images.to(self.device)
        with torch.no_grad():
            recon = self.reconstruct(x)
        # first row originals, second row reconstructions (TensorBoard lays out 8 per row)
        tb.experiment.add_images("val/reconstructions", torch.cat([x, recon]).clamp(0, 1).cpu(),
                                 self.global_step, dataformats="NCHW")

    def on_test_end(self) -> None:
        """Writes the hparams with the final test metrics to TensorBoard's HParams tab."""
        tb = self._tensorboard()
        if tb is None:
            return
        metrics = {f"hp/{k}": float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test_")}
        if metrics:
            tb.log_hyperparams(dict(self.hparams), metrics)
