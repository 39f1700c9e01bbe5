"""Plain ``nn.Module`` building blocks shared by every model: convolutional encoder/decoder and MLP.

Shapes are computed from ``image_shape``, never hard-coded, so the same classes serve 1x28x28
Fashion-MNIST, 1x32x32 padded images and RGB images of 64x64 or 96x96 pixels.

Default architecture (the published Fashion-MNIST CAE): three stride-2 3x3 convolutions with
``channels``, ``2 * channels`` and ``4 * channels`` filters and ReLU, a ``hidden_dim``-unit
bottleneck MLP and a ``latent_dim`` code; the decoder mirrors it with transposed convolutions and
ends in a sigmoid so reconstructions are in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _check_image_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {tuple(image_shape)}")
    return shape  # type: ignore[return-value]


def conv_output_sizes(size: int, num_stages: int) -> list[int]:
    """Spatial sizes after each stride-2, kernel-3, padding-1 convolution: ``ceil(size / 2)``.

    Returns ``num_stages + 1`` sizes, the input size first (e.g. 28 -> [28, 14, 7, 4]).
    """
    sizes = [size]
    for _ in range(num_stages):
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes


def mlp(sizes: Sequence[int], dropout: float = 0.0, final_activation: bool = False) -> nn.Sequential:
    """Fully connected layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with ReLU between them.

    ``dropout`` is applied after every hidden ReLU; ``final_activation`` adds a ReLU after the last
    layer too. Input ``(N, sizes[0])``, output ``(N, sizes[-1])``.
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        last = i == len(sizes) - 2
        if not last or final_activation:
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0 and not last:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """Image ``(N, C, H, W)`` float32 in [0, 1] -> features ``(N, out_dim)``.

    Stages: ``num_stages`` stride-2 3x3 convolutions with ``channels * 2**i`` filters (optional
    BatchNorm) and ReLU, flatten, then an MLP ``flat -> hidden_dim -> out_dim``. With
    ``out_dim = latent_dim`` this is the CAE encoder; the VAE asks for ``2 * latent_dim`` (mean and
    log-variance heads).

    Raises:
        ValueError: if ``image_shape`` is not (C, H, W) or is too small for ``num_stages``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: int = 8,
        out_dim: int = 14,
        hidden_dim: int = 64,
        num_stages: int = 3,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        c, h, w = _check_image_shape(image_shape)
        self.image_shape = (c, h, w)
        self.heights = conv_output_sizes(h, num_stages)
        self.widths = conv_output_sizes(w, num_stages)
        widths = [c] + [channels * 2**i for i in range(num_stages)]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers.append(nn.Conv2d(a, b, 3, stride=2, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.ReLU(inplace=True))
        self.conv = nn.Sequential(*layers)
        self.feature_shape = (widths[-1], self.heights[-1], self.widths[-1])
        flat = widths[-1] * self.heights[-1] * self.widths[-1]
        self.head = mlp([flat, hidden_dim, out_dim]) if hidden_dim > 0 else nn.Linear(flat, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != self.image_shape:
            raise ValueError(
                f"ConvEncoder expects images of shape (N, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return self.head(self.conv(x).flatten(1))


class ConvDecoder(nn.Module):
    """Code ``(N, latent_dim)`` -> image ``(N, C, H, W)``, the mirror image of :class:`ConvEncoder`.

    MLP ``latent_dim -> hidden_dim -> flat`` with ReLU, reshape to the encoder's last feature map,
    then ``num_stages`` stride-2 3x3 transposed convolutions whose ``output_padding`` is computed so
    the sizes retrace the encoder's exactly (e.g. 4 -> 7 -> 14 -> 28). The output is a sigmoid (pixel
    means in [0, 1]) when ``sigmoid`` is true, raw logits otherwise.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: int = 8,
        latent_dim: int = 14,
        hidden_dim: int = 64,
        num_stages: int = 3,
        batch_norm: bool = False,
        sigmoid: bool = True,
    ) -> None:
        super().__init__()
        c, h, w = _check_image_shape(image_shape)
        self.image_shape = (c, h, w)
        heights = conv_output_sizes(h, num_stages)[::-1]
        widths_px = conv_output_sizes(w, num_stages)[::-1]
        widths = [channels * 2**i for i in range(num_stages)][::-1] + [c]
        self.feature_shape = (widths[0], heights[0], widths_px[0])
        flat = widths[0] * heights[0] * widths_px[0]
        sizes = [latent_dim, hidden_dim, flat] if hidden_dim > 0 else [latent_dim, flat]
        self.head = mlp(sizes, final_activation=True)
        layers: list[nn.Module] = []
        for i in range(num_stages):
            # ConvTranspose2d(k=3, s=2, p=1): out = 2 * in - 1 + output_padding
            pad = (heights[i + 1] - (2 * heights[i] - 1), widths_px[i + 1] - (2 * widths_px[i] - 1))
            last = i == num_stages - 1
            layers.append(
                nn.ConvTranspose2d(
                    widths[i], widths[i + 1], 3, stride=2, padding=1, output_padding=pad,
                    bias=last or not batch_norm,
                )
            )
            if not last:
                if batch_norm:
                    layers.append(nn.BatchNorm2d(widths[i + 1]))
                layers.append(nn.ReLU(inplace=True))
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.head(z).view(-1, *self.feature_shape))
