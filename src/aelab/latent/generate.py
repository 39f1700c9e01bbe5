"""Generation from the latent space: samples, interpolations, and the decoded 2-D latent plane.

Samples:

* a VAE (``likelihood`` capability, ``sample(n)``) samples its prior ``z ~ p(z) = N(0, I)`` and returns
  the decoded pixel means;
* a deterministic autoencoder (the CAE, no prior) is sampled from a Gaussian fitted to the codes of
  the *training* split: ``z ~ N(m, S)`` with ``m`` the mean and ``S`` the full (unbiased) covariance
  of the encoded training images (a seeded subset of at most 10,000 in ``aelab latent``), then
  decoded. This is the simplest density on the codes; it covers the region where codes lie, not
  the shape of the class clusters, so samples between clusters look blurred or mixed.

Interpolation: ``z_t = (1 - t) z_a + t z_b`` for ``t`` evenly spaced in [0, 1] between the codes of
two images ``a`` and ``b``, decoded (linear interpolation in the code space).
"""

from __future__ import annotations

import numpy as np
import torch

from aelab.models.base import IMAGES, LIKELIHOOD
from aelab.scoring.training_stats import gaussian_fit

SAMPLER_PRIOR = "prior: model.sample(n), z ~ N(0, I)"
SAMPLER_GAUSSIAN = "Gaussian fitted to the training codes (mean, full covariance), decoded"


def decode(model, z: torch.Tensor) -> torch.Tensor:
    """Codes ``(N, latent_dim)`` -> ``model.decode(z)`` on the CPU, float32 (images clamped to [0, 1])."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model.decode(z.to(device=device, dtype=torch.float32)).float().cpu()
    return out.clamp(0, 1) if IMAGES in model.capabilities else out


def sample_images(model, n: int, train_codes: np.ndarray | None = None, seed: int = 0) -> tuple[torch.Tensor, str]:
    """``n`` generated images ``(n, C, H, W)`` in [0, 1] and a description of the sampler used.

    With ``model.sample`` (VAE prior) for a VAE; otherwise from a Gaussian fitted to
    ``train_codes`` ``(N, latent_dim)`` (see the module docstring). Seeded: the global torch RNG is
    forked, not changed.

    Raises:
        ValueError: if the model is not a VAE and no ``train_codes`` are given.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if LIKELIHOOD in model.capabilities:
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)
            out = model.sample(n).float().cpu()
            return (out.clamp(0, 1) if IMAGES in model.capabilities else out), SAMPLER_PRIOR
    if train_codes is None:
        raise ValueError(f"{type(model).__name__} has no sample(n): pass train_codes to fit a Gaussian to")
    mean, cov = gaussian_fit(train_codes)
    z = np.random.default_rng(seed).multivariate_normal(mean.numpy(), cov.numpy(), size=n, method="eigh")
    return decode(model, torch.from_numpy(z).float()), SAMPLER_GAUSSIAN


def different_class_pairs(labels: np.ndarray, n_pairs: int, seed: int = 0) -> np.ndarray:
    """``(n_pairs, 2)`` seeded random index pairs into ``labels``, of different classes where possible."""
    labels = np.asarray(labels)
    n = len(labels)
    if n < 2:
        raise ValueError("need at least two images to interpolate between")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_pairs):
        a = int(rng.integers(n))
        others = np.flatnonzero(labels != labels[a])
        if len(others) == 0:
            others = np.delete(np.arange(n), a)
        pairs.append((a, int(rng.choice(others))))
    return np.array(pairs, dtype=np.int64)


def interpolate(model, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Decoded linear interpolations between the codes of image pairs.

    Args:
        x_a, x_b: ``(P, C, H, W)`` images in [0, 1] (pair ``p`` is ``x_a[p]``, ``x_b[p]``).
        steps: points ``t = 0, 1/(steps-1), ..., 1`` per pair (>= 2).

    Returns:
        ``(P, steps, C, H, W)`` decodings of ``(1 - t) encode(x_a) + t encode(x_b)``.
    """
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    device = next(model.parameters()).device
    with torch.inference_mode():
        z_a = model.encode(x_a.to(device)).float()
        z_b = model.encode(x_b.to(device)).float()
    t = torch.linspace(0, 1, steps, device=device).view(1, steps, 1)
    z = (1 - t) * z_a[:, None] + t * z_b[:, None]  # (P, steps, D)
    out = decode(model, z.reshape(-1, z.shape[-1]))
    return out.reshape(len(x_a), steps, *out.shape[1:])


def latent_plane_grid(codes: np.ndarray, n: int = 20, quantiles: tuple[float, float] = (0.01, 0.99)
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regular ``n x n`` grid over a 2-D code space, spanning the given quantiles of ``codes`` ``(N, 2)``.

    Returns ``(z1 (n,), z2 (n,), z (n * n, 2))`` with ``z[i * n + j] = (z1[j], z2[i])``.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"the latent plane needs 2-D codes, got shape {codes.shape}")
    lo, hi = np.quantile(codes, quantiles, axis=0)
    hi = np.where(hi > lo, hi, lo + 1.0)
    z1, z2 = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    g1, g2 = np.meshgrid(z1, z2)
    return z1, z2, np.stack([g1.ravel(), g2.ravel()], axis=1)
