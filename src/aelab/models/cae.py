"""Autoencoder (CAE) trained with the mean squared reconstruction error: convolutional on images,
dense on table rows."""

from __future__ import annotations

import kornia.augmentation as K
import torch
import torch.nn.functional as F

from aelab.models.autoencoder import AutoencoderModule
from aelab.nets import autoencoder_nets, check_input_shape


class CAE(AutoencoderModule):
    """Deterministic autoencoder: ``x -> z = encoder(x) -> x_hat = decoder(z)``.

    Defaults reproduce the published Fashion-MNIST CAE (three stride-2 3x3 convolutions of 8, 16 and
    32 filters, a 64-unit bottleneck MLP, a 14-dimensional code, mirrored transposed convolutions,
    ReLU, sigmoid output), trained with Adam on the per-pixel mean squared error.

    On table rows ``(N, D)`` the networks are MLPs ``D -> hidden_dims -> latent_dim`` and back, with
    raw (unbounded) outputs for scaled features.

    Args:
        input_shape: ``(C, H, W)`` of the input images or ``(D,)`` of table rows (linked from the
            datamodule by the CLI).
        channels: filters of the first convolution (doubling at each stage).
        decoder_channels: the decoder's ``channels`` when it should differ from the encoder's (images
            only; None = ``channels``): the decoder's transposed convolutions cost as much as the
            encoder's convolutions, and a thinner decoder makes each step cheaper.
        latent_dim: size of the code ``z``.
        hidden_dim: units of the conv nets' bottleneck MLP layer (0 = a single linear layer).
        hidden_dims: hidden layer sizes of the dense nets (tables), encoder order.
        num_stages: convolution stages (3 for 28x28; 4-5 for 64x64 to 128x128 images).
        batch_norm: BatchNorm after every hidden convolution (or dense layer).
        activation: ``relu`` or ``leaky_relu`` (slope 0.2).
        first_kernel, first_stride: kernel size and stride of the first convolution.
        denoise_erasing: probability that a training input gets a random black rectangle (2-33 % of
            its area) erased while the target stays clean: a denoising autoencoder (Vincent et al.
            2008, "Extracting and composing robust features with denoising autoencoders") that
            learns to in-paint missing regions, so missing or occluded parts of a test image are
            *not* reproduced and show up in the reconstruction error. 0 = a plain CAE.
        lr, weight_decay, scheduler, log_images, transform_weight: see :class:`AutoencoderModule`.

    Logged: ``{train,val,test}_loss`` = ``{stage}_mse``, the per-pixel (per-feature) MSE of
    reconstructions (mean over pixels and images).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...] = (1, 28, 28),
        channels: int = 8,
        decoder_channels: int | None = None,
        latent_dim: int = 14,
        hidden_dim: int = 64,
        hidden_dims: list[int] = [20, 10],
        num_stages: int = 3,
        batch_norm: bool = False,
        activation: str = "relu",
        first_kernel: int = 3,
        first_stride: int = 2,
        denoise_erasing: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        scheduler: str = "none",
        log_images: int = 8,
        transform_weight: float = 0.0,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, scheduler=scheduler, log_images=log_images,
                         transform_weight=transform_weight)
        self.save_hyperparameters()
        self.input_shape = check_input_shape(input_shape)
        self.latent_dim = latent_dim
        self.encoder, self.decoder = autoencoder_nets(
            self.input_shape, latent_dim, latent_dim, channels=channels, decoder_channels=decoder_channels,
            hidden_dim=hidden_dim, hidden_dims=hidden_dims, num_stages=num_stages, batch_norm=batch_norm,
            activation=activation, first_kernel=first_kernel, first_stride=first_stride)
        self.init_transform_head()
        # denoising autoencoder (Vincent et al. 2008): erase random rectangles of the training inputs,
        # reconstruct the clean image; kornia RandomErasing (Zhong et al. 2020, arXiv:1708.04896)
        if denoise_erasing > 0 and len(self.input_shape) != 3:
            raise ValueError("denoise_erasing erases image rectangles; the input is table rows")
        self.erase = K.RandomErasing(p=denoise_erasing, scale=(0.02, 0.33), value=0.0) if denoise_erasing > 0 else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["input"]
        x_in = self.erase(x) if self.training and self.erase is not None else x
        mse = F.mse_loss(self.reconstruct(x_in), x)
        return {"loss": mse, "mse": mse}
