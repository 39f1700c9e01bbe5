"""Convolutional autoencoder (CAE) trained with the mean squared reconstruction error."""

from __future__ import annotations

import kornia.augmentation as K
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
        denoise_erasing: probability that a training input gets a random black rectangle (2-33 % of
            its area) erased while the target stays clean: a denoising autoencoder (Vincent et al.
            2008, "Extracting and composing robust features with denoising autoencoders") that
            learns to in-paint missing regions, so missing or occluded parts of a test image are
            *not* reproduced and show up in the reconstruction error. 0 = a plain CAE.
        lr, weight_decay, scheduler, log_images, anomaly_score, transform_weight: see :class:`AutoencoderModule`.

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
        denoise_erasing: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        scheduler: str = "none",
        log_images: int = 8,
        anomaly_score: str = "mse",
        transform_weight: float = 0.0,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, scheduler=scheduler, log_images=log_images,
                         anomaly_score=anomaly_score, transform_weight=transform_weight)
        self.save_hyperparameters()
        self.latent_dim = latent_dim
        self.encoder = ConvEncoder(image_shape, channels, latent_dim, hidden_dim, batch_norm=batch_norm)
        self.decoder = ConvDecoder(image_shape, channels, latent_dim, hidden_dim, batch_norm=batch_norm)
        self.init_transform_head()
        # denoising autoencoder (Vincent et al. 2008): erase random rectangles of the training inputs,
        # reconstruct the clean image; kornia RandomErasing (Zhong et al. 2020, arXiv:1708.04896)
        self.erase = K.RandomErasing(p=denoise_erasing, scale=(0.02, 0.33), value=0.0) if denoise_erasing > 0 else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["image"]
        x_in = self.erase(x) if self.training and self.erase is not None else x
        mse = F.mse_loss(self.reconstruct(x_in), x)
        return {"loss": mse, "mse": mse}
