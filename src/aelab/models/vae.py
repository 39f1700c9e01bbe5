"""Variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes", arXiv:1312.6114).

Generative model ``p(z) = N(0, I)``, ``p(x | z)`` Bernoulli or Gaussian with means from the
convolutional decoder; inference model ``q(z | x) = N(mu(x), diag(exp(log_var(x))))`` from the
convolutional encoder. Training maximises the evidence lower bound (ELBO, eq. 3 of the paper)

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))

estimated with one reparameterised sample ``z = mu + sigma * eps``, ``eps ~ N(0, I)`` (eq. 10), the KL
term in closed form (Appendix B): ``KL = -1/2 * sum(1 + log_var - mu^2 - exp(log_var))``.
``beta`` weights the KL term (beta-VAE, Higgins et al. 2017, ICLR), optionally warmed up linearly
from 0 (Bowman et al. 2016, arXiv:1511.06349; Sonderby et al. 2016, arXiv:1602.02282).

All log-densities are per image, summed over pixels and latent dimensions, in nats.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aelab.models.base import AutoencoderModule
from aelab.nets import ConvDecoder, ConvEncoder

LIKELIHOODS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(log_var))) || N(0, I))`` per row, in nats: ``(N, D) -> (N,)``.

    Kingma & Welling 2014, Appendix B: ``-1/2 * sum_j (1 + log_var_j - mu_j^2 - exp(log_var_j))``.
    """
    return -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(dim=1)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, diag(exp(log_var)))`` summed over the last dimension, in nats: ``(..., D) -> (...)``."""
    return -0.5 * (LOG_2PI + log_var + (z - mu).pow(2) / log_var.exp()).sum(dim=-1)


class VAE(AutoencoderModule):
    """Convolutional VAE sharing :class:`~aelab.nets.ConvEncoder` / :class:`~aelab.nets.ConvDecoder`
    with the CAE.

    The encoder's last layer has ``2 * latent_dim`` outputs: the ``mu`` and ``log_var`` heads.

    Args:
        image_shape: ``(C, H, W)`` of the input images (linked from the datamodule by the CLI).
        channels, latent_dim, hidden_dim, batch_norm: network size (see :class:`~aelab.nets.ConvEncoder`).
        beta: weight of the KL term (1 = the ELBO; beta-VAE, Higgins et al. 2017).
        likelihood: ``"bernoulli"`` (binary cross-entropy on grey values in [0, 1], the usual choice
            for (Fashion-)MNIST, not a normalised density for non-binary pixels) or ``"gaussian"``
            (``N(x; x_hat, sigma^2)`` per pixel: MSE scaled by ``1 / (2 sigma^2)`` plus the log-normaliser).
        sigma: the Gaussian decoder's standard deviation (pixels in [0, 1]); ignored for Bernoulli.
        learn_sigma: learn one shared ``log sigma`` with the network (the calibrated decoder of
            Rybkin et al. 2021, "Simple and Effective VAE Training with Calibrated Decoders").
        kl_warmup_epochs: the KL weight grows linearly from 0 to ``beta`` over this many epochs
            (0 = no warm-up). Validation and test always use the full ``beta``.
        lr, weight_decay, scheduler, log_images, anomaly_score, transform_weight: see :class:`~aelab.models.base.AutoencoderModule`.

    Logged (per image, nats): ``{stage}_elbo``, ``{stage}_recon`` (``-E_q log p(x|z)``), ``{stage}_kl``,
    ``{stage}_loss`` (``recon + beta_t * kl``, the minimised quantity), and ``{stage}_mse`` (per pixel,
    of the posterior-mean reconstruction, comparable with the CAE).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        channels: int = 32,
        latent_dim: int = 10,
        hidden_dim: int = 256,
        batch_norm: bool = False,
        beta: float = 1.0,
        likelihood: str = "bernoulli",
        sigma: float = 0.1,
        learn_sigma: bool = False,
        kl_warmup_epochs: int = 0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        log_images: int = 8,
        anomaly_score: str = "neg_elbo",
        transform_weight: float = 0.0,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, scheduler=scheduler, log_images=log_images,
                         anomaly_score=anomaly_score, transform_weight=transform_weight)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if beta < 0 or sigma <= 0 or latent_dim < 1:
            raise ValueError(f"need beta >= 0, sigma > 0, latent_dim >= 1; got {beta}, {sigma}, {latent_dim}")
        self.save_hyperparameters()
        self.latent_dim = latent_dim
        self.beta = beta
        self.likelihood = likelihood
        self.kl_warmup_epochs = kl_warmup_epochs
        self.encoder = ConvEncoder(image_shape, channels, 2 * latent_dim, hidden_dim, batch_norm=batch_norm)
        self.decoder = ConvDecoder(image_shape, channels, latent_dim, hidden_dim, batch_norm=batch_norm,
                                   sigmoid=False)
        self.init_transform_head()
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)), requires_grad=learn_sigma)

    # -- the two distributions --------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | x)``: images ``(N, C, H, W)`` -> ``(mu, log_var)``, each ``(N, latent_dim)``."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)
        return mu, log_var.clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(..., latent_dim)`` -> decoder outputs before the sigmoid, ``(..., C, H, W)``."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, self.latent_dim))
        return out.reshape(*lead, *out.shape[1:])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes -> pixel means ``E[x | z]`` in [0, 1], ``(..., C, H, W)``."""
        return torch.sigmoid(self.decode_logits(z))

    def log_likelihood(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``log p(x | z)`` per image in nats, summed over pixels.

        ``x``: ``(N, C, H, W)``; ``logits``: ``(N, C, H, W)`` or ``(K, N, C, H, W)`` for K samples of z.
        Returns ``(N,)`` or ``(K, N)``.
        """
        x = x.expand_as(logits)
        if self.likelihood == "bernoulli":
            ll = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        else:
            log_sigma = self.log_sigma
            ll = -0.5 * (((x - torch.sigmoid(logits)) / log_sigma.exp()).pow(2) + LOG_2PI) - log_sigma
        return ll.flatten(start_dim=-3).sum(-1)

    @staticmethod
    def reparameterize(mu: torch.Tensor, log_var: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """``z = mu + exp(log_var / 2) * eps``, ``eps ~ N(0, I)`` (Kingma & Welling 2014, eq. 10).

        Returns ``(N, D)``, or ``(k, N, D)`` when ``k`` samples are asked for.
        """
        shape = mu.shape if k is None else (k, *mu.shape)
        return mu + (0.5 * log_var).exp() * torch.randn(shape, device=mu.device, dtype=mu.dtype)

    # -- AutoencoderModule API --------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean ``mu(x)``, ``(N, latent_dim)``."""
        return self.posterior(x)[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``E[x | z = mu(x)]``: the decoded posterior mean, ``(N, C, H, W)`` in [0, 1]."""
        return self.decode(self.encode(x))

    def sample(self, n: int) -> torch.Tensor:
        """``n`` images decoded from ``z ~ p(z) = N(0, I)``: pixel means ``(n, C, H, W)`` in [0, 1]."""
        z = torch.randn(n, self.latent_dim, device=self.device)
        return self.decode(z)

    def kl_weight(self) -> float:
        """``beta`` times the linear warm-up factor during training (full ``beta`` otherwise)."""
        if not self.training or self.kl_warmup_epochs <= 0 or self._trainer is None:
            return self.beta
        batches = self.trainer.num_training_batches
        if not math.isfinite(batches) or batches < 1:
            return self.beta
        batches = max(1, batches // self.trainer.accumulate_grad_batches)  # global_step counts optimiser steps
        return self.beta * min(1.0, self.global_step / (self.kl_warmup_epochs * batches))

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One-sample estimates per image ``(N,)``: ``recon`` = ``-log p(x|z)``, ``kl``, ``elbo``; nats."""
        mu, log_var = self.posterior(x)
        z = self.reparameterize(mu, log_var)
        recon = -self.log_likelihood(x, self.decode_logits(z))
        kl = gaussian_kl(mu, log_var)
        return {"recon": recon, "kl": kl, "elbo": -(recon + kl), "mu": mu}

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["image"]
        return self.vae_losses(x, self.elbo_terms(x))

    def vae_losses(self, x: torch.Tensor, t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batch means of :meth:`elbo_terms` ``t`` of images ``x``: ``loss`` (``recon + beta_t * kl``),
        ``elbo``, ``recon``, ``kl`` (nats per image) and ``mse`` (per pixel, of the posterior mean)."""
        with torch.no_grad():
            mse = F.mse_loss(self.decode(t["mu"]), x)
        loss = (t["recon"] + self.kl_weight() * t["kl"]).mean()
        return {"loss": loss, "elbo": t["elbo"].mean(), "recon": t["recon"].mean(), "kl": t["kl"].mean(),
                "mse": mse}
