"""Variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes", arXiv:1312.6114).

Generative model ``p(z) = N(0, I)``, ``p(x | z)`` Bernoulli or Gaussian with means (and, for the
heteroscedastic decoder, log-variances) from the decoder; inference model
``q(z | x) = N(mu(x), diag(exp(log_var(x))))`` from the encoder; convolutional nets on images,
dense nets on table rows. Training maximises the evidence lower bound (ELBO, eq. 3 of the paper)

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))

estimated with one reparameterised sample ``z = mu + sigma * eps``, ``eps ~ N(0, I)`` (eq. 10), the KL
term in closed form (Appendix B): ``KL = -1/2 * sum(1 + log_var - mu^2 - exp(log_var))``.
``beta`` weights the KL term (beta-VAE, Higgins et al. 2017, ICLR), optionally warmed up linearly
from 0 (Bowman et al. 2016, arXiv:1511.06349; Sonderby et al. 2016, arXiv:1602.02282).

All log-densities are per item, summed over pixels (features) and latent dimensions, in nats.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aelab.distributions import LOG_2PI, bernoulli_log_likelihood, gaussian_kl, gaussian_log_likelihood
from aelab.models.autoencoder import AutoencoderModule
from aelab.models.base import LIKELIHOOD
from aelab.nets import autoencoder_nets, check_input_shape

LIKELIHOODS = ("bernoulli", "gaussian", "heteroscedastic")
LOG_VAR_RANGE = (-9.0, 9.0)  # decoder log-variances are clamped here (standard deviations 0.011 to 90)


class VAE(AutoencoderModule):
    """VAE sharing its networks (:func:`aelab.nets.autoencoder_nets`) with the CAE.

    The encoder's last layer has ``2 * latent_dim`` outputs: the ``mu`` and ``log_var`` heads.

    Args:
        input_shape: ``(C, H, W)`` of the input images or ``(D,)`` of table rows (linked from the
            datamodule by the CLI).
        channels, decoder_channels, latent_dim, hidden_dim, hidden_dims, num_stages, batch_norm,
            activation, first_kernel, first_stride: network size (see :class:`~aelab.models.cae.CAE`).
        beta: weight of the KL term (1 = the ELBO; beta-VAE, Higgins et al. 2017).
        likelihood: ``"bernoulli"`` (binary cross-entropy on grey values in [0, 1], the usual choice
            for (Fashion-)MNIST, not a normalised density for non-binary pixels; images only),
            ``"gaussian"`` (``N(x; x_hat, sigma^2)`` per pixel or feature, one shared ``sigma``: MSE scaled
            by ``1 / (2 sigma^2)`` plus the log-normaliser) or ``"heteroscedastic"`` (the decoder
            outputs a mean and a log-variance per pixel or feature: ``N(x; mu(z), exp(log_var(z)))``,
            Nix & Weigend 1994; the decoder of An & Cho 2015, whose reconstruction probability then
            weighs each feature by its own predicted spread). Image means pass through a sigmoid;
            table means are unbounded.
        sigma: the shared Gaussian decoder's standard deviation (pixels in [0, 1]); ``"gaussian"`` only.
        learn_sigma: learn that shared ``log sigma`` with the network (the calibrated decoder of
            Rybkin et al. 2021, "Simple and Effective VAE Training with Calibrated Decoders").
        kl_warmup_epochs: the KL weight grows linearly from 0 to ``beta`` over this many epochs
            (0 = no warm-up). Validation and test always use the full ``beta``.
        lr, weight_decay, scheduler, log_images, transform_weight: see
            :class:`~aelab.models.autoencoder.AutoencoderModule`.

    Logged (per item, nats): ``{stage}_elbo``, ``{stage}_recon`` (``-E_q log p(x|z)``), ``{stage}_kl``,
    ``{stage}_loss`` (``recon + beta_t * kl``, the minimised quantity), ``{stage}_mse`` (per pixel, of
    the posterior-mean reconstruction, comparable with the CAE; validation and test only: it costs a
    decoder pass) and ``{stage}_bpd`` (the negative ELBO
    in bits per dimension, ``-ELBO / (D ln 2)``, plus 8 bits for a Gaussian decoder on images: see
    :meth:`bin_bits`).

    Raises:
        ValueError: an unknown likelihood, Bernoulli on table rows, or sizes out of range.
    """

    default_score = "neg_elbo"

    def __init__(
        self,
        input_shape: tuple[int, ...] = (1, 28, 28),
        channels: int = 32,
        decoder_channels: int | None = None,
        latent_dim: int = 10,
        hidden_dim: int = 256,
        hidden_dims: list[int] = [20, 10],
        num_stages: int = 3,
        batch_norm: bool = False,
        activation: str = "relu",
        first_kernel: int = 3,
        first_stride: int = 2,
        beta: float = 1.0,
        likelihood: str = "bernoulli",
        sigma: float = 0.1,
        learn_sigma: bool = False,
        kl_warmup_epochs: int = 0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        log_images: int = 8,
        transform_weight: float = 0.0,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, scheduler=scheduler, log_images=log_images,
                         transform_weight=transform_weight)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if beta < 0 or sigma <= 0 or latent_dim < 1:
            raise ValueError(f"need beta >= 0, sigma > 0, latent_dim >= 1; got {beta}, {sigma}, {latent_dim}")
        self.save_hyperparameters()
        self.input_shape = check_input_shape(input_shape)
        self.images = len(self.input_shape) == 3
        if likelihood == "bernoulli" and not self.images:
            raise ValueError("likelihood='bernoulli' needs values in [0, 1] (images); for table rows use "
                             "'heteroscedastic' or 'gaussian'")
        self.latent_dim = latent_dim
        self.beta = beta
        self.likelihood = likelihood
        self.kl_warmup_epochs = kl_warmup_epochs
        self.encoder, self.decoder = autoencoder_nets(
            self.input_shape, 2 * latent_dim, latent_dim, channels=channels,
            decoder_channels=decoder_channels, hidden_dim=hidden_dim,
            hidden_dims=hidden_dims, num_stages=num_stages, batch_norm=batch_norm, activation=activation,
            first_kernel=first_kernel, first_stride=first_stride,
            output_multiple=2 if likelihood == "heteroscedastic" else 1, sigmoid=False)
        self.init_transform_head()
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)), requires_grad=learn_sigma)

    @property
    def capabilities(self) -> frozenset[str]:
        return super().capabilities | {LIKELIHOOD}

    # -- the two distributions --------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | x)``: inputs ``(N, *input_shape)`` -> ``(mu, log_var)``, each ``(N, latent_dim)``."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)
        return mu, log_var.clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(..., latent_dim)`` -> raw decoder outputs ``(..., *out_shape)`` (before the image
        sigmoid; twice the channels or features for the heteroscedastic decoder)."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, self.latent_dim))
        return out.reshape(*lead, *out.shape[1:])

    def decoder_distribution(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw decoder outputs -> ``(mean, log_var)`` of ``p(x | z)``: mean in [0, 1] for images
        (sigmoid), unbounded for rows; ``log_var`` per pixel/feature for the heteroscedastic decoder
        (clamped to ``LOG_VAR_RANGE``), else ``None``."""
        log_var = None
        if self.likelihood == "heteroscedastic":
            out, log_var = out.chunk(2, dim=-3 if self.images else -1)
            log_var = log_var.clamp(*LOG_VAR_RANGE)
        return (torch.sigmoid(out) if self.images else out), log_var

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes -> means ``E[x | z]`` ``(..., *input_shape)`` (images in [0, 1])."""
        return self.decoder_distribution(self.decode_logits(z))[0]

    def log_likelihood(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``log p(x | z)`` per item in nats, summed over pixels (features).

        ``x``: ``(N, *input_shape)``; ``logits``: raw decoder outputs ``(N, ...)`` or ``(K, N, ...)`` for K
        samples of z. Returns ``(N,)`` or ``(K, N)``.
        """
        return self.feature_log_likelihood(x, logits).sum(-1)

    def feature_log_likelihood(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``log p(x_j | z)`` of every pixel (feature) ``j`` in nats, flattened: ``(N, D)`` or ``(K, N, D)``
        with ``D`` = the number of values in ``input_shape`` (arguments as :meth:`log_likelihood`)."""
        event_dims = len(self.input_shape)
        if self.likelihood == "bernoulli":
            ll = bernoulli_log_likelihood(x, logits)
        elif self.likelihood == "gaussian":
            mean, _ = self.decoder_distribution(logits)
            log_sigma = self.log_sigma
            ll = -0.5 * (((x.expand_as(mean) - mean) / log_sigma.exp()).pow(2) + LOG_2PI) - log_sigma
        else:
            mean, log_var = self.decoder_distribution(logits)
            ll = gaussian_log_likelihood(x, mean, log_var)
        return ll.flatten(start_dim=-event_dims)

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
        """``E[x | z = mu(x)]``: the decoded posterior mean, ``(N, *input_shape)``."""
        return self.decode(self.encode(x))

    def sample(self, n: int) -> torch.Tensor:
        """``n`` items decoded from ``z ~ p(z) = N(0, I)``: means ``(n, *input_shape)``."""
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
        """One-sample estimates per item ``(N,)``: ``recon`` = ``-log p(x|z)``, ``kl``, ``elbo``; nats."""
        mu, log_var = self.posterior(x)
        z = self.reparameterize(mu, log_var)
        recon = -self.log_likelihood(x, self.decode_logits(z))
        kl = gaussian_kl(mu, log_var)
        return {"recon": recon, "kl": kl, "elbo": -(recon + kl), "mu": mu}

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["input"]
        return self.vae_losses(x, self.elbo_terms(x))

    def vae_losses(self, x: torch.Tensor, t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batch means of :meth:`elbo_terms` ``t`` of inputs ``x``: ``loss`` (``recon + beta_t * kl``),
        ``elbo``, ``recon``, ``kl`` (nats per item), ``bpd`` and, outside training, ``mse`` (per pixel, of
        the posterior mean's reconstruction). Training skips ``mse``: it costs one more decoder pass per
        step (about 15 % of the few-label recipe's step on a CPU) and nothing is trained on it."""
        loss = (t["recon"] + self.kl_weight() * t["kl"]).mean()
        out = {"loss": loss, "elbo": t["elbo"].mean(), "recon": t["recon"].mean(), "kl": t["kl"].mean()}
        with torch.no_grad():
            out["bpd"] = -t["elbo"].mean() / (x[0].numel() * math.log(2)) + self.bin_bits()
            if not self.training:
                out["mse"] = F.mse_loss(self.decode(t["mu"]), x)
        return out

    def bin_bits(self) -> float:
        """Bits per dimension added to ``-ELBO / (D ln 2)`` so that it bounds the code length of 8-bit data:
        ``log2(256) = 8`` for a Gaussian density over grey values in [0, 1] (the density times the bin width
        1/256), 0 for the Bernoulli decoder (whose numbers are not a density of grey values) and for tables."""
        return 8.0 if self.images and self.likelihood != "bernoulli" else 0.0
