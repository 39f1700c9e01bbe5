"""Image classifier = convolutional encoder + MLP head; the encoder trained from scratch or taken from
a CAE / VAE checkpoint (frozen: a probe; or fine-tuned with its own, smaller learning rate)."""

from __future__ import annotations

import glob
import os
from typing import Any

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

from aelab.checkpoint import CheckpointError, read_checkpoint
from aelab.models.base import AelabModule
from aelab.models.classification import ClassificationMetricsMixin, known_class_mask
from aelab.nets import ConvEncoder, mlp

ARCHITECTURE_KEYS = ("image_shape", "channels", "latent_dim", "hidden_dim", "batch_norm")


def resolve_checkpoint(pattern: str) -> str:
    """A checkpoint path, or the newest file matching a glob pattern (e.g. ``lightning_logs/cae/*/checkpoints/last.ckpt``).

    Raises:
        CheckpointError: if a pattern matches no file.
    """
    if not any(c in pattern for c in "*?["):
        return pattern
    matches = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not matches:
        raise CheckpointError(f"no checkpoint matches {pattern!r}: train one first (e.g. "
                              "`aelab fit --config configs/cae.yaml`) or give a path")
    return matches[-1]


def encoder_from_checkpoint(path: str) -> tuple[ConvEncoder, dict[str, Any]]:
    """The ``ConvEncoder`` of a CAE / VAE / SemiSupervisedVAE checkpoint, with its weights.

    Returns ``(encoder, architecture)`` where ``architecture`` holds the checkpoint's
    ``image_shape, channels, latent_dim, hidden_dim, batch_norm``. A VAE encoder outputs
    ``2 * latent_dim`` values (mean and log-variance); callers use the first ``latent_dim`` (the mean).

    Raises:
        CheckpointError: missing/unsafe file, or a checkpoint without a convolutional encoder.
    """
    ckpt = read_checkpoint(path)
    hp = ckpt.get("hyper_parameters", {})
    missing = [k for k in ARCHITECTURE_KEYS if k not in hp]
    weights = {k[len("encoder."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    if missing or not weights:
        raise CheckpointError(f"checkpoint {path} has no convolutional encoder to reuse "
                              f"(missing hparams {missing} or encoder.* weights); expected a CAE or VAE checkpoint")
    arch = {k: (tuple(hp[k]) if k == "image_shape" else hp[k]) for k in ARCHITECTURE_KEYS}
    last = weights.get("head.2.weight", weights.get("head.weight"))  # MLP head, or a single linear layer
    out_dim = last.shape[0] if last is not None else arch["latent_dim"]
    encoder = ConvEncoder(arch["image_shape"], arch["channels"], out_dim, arch["hidden_dim"],
                          batch_norm=arch["batch_norm"])
    try:
        encoder.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"encoder weights in {path} do not fit its hparams {arch}: {err}") from err
    return encoder, arch


def augmentation(shift: float = 0.1, flip: bool = True, erase: float = 0.25) -> nn.Module:
    """kornia batch augmentation: random shifts up to ``shift`` of the side, horizontal flips, and
    random erasing (Zhong et al. 2020, arXiv:1708.04896) with probability ``erase``."""
    ops: list[nn.Module] = [K.RandomAffine(degrees=0.0, translate=(shift, shift), p=1.0)]
    if flip:
        ops.append(K.RandomHorizontalFlip())
    if erase > 0:
        ops.append(K.RandomErasing(p=erase, scale=(0.02, 0.15)))
    return nn.Sequential(*ops)


class EncoderClassifier(ClassificationMetricsMixin, AelabModule):
    """``ConvEncoder`` + MLP head ``latent_dim -> head_hidden... -> num_classes`` (ReLU).

    Three uses: from scratch (``encoder_ckpt=None``, the supervised baseline), a frozen probe
    (``encoder_ckpt`` + ``freeze_encoder=True``: only the head is trained, the encoder stays in eval
    mode), or fine-tuning (``freeze_encoder=False``: the encoder trains with ``encoder_lr``).

    Args:
        image_shape: ``(C, H, W)`` (linked from the datamodule by the CLI).
        num_classes: output classes.
        encoder_ckpt: CAE / VAE checkpoint whose encoder is reused (a path, or a glob pattern: the
            newest match is used); its architecture (channels, latent_dim, hidden_dim, batch_norm and
            the encoder's output size) then replaces the arguments below. This model's own hparams
            then record ``encoder_ckpt=None, pretrained_encoder=True`` and that architecture, so its
            checkpoints stand alone (the weights come from its state dict, the CAE/VAE file is not
            needed again).
        freeze_encoder: train the head only.
        channels, latent_dim, hidden_dim, batch_norm: encoder size when trained from scratch.
        encoder_out_dim: outputs of the encoder's last layer (``None``: ``latent_dim``; a VAE
            encoder has ``2 * latent_dim``, mean and log-variance, of which the mean is used).
        pretrained_encoder: the encoder weights come from a pretrained model (set automatically
            from ``encoder_ckpt``; it selects ``encoder_lr`` and allows ``freeze_encoder``).
        head_hidden: hidden sizes of the MLP head (default ``[64]``).
        dropout: dropout after each hidden ReLU of the head.
        lr: learning rate of the head (and of a from-scratch encoder).
        encoder_lr: learning rate of a pretrained encoder when fine-tuning (default ``lr / 10``).
        augment: kornia augmentation of training batches (shifts, flips, erasing).
        label_smoothing: training targets put ``1 - label_smoothing`` on the true class and spread
            the rest uniformly over all classes (Szegedy et al. 2016, arXiv:1512.00567, Sec. 7);
            validation and test losses are the plain cross-entropy. Must be in [0, 1).
        weight_decay, scheduler: see :class:`~aelab.models.base.AelabModule`.

    Logged: ``{stage}_loss`` (cross-entropy, nats; smoothed in training), ``{stage}_acc``, ``{stage}_f1`` (macro).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        encoder_ckpt: str | None = None,
        freeze_encoder: bool = False,
        channels: int = 32,
        latent_dim: int = 16,
        hidden_dim: int = 256,
        batch_norm: bool = False,
        encoder_out_dim: int | None = None,
        pretrained_encoder: bool = False,
        head_hidden: list[int] = [64],
        dropout: float = 0.0,
        lr: float = 1e-3,
        encoder_lr: float | None = None,
        augment: bool = False,
        label_smoothing: float = 0.0,
        weight_decay: float = 1e-5,
        scheduler: str = "none",
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, scheduler=scheduler)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        if encoder_ckpt:
            encoder_ckpt = resolve_checkpoint(encoder_ckpt)
            self.encoder, arch = encoder_from_checkpoint(encoder_ckpt)
            if tuple(arch["image_shape"]) != tuple(image_shape):
                raise ValueError(f"encoder_ckpt {encoder_ckpt} was trained on images {arch['image_shape']}, "
                                 f"the data has {tuple(image_shape)}")
            channels, latent_dim, hidden_dim, batch_norm = (arch[k] for k in ARCHITECTURE_KEYS[1:])
            encoder_out_dim, pretrained_encoder = self.encoder.out_dim, True
            print(f"EncoderClassifier: encoder from {encoder_ckpt}", flush=True)
        else:
            if freeze_encoder and not pretrained_encoder:
                raise ValueError("freeze_encoder=True needs an encoder_ckpt (a frozen random encoder learns nothing)")
            self.encoder = ConvEncoder(image_shape, channels, encoder_out_dim or latent_dim, hidden_dim,
                                       batch_norm=batch_norm)
        self.save_hyperparameters()
        self.hparams.update(channels=channels, latent_dim=latent_dim, hidden_dim=hidden_dim, batch_norm=batch_norm,
                            encoder_out_dim=encoder_out_dim, pretrained_encoder=pretrained_encoder, encoder_ckpt=None)
        self.latent_dim = latent_dim
        self.freeze_encoder = freeze_encoder
        self.pretrained = pretrained_encoder
        self.encoder_lr = encoder_lr if encoder_lr is not None else lr / 10
        self.encoder.requires_grad_(not freeze_encoder)
        self.head = mlp([latent_dim, *head_hidden, num_classes], dropout=dropout)
        self.augment = augmentation() if augment else None
        self.init_classification_metrics(num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(N, latent_dim)`` (a VAE encoder's posterior mean)."""
        return self.encoder(x)[:, : self.latent_dim]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)`` of images ``(N, C, H, W)`` in [0, 1]."""
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(x)

    def on_train_epoch_start(self) -> None:
        if self.freeze_encoder:
            self.encoder.eval()  # keep BatchNorm statistics of the pretrained encoder

    def parameter_groups(self) -> list[dict[str, Any]]:
        groups = [{"params": list(self.head.parameters()), "lr": self.lr}]
        if not self.freeze_encoder:
            groups.append({"params": list(self.encoder.parameters()),
                           "lr": self.encoder_lr if self.pretrained else self.lr})
        return groups

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        mask = known_class_mask(batch, only_labeled=self.labels_usable_now())
        x, y = batch["image"][mask], batch["label"][mask]
        self.check_labels(y)
        if self.training and self.augment is not None:
            x = self.augment(x)
        logits = self.classify(x)
        smoothing = self.label_smoothing if self.training else 0.0
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing) if y.numel() else logits.sum() * 0.0
        return {"loss": loss, "_logits": logits, "_labels": y}

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """Predicted class ``(B,)``, class probabilities ``(B, K)`` and labels."""
        probs = self.classify(batch["image"]).softmax(-1)
        return {"pred": probs.argmax(-1), "probs": probs, "label": batch["label"]}
