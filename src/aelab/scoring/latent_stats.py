"""Statistics of training codes for the latent-density scores (``mahalanobis``, ``knn``), and the
Gaussian fit of codes that the CAE's samples in ``aelab latent`` also use.

A Gaussian fitted to the codes of in-distribution data (mean and covariance; the class-conditional
version is Lee et al. 2018, arXiv:1807.03888) gives the Mahalanobis distance; a seeded subset of the
codes is the reference set of the k-nearest-neighbour distance (Bergman, Cohen & Hoshen 2020,
arXiv:2002.10445).
"""

from __future__ import annotations

import numpy as np
import torch


def gaussian_fit(codes: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of codes ``(M, D)``, float64 on the CPU.

    Raises:
        ValueError: if fewer than 2 codes of shape ``(M, D)`` are given.
    """
    codes = torch.as_tensor(codes).detach().double().cpu()
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"need at least 2 codes of shape (M, D) to fit a Gaussian, got {tuple(codes.shape)}")
    return codes.mean(0), torch.cov(codes.T).reshape(codes.shape[1], codes.shape[1])


def fit_latent_stats(codes: torch.Tensor, max_reference: int = 10_000, shrinkage: float = 1e-3,
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """Statistics of training codes ``(M, D)`` for the latent-density scores.

    Returns ``{"code_mean": (D,), "code_precision": (D, D), "reference_codes": (R, D)}``: the mean,
    the inverse of the covariance shrunk towards ``shrinkage * mean variance * I`` (keeps it
    invertible; Ledoit & Wolf 2004 style), and a seeded subset of at most ``max_reference`` codes for
    the k-NN score. float32, on the CPU.

    Raises:
        ValueError: if fewer than 2 codes are given.
    """
    mean, cov = gaussian_fit(codes)
    cov = cov + shrinkage * cov.diagonal().mean().clamp_min(1e-12) * torch.eye(len(cov), dtype=cov.dtype)
    codes = torch.as_tensor(codes).detach().double().cpu()
    idx = torch.randperm(len(codes), generator=torch.Generator().manual_seed(seed))[:max_reference]
    return {"code_mean": mean.float(), "code_precision": torch.linalg.inv(cov).float(),
            "reference_codes": codes[idx].float()}
