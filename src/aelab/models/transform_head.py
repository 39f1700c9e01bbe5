"""Self-supervised geometric-transformation prediction on an autoencoder's encoder.

The encoder's convolutional features of a transformed image ``T_t(x)`` feed a small MLP that must tell
which of ``T`` transformations ``t`` was applied (rotations by multiples of 90 degrees times shifts).
A network trained on normal images only learns what "upright and centred" means *for those images*;
on an unfamiliar image it is unsure which way it was turned, which makes a strong anomaly score
(Golan & El-Yaniv 2018, "Deep Anomaly Detection Using Geometric Transformations", NeurIPS, arXiv:1805.10917;
Hendrycks et al. 2019, "Using Self-Supervised Learning Can Improve Model Robustness and Uncertainty",
NeurIPS, arXiv:1906.12340, Sec. 4):

    score(x) = -(1/T) * sum_t log p(t | T_t(x))        (nats, higher = more anomalous)

Training adds ``transform_weight * CE(t, head(conv(T_t(x))))`` with one random ``t`` per image (so one
extra encoder pass per batch) to the autoencoder's own loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aelab.nets import ConvEncoder, mlp

HEAD_HIDDEN = 128


def geometric_transforms(image_shape: tuple[int, int, int], shift_fraction: float = 0.2) -> list[tuple[int, int, int]]:
    """The transformation set as ``(quarter_turns, dy, dx)`` triples: rotations by 0, 90, 180, 270
    degrees (only 0 and 180 for non-square images) times the shifts ``(0, 0), (0, +-s), (+-s, 0)`` with
    ``s = round(shift_fraction * side)`` pixels (6 for 28x28): 20 transformations for square images.
    A subset of Golan & El-Yaniv's 72 (they add flips and diagonal shifts)."""
    _, h, w = image_shape
    turns = range(4) if h == w else (0, 2)
    sy, sx = round(shift_fraction * h), round(shift_fraction * w)
    shifts = [(0, 0), (0, sx), (0, -sx), (sy, 0), (-sy, 0)]
    return [(k, dy, dx) for k in turns for dy, dx in shifts]


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift images ``(N, C, H, W)`` by ``dy`` rows and ``dx`` columns; uncovered pixels are 0."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def apply_transform(x: torch.Tensor, transform: tuple[int, int, int]) -> torch.Tensor:
    """One ``(quarter_turns, dy, dx)`` transformation of images ``(N, C, H, W)``: shift, then rotate
    counter-clockwise."""
    k, dy, dx = transform
    return torch.rot90(shift(x, dy, dx), k, dims=(-2, -1))


class TransformHead(nn.Module):
    """MLP ``flattened conv features -> 128 -> T`` (ReLU) that predicts the transformation index.

    Args:
        encoder: the autoencoder's :class:`~aelab.nets.ConvEncoder` (its ``conv`` stages are shared).
        shift_fraction: see :func:`geometric_transforms`.
    """

    def __init__(self, encoder: ConvEncoder, shift_fraction: float = 0.2) -> None:
        super().__init__()
        self.transforms = geometric_transforms(encoder.image_shape, shift_fraction)
        c, h, w = encoder.feature_shape
        self.mlp = mlp([c * h * w, HEAD_HIDDEN, len(self.transforms)])

    def logits(self, encoder: ConvEncoder, x: torch.Tensor) -> torch.Tensor:
        """Transformation logits ``(N, T)`` of (already transformed) images ``(N, C, H, W)``."""
        return self.mlp(encoder.conv(x).flatten(1))

    def loss(self, encoder: ConvEncoder, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(N, C, H, W)`` -> ``(cross-entropy, accuracy)``, two scalar tensors: the mean
        cross-entropy (nats per image) and the accuracy of predicting one random transformation per image."""
        t = torch.randint(len(self.transforms), (len(x),), device=x.device)
        xt = torch.empty_like(x)
        for i, transform in enumerate(self.transforms):
            sel = t == i
            if sel.any():
                xt[sel] = apply_transform(x[sel], transform)
        logits = self.logits(encoder, xt)
        return F.cross_entropy(logits, t), (logits.argmax(1) == t).float().mean()

    def nll(self, encoder: ConvEncoder, x: torch.Tensor) -> torch.Tensor:
        """``-(1/T) sum_t log p(t | T_t(x))`` per image, ``(N,)`` in nats (the anomaly score)."""
        total = torch.zeros_like(x[:, 0, 0, 0])  # (N,): no Python length, so an export keeps N dynamic
        for i, transform in enumerate(self.transforms):
            total = total - F.log_softmax(self.logits(encoder, apply_transform(x, transform)), dim=1)[:, i]
        return total / len(self.transforms)
