"""What the autoencoders share (:class:`AutoencoderModule`): ``encode`` / ``reconstruct`` / ``decode``,
the reconstruction grid in TensorBoard, the optional geometric-transformation head, and test
AUROC / AUPRC of the anomaly score.

Anomaly scoring is not the model's own business: the scoring layer (:class:`aelab.scoring.Scorer`)
is *attached* to a model as ``model.scorer`` (the CLI, ``aelab.Detector`` and the commands do it).
It then lives in the model's ``state_dict`` (score settings, fitted statistics of the training inputs,
threshold), so every checkpoint carries it, and the test step scores with it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torchmetrics import CatMetric

from aelab.models.base import ENCODE, IMAGES, RECONSTRUCT, TRANSFORM, VECTORS, AelabModule
from aelab.models.transform_head import TransformHead

SCORER_PREFIX = "scorer."


class AutoencoderModule(AelabModule):
    """Base class of the autoencoders; subclasses implement :meth:`losses`, :meth:`encode`,
    :meth:`reconstruct` and :meth:`decode`, and set ``self.input_shape`` (``(C, H, W)`` or ``(D,)``).

    Args:
        lr, weight_decay, scheduler: see :class:`~aelab.models.base.AelabModule`.
        log_images: number of fixed validation images whose reconstructions are logged to
            TensorBoard at each validation epoch (0 disables; tables log none).
        transform_weight: weight of the self-supervised transformation-prediction loss on the
            encoder (:mod:`aelab.models.transform_head`; 0 = off; images only). When on, the loss gains
            ``transform_weight * {stage}_transform_ce`` (nats per image), ``{stage}_transform_acc`` is
            logged, and the ``transform`` anomaly score applies. Subclasses call
            :meth:`init_transform_head` once their encoder exists.

    Attributes:
        default_score: the anomaly score a :class:`aelab.scoring.Scorer` uses for this model when the
            configuration names none.
        scorer: the attached scorer module, or ``None``. With one attached, test batches that carry
            ``"anomaly"`` labels log ``test_auroc`` / ``test_auprc`` of its score.
    """

    default_score: ClassVar[str] = "mse"

    def __init__(self, lr: float = 1e-3, weight_decay: float = 1e-5, scheduler: str = "none",
                 log_images: int = 8, transform_weight: float = 0.0) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, scheduler=scheduler)
        if transform_weight < 0:
            raise ValueError(f"transform_weight must be >= 0, got {transform_weight}")
        self.transform_weight = transform_weight
        self.transform_head: TransformHead | None = None
        self.log_images = log_images
        self._fixed_images: torch.Tensor | None = None
        self.input_shape: tuple[int, ...] = ()
        self.scorer: nn.Module | None = None
        self.detached_scorer_state: dict[str, torch.Tensor] = {}  # see on_load_checkpoint
        # test-set anomaly scores and labels, gathered across batches (and processes) by torchmetrics
        self.test_scores = CatMetric(nan_strategy="disable")  # NaN scores are reported, not dropped
        self.test_targets = CatMetric(nan_strategy="disable")

    @property
    def capabilities(self) -> frozenset[str]:
        caps = {ENCODE, RECONSTRUCT}
        if len(self.input_shape) == 3:
            caps.add(IMAGES)
        elif len(self.input_shape) == 1:
            caps.add(VECTORS)
        if self.transform_head is not None:
            caps.add(TRANSFORM)
        return frozenset(caps)

    def init_transform_head(self) -> None:
        """Build the transformation-prediction head on ``self.encoder`` if ``transform_weight > 0``.

        Raises:
            ValueError: ``transform_weight > 0`` on table rows (the transformations are image rotations
                and shifts).
        """
        if self.transform_weight > 0:
            if len(self.input_shape) != 3:
                raise ValueError("transform_weight > 0 needs images (rotations and shifts); the input is "
                                 f"table rows of shape {self.input_shape}")
            self.transform_head = TransformHead(self.encoder)

    def auxiliary_losses(self, batch: dict[str, Any], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Adds ``transform_weight * transform_ce`` on all images of the batch (both parts of a paired batch)."""
        if self.transform_head is None:
            return out
        if "input" in batch:
            x = batch["input"]
        else:  # paired {"unlabeled": ..., "labeled": ...} batch
            x = torch.cat([part["input"] for part in batch.values() if isinstance(part, dict)])
        ce, acc = self.transform_head.loss(self.encoder, x)
        return {**out, "loss": out["loss"] + self.transform_weight * ce, "transform_ce": ce.detach(),
                "transform_acc": acc}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs ``(N, C, H, W)`` in [0, 1] or ``(N, D)`` -> codes ``(N, latent_dim)``."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs -> reconstructions of the same shape (images in [0, 1])."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(N, latent_dim)`` -> reconstructions ``(N, *input_shape)`` (images in [0, 1])."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(x)

    # -- TensorBoard: fixed validation images and their reconstructions ----------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if batch_idx == 0 and self._fixed_images is None and self.log_images > 0 and IMAGES in self.capabilities:
            self._fixed_images = batch["input"][: self.log_images].detach().clone()
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

    # -- test: the attached scorer's AUROC / AUPRC ---------------------------------------------------
    def on_test_epoch_start(self) -> None:
        self.test_scores.reset()
        self.test_targets.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "test")
        if self.scorer is not None and "anomaly" in batch:
            self.test_scores.update(self.scorer(self, batch["input"]).double())
            self.test_targets.update(batch["anomaly"].double())

    def on_test_epoch_end(self) -> None:
        """Logs ``test_auroc`` / ``test_auprc`` of the scorer's score (skipped for a single-class test
        set, where both are undefined). torchmetrics gathers the scores of every process first."""
        from torchmetrics.functional.classification import binary_auroc, binary_average_precision

        if self.test_targets.update_count == 0:
            return
        targets = self.test_targets.compute().long()
        if 0 < targets.sum() < targets.numel():
            scores = self.test_scores.compute()
            if not torch.isfinite(scores).all():
                raise FloatingPointError(f"{int((~torch.isfinite(scores)).sum())} test anomaly scores are NaN "
                                         "or infinite")
            # min-max scaled: torchmetrics reads floats outside [0, 1] as logits (see evaluation.metrics)
            unit = (scores - scores.min()) / (scores.max() - scores.min()).clamp_min(1e-300)
            self.log("test_auroc", float(binary_auroc(unit, targets)))
            self.log("test_auprc", float(binary_average_precision(unit, targets)))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """Codes ``(B, latent_dim)``, labels, and with a scorer attached the anomaly ``score`` ``(B,)``."""
        x = batch["input"]
        out = {"code": self.encode(x), "label": batch["label"]}
        if self.scorer is not None:
            out["score"] = self.scorer(self, x)
        return out

    # -- checkpoints: the attached scorer's state is optional ------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Lets a checkpoint load whether or not it, or this model, carries a scorer: without a scorer
        attached, the checkpoint's ``scorer.*`` entries are kept in ``detached_scorer_state`` (the
        scoring layer attaches a scorer from them later; nothing is lost); with one attached, entries
        missing from an older checkpoint are filled with the scorer's current (unfitted) state."""
        state = checkpoint.get("state_dict")
        if not isinstance(state, dict):
            return
        if self.scorer is None:
            keys = [k for k in state if k.startswith(SCORER_PREFIX)]
            self.detached_scorer_state = {k[len(SCORER_PREFIX):]: state.pop(k) for k in keys}
        else:
            for key, value in self.scorer.state_dict(prefix=SCORER_PREFIX).items():
                state.setdefault(key, value)
