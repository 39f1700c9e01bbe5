"""Log-densities and KL divergences shared by the models (training losses) and the anomaly scores.

Everything is per item and in nats: summed over the event dimensions, batch dimensions kept.

Sources: the Gaussian KL divergence in closed form (Kingma & Welling 2014, "Auto-Encoding
Variational Bayes", arXiv:1312.6114, Appendix B); the Bernoulli log-likelihood of pixel values in
[0, 1] (the same paper's MNIST decoder, Appendix C.1); the heteroscedastic Gaussian log-likelihood
with a predicted mean and log-variance per feature (Nix & Weigend 1994, "Estimating the mean and
variance of the target probability distribution", ICNN; the decoder of An & Cho 2015).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(log_var))) || N(0, I))`` per row, in nats: ``(N, D) -> (N,)``.

    Kingma & Welling 2014, Appendix B: ``-1/2 * sum_j (1 + log_var_j - mu_j^2 - exp(log_var_j))``.
    """
    return -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(dim=1)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, diag(exp(log_var)))`` summed over the last dimension, in nats: ``(..., D) -> (...)``."""
    return -0.5 * (LOG_2PI + log_var + (z - mu).pow(2) / log_var.exp()).sum(dim=-1)


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Element-wise ``log N(x; mean, exp(log_var))`` in nats (no summation), broadcasting ``x``.

    ``-1/2 (log 2 pi + log_var + (x - mean)^2 / exp(log_var))`` (Nix & Weigend 1994). Shapes: ``mean`` and
    ``log_var`` alike, ``x`` broadcastable to them.
    """
    return -0.5 * (LOG_2PI + log_var + (x - mean).pow(2) * torch.exp(-log_var))


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Element-wise ``x log p + (1 - x) log(1 - p)`` with ``p = sigmoid(logits)``, in nats, ``x`` in [0, 1]
    (Kingma & Welling 2014, Appendix C.1; not a normalised density for grey values between 0 and 1)."""
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
