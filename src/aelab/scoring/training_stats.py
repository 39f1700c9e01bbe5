"""Statistics of the training inputs for the scores that compare an input with them: the codes for the
latent-density scores (``mahalanobis``, ``knn``), the reconstruction residuals for ``recon_mahalanobis``;
and the Gaussian fit of codes that the CAE's samples in ``aelab latent`` also use.

A Gaussian fitted to the codes of in-distribution data (mean and covariance; the class-conditional
version is Lee et al. 2018, arXiv:1807.03888) gives the Mahalanobis distance; a seeded subset of the
codes is the reference set of the k-nearest-neighbour distance (Bergman, Cohen & Hoshen 2020,
arXiv:2002.10445). A Gaussian fitted to the residual vectors of normal data gives the residuals'
Mahalanobis distance (Malhotra et al. 2016, "LSTM-based Encoder-Decoder for Multi-sensor Anomaly
Detection", arXiv:1607.00148, Sec. 2.2).
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


def gaussian_precision(values: torch.Tensor | np.ndarray, shrinkage: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(D,)`` and precision ``(D, D)`` of vectors ``(M, D)``, float64: the inverse of the covariance
    shrunk towards ``shrinkage * mean variance * I`` (keeps it invertible; Ledoit & Wolf 2004 style).

    Raises:
        ValueError: if fewer than 2 vectors are given.
    """
    mean, cov = gaussian_fit(values)
    cov = cov + shrinkage * cov.diagonal().mean().clamp_min(1e-12) * torch.eye(len(cov), dtype=cov.dtype)
    return mean, torch.linalg.inv(cov)


def fit_latent_stats(codes: torch.Tensor, max_reference: int = 10_000, shrinkage: float = 1e-3,
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """Statistics of training codes ``(M, D)`` for the latent-density scores.

    Returns ``{"code_mean": (D,), "code_precision": (D, D), "reference_codes": (R, D)}``: the mean and
    precision of :func:`gaussian_precision`, and a seeded subset of at most ``max_reference`` codes for
    the k-NN score. float32, on the CPU.

    Raises:
        ValueError: if fewer than 2 codes are given.
    """
    mean, precision = gaussian_precision(codes, shrinkage)
    codes = torch.as_tensor(codes).detach().double().cpu()
    idx = torch.randperm(len(codes), generator=torch.Generator().manual_seed(seed))[:max_reference]
    return {"code_mean": mean.float(), "code_precision": precision.float(), "reference_codes": codes[idx].float()}


def fit_residual_stats(residuals: torch.Tensor, shrinkage: float = 1e-3) -> dict[str, torch.Tensor]:
    """Statistics of the training rows' reconstruction residuals ``(M, D)``
    (:func:`aelab.scoring.functions.standardized_residual`) for ``recon_mahalanobis``.

    Returns ``{"residual_mean": (D,), "residual_precision": (D, D)}`` (:func:`gaussian_precision`), float32
    on the CPU.

    Raises:
        ValueError: if fewer than 2 residual vectors are given.
    """
    mean, precision = gaussian_precision(residuals, shrinkage)
    return {"residual_mean": mean.float(), "residual_precision": precision.float()}
