"""Plain ``nn.Module`` building blocks shared by every model: convolutional and dense encoders and
decoders, and the MLP.

Shapes are computed from the input shape, never hard-coded, so the same classes serve 1x28x28
Fashion-MNIST, 1x32x32 padded images, RGB images of 64x64 to 128x128 pixels (``(C, H, W)``, conv
nets) and table rows of ``D`` features (``(D,)``, dense nets). :func:`autoencoder_nets` picks the
pair from the input shape.

Default convolutional architecture (the published Fashion-MNIST CAE): three stride-2 3x3
convolutions with ``channels``, ``2 * channels`` and ``4 * channels`` filters and ReLU, a
``hidden_dim``-unit bottleneck MLP and a ``latent_dim`` code; the decoder mirrors it with transposed
convolutions and ends in a sigmoid so reconstructions are in [0, 1]. The dense nets are MLPs
``D -> hidden_dims... -> code`` and back (the credit-card study's encoder 20-10-8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = ("relu", "leaky_relu")
LEAKY_SLOPE = 0.2  # the slope of the CelebA study's LeakyReLU (and DCGAN's, Radford et al. 2016)


def activation_layer(name: str) -> nn.Module:
    """``nn.ReLU`` or ``nn.LeakyReLU(0.2)`` (in place).

    Raises:
        ValueError: for another name.
    """
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``(C, H, W)`` for images or ``(D,)`` for table rows, positive sizes.

    Raises:
        ValueError: for another length or a size below 1.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ValueError(f"input shape must be (C, H, W) for images or (D,) for table rows, with positive "
                         f"sizes; got {tuple(input_shape)}")
    return shape


def _check_image_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {tuple(image_shape)}")
    return shape  # type: ignore[return-value]


def conv_output_size(size: int, kernel: int = 3, stride: int = 2) -> int:
    """Output size of a convolution with ``padding = kernel // 2``: ``floor((size + 2p - kernel) / stride) + 1``."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def conv_output_sizes(size: int, num_stages: int, first_kernel: int = 3, first_stride: int = 2) -> list[int]:
    """Spatial sizes after each stage (the first with ``first_kernel``/``first_stride``, the others
    stride-2 3x3; ``ceil(size / 2)`` for those). Returns ``num_stages + 1`` sizes, the input size first
    (e.g. 28 -> [28, 14, 7, 4])."""
    sizes = [size]
    for i in range(num_stages):
        k, s = (first_kernel, first_stride) if i == 0 else (3, 2)
        sizes.append(conv_output_size(sizes[-1], k, s))
    return sizes


def mlp(sizes: Sequence[int], dropout: float = 0.0, final_activation: bool = False,
        activation: str = "relu", batch_norm: bool = False) -> nn.Sequential:
    """Fully connected layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with ``activation`` between them.

    ``batch_norm`` adds ``BatchNorm1d`` before every hidden activation; ``dropout`` is applied after
    every hidden activation; ``final_activation`` adds the activation after the last layer too.
    Input ``(N, sizes[0])``, output ``(N, sizes[-1])``.
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(nn.Linear(a, b, bias=last or not batch_norm))
        if not last or final_activation:
            if batch_norm and not last:
                layers.append(nn.BatchNorm1d(b))
            layers.append(activation_layer(activation))
            if dropout > 0 and not last:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """Image ``(N, C, H, W)`` float32 in [0, 1] -> features ``(N, out_dim)``.

    Stages: ``num_stages`` convolutions with ``channels * 2**i`` filters (the first of size
    ``first_kernel`` with stride ``first_stride``, the others stride-2 3x3; padding ``kernel // 2``),
    each with optional BatchNorm and ``activation``; flatten, then an MLP ``flat -> hidden_dim -> out_dim``.
    With ``out_dim = latent_dim`` this is the CAE encoder; the VAE asks for ``2 * latent_dim`` (mean and
    log-variance heads).

    Raises:
        ValueError: if ``image_shape`` is not (C, H, W), or (in ``forward``) for images of another shape.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: int = 8,
        out_dim: int = 14,
        hidden_dim: int = 64,
        num_stages: int = 3,
        batch_norm: bool = False,
        activation: str = "relu",
        first_kernel: int = 3,
        first_stride: int = 2,
    ) -> None:
        super().__init__()
        c, h, w = _check_image_shape(image_shape)
        if num_stages < 1 or first_kernel < 1 or first_stride < 1:
            raise ValueError(f"need num_stages, first_kernel, first_stride >= 1; got {num_stages}, "
                             f"{first_kernel}, {first_stride}")
        self.image_shape = self.input_shape = (c, h, w)
        self.heights = conv_output_sizes(h, num_stages, first_kernel, first_stride)
        self.widths = conv_output_sizes(w, num_stages, first_kernel, first_stride)
        if min(self.heights + self.widths) < 1:
            raise ValueError(f"images of {h}x{w} pixels are too small for {num_stages} stages")
        widths = [c] + [channels * 2**i for i in range(num_stages)]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            k, s = (first_kernel, first_stride) if i == 0 else (3, 2)
            layers.append(nn.Conv2d(a, b, k, stride=s, padding=k // 2, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(b))
            layers.append(activation_layer(activation))
        self.conv = nn.Sequential(*layers)
        self.feature_shape = (widths[-1], self.heights[-1], self.widths[-1])
        flat = widths[-1] * self.heights[-1] * self.widths[-1]
        self.head = (mlp([flat, hidden_dim, out_dim], activation=activation) if hidden_dim > 0
                     else nn.Linear(flat, out_dim))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != self.image_shape:
            raise ValueError(
                f"ConvEncoder expects images of shape (N, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return self.head(self.conv(x).flatten(1))


class ConvDecoder(nn.Module):
    """Code ``(N, latent_dim)`` -> image ``(N, out_channels or C, H, W)``, the mirror image of :class:`ConvEncoder`.

    MLP ``latent_dim -> hidden_dim -> flat`` with ``activation``, reshape to the encoder's last feature
    map, then ``num_stages`` transposed convolutions whose ``output_padding`` is computed so the sizes
    retrace the encoder's exactly (e.g. 4 -> 7 -> 14 -> 28). The output is a sigmoid (pixel means in
    [0, 1]) when ``sigmoid`` is true, raw values otherwise. ``out_channels`` (default ``C``) is
    ``2 * C`` for a decoder that also predicts a log-variance per pixel.
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
        activation: str = "relu",
        first_kernel: int = 3,
        first_stride: int = 2,
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        c, h, w = _check_image_shape(image_shape)
        self.image_shape = self.input_shape = (c, h, w)
        heights = conv_output_sizes(h, num_stages, first_kernel, first_stride)[::-1]
        widths_px = conv_output_sizes(w, num_stages, first_kernel, first_stride)[::-1]
        widths = [channels * 2**i for i in range(num_stages)][::-1] + [out_channels or c]
        self.feature_shape = (widths[0], heights[0], widths_px[0])
        flat = widths[0] * heights[0] * widths_px[0]
        sizes = [latent_dim, hidden_dim, flat] if hidden_dim > 0 else [latent_dim, flat]
        self.head = mlp(sizes, final_activation=True, activation=activation)
        layers: list[nn.Module] = []
        for i in range(num_stages):
            first = i == num_stages - 1  # the mirror of the encoder's first stage
            k, s = (first_kernel, first_stride) if first else (3, 2)
            p = k // 2
            # ConvTranspose2d: out = (in - 1) * s - 2p + k + output_padding
            pad = (heights[i + 1] - ((heights[i] - 1) * s - 2 * p + k),
                   widths_px[i + 1] - ((widths_px[i] - 1) * s - 2 * p + k))
            layers.append(nn.ConvTranspose2d(widths[i], widths[i + 1], k, stride=s, padding=p,
                                             output_padding=pad, bias=first or not batch_norm))
            if not first:
                if batch_norm:
                    layers.append(nn.BatchNorm2d(widths[i + 1]))
                layers.append(activation_layer(activation))
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.head(z).view(-1, *self.feature_shape))


class MLPEncoder(nn.Module):
    """Table rows ``(N, D)`` float32 (scaled features) -> features ``(N, out_dim)``: an MLP
    ``D -> hidden_dims... -> out_dim`` with ``activation`` (and optional BatchNorm) between layers.

    Raises:
        ValueError: for ``input_dim < 1``, or (in ``forward``) rows of another width.
    """

    def __init__(self, input_dim: int, out_dim: int, hidden_dims: Sequence[int] = (20, 10),
                 activation: str = "relu", batch_norm: bool = False) -> None:
        super().__init__()
        if input_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden_dims):
            raise ValueError(f"MLPEncoder needs positive sizes, got input_dim={input_dim}, "
                             f"hidden_dims={list(hidden_dims)}, out_dim={out_dim}")
        self.input_shape = (int(input_dim),)
        self.net = mlp([input_dim, *hidden_dims, out_dim], activation=activation, batch_norm=batch_norm)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.input_shape[0]:
            raise ValueError(f"MLPEncoder expects rows of shape (N, {self.input_shape[0]}), got {tuple(x.shape)}")
        return self.net(x)


class MLPDecoder(nn.Module):
    """Code ``(N, latent_dim)`` -> rows ``(N, out_features)``: the mirror MLP
    ``latent_dim -> reversed(hidden_dims)... -> out_features`` (``D``, or ``2 * D`` for a decoder that
    also predicts a log-variance per feature), raw outputs (no final activation)."""

    def __init__(self, out_features: int, latent_dim: int, hidden_dims: Sequence[int] = (20, 10),
                 activation: str = "relu", batch_norm: bool = False) -> None:
        super().__init__()
        self.net = mlp([latent_dim, *reversed(list(hidden_dims)), out_features], activation=activation,
                       batch_norm=batch_norm)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def autoencoder_nets(input_shape: Sequence[int], code_dim: int, latent_dim: int, *, channels: int = 8,
                     decoder_channels: int | None = None, hidden_dim: int = 64,
                     hidden_dims: Sequence[int] = (20, 10), num_stages: int = 3,
                     batch_norm: bool = False, activation: str = "relu", first_kernel: int = 3,
                     first_stride: int = 2, output_multiple: int = 1,
                     sigmoid: bool = True) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` for ``input_shape``: conv nets for images ``(C, H, W)``, dense nets for
    rows ``(D,)``.

    The encoder outputs ``code_dim`` values (``latent_dim`` for a CAE, ``2 * latent_dim`` for a VAE); the
    decoder maps ``latent_dim`` back to ``output_multiple`` values per input value (2: mean and
    log-variance). ``decoder_channels`` (images only; default ``channels``) sets the decoder's width
    apart from the encoder's: a thinner decoder costs less per step when the code, not the
    reconstruction, is what is wanted. ``sigmoid`` applies to images only; dense decoders output raw values.

    Raises:
        ValueError: for an input shape that is neither, sizes that do not fit (see the classes), or a
            ``decoder_channels`` below 1 or given for table rows.
    """
    shape = check_input_shape(input_shape)
    if decoder_channels is not None and (decoder_channels < 1 or len(shape) != 3):
        raise ValueError(f"decoder_channels must be >= 1 and applies to images (C, H, W) only; got "
                         f"{decoder_channels} for inputs of shape {shape} (table rows: set hidden_dims)")
    if len(shape) == 3:
        encoder = ConvEncoder(shape, channels, code_dim, hidden_dim, num_stages, batch_norm, activation,
                              first_kernel, first_stride)
        decoder = ConvDecoder(shape, decoder_channels or channels, latent_dim, hidden_dim, num_stages,
                              batch_norm, sigmoid, activation, first_kernel, first_stride,
                              out_channels=shape[0] * output_multiple)
        return encoder, decoder
    encoder = MLPEncoder(shape[0], code_dim, hidden_dims, activation, batch_norm)
    decoder = MLPDecoder(shape[0] * output_multiple, latent_dim, hidden_dims, activation, batch_norm)
    return encoder, decoder
