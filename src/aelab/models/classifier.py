"""Image classifier = convolutional encoder + MLP head; the encoder trained from scratch or taken from
a CAE / VAE checkpoint (frozen: a probe; or fine-tuned with its own, smaller learning rate)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from aelab.checkpoint import PretrainedEncoder
from aelab.data.augment import augmentation
from aelab.models.base import CLASSIFY, AelabModule
from aelab.models.class_metrics import ClassificationMetricsMixin, known_class_mask
from aelab.nets import ConvEncoder, mlp


class EncoderClassifier(ClassificationMetricsMixin, AelabModule):
    """``ConvEncoder`` + MLP head ``latent_dim -> head_hidden... -> num_classes`` (ReLU).

    Three uses: from scratch (``encoder=None``, the supervised baseline), a frozen probe
    (``encoder`` + ``freeze_encoder=True``: only the head is trained, the encoder stays in eval
    mode), or fine-tuning (``freeze_encoder=False``: the encoder trains with ``encoder_lr``).

    Args:
        input_shape: ``(C, H, W)`` (linked from the datamodule by the CLI).
        num_classes: output classes.
        encoder: a pretrained encoder handed over by :class:`aelab.checkpoint.PretrainedEncoder`
            (in a config: ``encoder: {class_path: aelab.checkpoint.PretrainedEncoder, init_args:
            {path: <CAE / VAE checkpoint or glob>}}``); its architecture (channels, latent_dim,
            hidden_dim, batch_norm, stages and the encoder's output size) then replaces the arguments
            below. This model's own hparams then record ``encoder=None, pretrained_encoder=True`` and
            that architecture, so its checkpoints stand alone (the weights come from its state dict).
        freeze_encoder: train the head only.
        channels, latent_dim, hidden_dim, batch_norm: encoder size when trained from scratch.
        encoder_out_dim: outputs of the encoder's last layer (``None``: ``latent_dim``; a VAE
            encoder has ``2 * latent_dim``, mean and log-variance, of which the mean is used).
        pretrained_encoder: the encoder weights come from a pretrained model (set automatically
            from ``encoder``; it selects ``encoder_lr`` and allows ``freeze_encoder``).
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
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        encoder: PretrainedEncoder | None = None,
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
        if encoder is not None:
            self.encoder = encoder.build()
            arch = encoder.architecture
            if tuple(arch["input_shape"]) != tuple(input_shape):
                raise ValueError(f"the encoder of {encoder.path} was trained on inputs {arch['input_shape']}, "
                                 f"the data has {tuple(input_shape)}")
            channels, latent_dim, hidden_dim = arch["channels"], arch["latent_dim"], arch["hidden_dim"]
            batch_norm = arch.get("batch_norm", False)
            encoder_out_dim, pretrained_encoder = self.encoder.out_dim, True
            print(f"EncoderClassifier: encoder from {encoder.path}", flush=True)
        else:
            if freeze_encoder and not pretrained_encoder:
                raise ValueError("freeze_encoder=True needs a pretrained encoder (a frozen random encoder learns nothing)")
            self.encoder = ConvEncoder(input_shape, channels, encoder_out_dim or latent_dim, hidden_dim,
                                       batch_norm=batch_norm)
        self.save_hyperparameters(ignore=["encoder"])
        self.hparams.update(channels=channels, latent_dim=latent_dim, hidden_dim=hidden_dim, batch_norm=batch_norm,
                            encoder_out_dim=encoder_out_dim, pretrained_encoder=pretrained_encoder, encoder=None)
        self.latent_dim = latent_dim
        self.freeze_encoder = freeze_encoder
        self.pretrained = pretrained_encoder
        self.encoder_lr = encoder_lr if encoder_lr is not None else lr / 10
        self.encoder.requires_grad_(not freeze_encoder)
        self.head = mlp([latent_dim, *head_hidden, num_classes], dropout=dropout)
        self.augment = augmentation() if augment else None
        self.init_classification_metrics(num_classes)

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({CLASSIFY})

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
        x, y = batch["input"][mask], batch["label"][mask]
        self.check_labels(y)
        if self.training and self.augment is not None:
            x = self.augment(x)
        logits = self.classify(x)
        smoothing = self.label_smoothing if self.training else 0.0
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing) if y.numel() else logits.sum() * 0.0
        return {"loss": loss, "_logits": logits, "_labels": y}

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """Predicted class ``(B,)``, class probabilities ``(B, K)`` and labels."""
        probs = self.classify(batch["input"]).softmax(-1)
        return {"pred": probs.argmax(-1), "probs": probs, "label": batch["label"]}
