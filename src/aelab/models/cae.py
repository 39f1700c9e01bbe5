"""Convolutional autoencoder (CAE) trained with the mean squared reconstruction error."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aelab.models.base import AutoencoderModule
from aelab.nets import ConvDecoder, ConvEncoder


class CAE(AutoencoderModule):
    """Deterministic convolutional autoencoder: ``x -> z = encoder(x) -> x_hat = decoder(z)``.

    Defaults reproduce the published Fashion-MNIST CAE (three stride-2 3x3 convolutions of 8, 16 and
    32 filters, a 64-unit bottleneck MLP, a 14-dimensional code, mirrored transposed convolutions,
    ReLU, sigmoid output), trained with Adam on the per-pixel mean squared error.

    Args:
        image_shape: ``(C, H, W)`` of the input images (linked from the datamodule by the CLI).
        channels: filters of the first convolution (doubling at each stage).
        latent_dim: size of the code ``z``.
        hidden_dim: units of the bottleneck MLP layer (0 = a single linear layer).
        batch_norm: BatchNorm after every hidden convolution.
        lr, weight_decay, scheduler, log_images, anomaly_score: see :class:`AutoencoderModule`.

    Logged: ``{train,val,test}_loss`` = ``{stage}_mse``, the per-pixel MSE of reconstructions of
    images in [0, 1] (mean over pixels and images).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        channels: int = 8,
        latent_dim: int = 14,
        hidden_dim: int = 64,
        batch_norm: bool = False,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        scheduler: str = "none",
        log_images: int = 8,
        anomaly_score: str = "mse",
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, scheduler=scheduler, log_images=log_images,
                         anomaly_score=anomaly_score)
        self.save_hyperparameters()
        self.latent_dim = latent_dim
        self.encoder = ConvEncoder(image_shape, channels, latent_dim, hidden_dim, batch_norm=batch_norm)
        self.decoder = ConvDecoder(image_shape, channels, latent_dim, hidden_dim, batch_norm=batch_norm)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["image"]
        mse = F.mse_loss(self.reconstruct(x), x)
        return {"loss": mse, "mse": mse}
