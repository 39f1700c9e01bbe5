"""Anomaly scores: functions of ``(model, inputs, ...)`` returning one number per item, higher = more anomalous.

=====================  ==============================================================  ===========
name                   definition                                                      models
=====================  ==============================================================  ===========
``mse``                mean squared reconstruction error per pixel                     CAE, VAE
``local_error``        max (or mean of the top-k %) of the Gaussian-smoothed           CAE, VAE
                       per-pixel squared (or one-sided) residual map
``neg_elbo``           ``-ELBO(x)``, one reparameterised sample, nats                  VAE
``neg_elbo_k``         ``-ELBO(x)`` averaged over K samples, nats                      VAE
``iwae``               ``-log p(x)`` estimated with K importance samples, nats         VAE
``recon_prob``         ``-log 1/L sum_l p(x | z_l)``, ``z_l ~ q(z|x)``, nats          VAE
``recon_nll``          ``-sum_{j in F} log p(x_j | z = mu(x))``, all features or a     VAE
                       chosen subset ``F``, nats
``complexity``         ``-log2 p(x)`` minus the PNG length of ``x``, bits              VAE, images
``recon_mahalanobis``  Mahalanobis distance of the (standardised) reconstruction       CAE, VAE,
                       residual to the training rows' residuals                        tables
``mahalanobis``        Mahalanobis distance of the code to the training codes          CAE, VAE
``knn``                mean Euclidean distance to the k nearest training codes         CAE, VAE
``msp``                ``1 -`` maximum softmax probability of the classifier            with a
                                                                                       classifier
``transform``          ``-(1/T) sum_t log p(t | T_t(x))`` of the encoder's             CAE, VAE with
                       rotation/shift-prediction head, nats                            transform_weight
=====================  ==============================================================  ===========

Sources: reconstruction error as novelty score (Japkowicz et al. 1995; Sakurada & Yairi 2014);
ELBO (Kingma & Welling 2014, arXiv:1312.6114, eq. 3); importance-weighted bound (Burda, Grosse &
Salakhutdinov 2016, "Importance Weighted Autoencoders", arXiv:1509.00519, eq. 8); reconstruction
probability (An & Cho 2015, "Variational Autoencoder based Anomaly Detection using Reconstruction
Probability", SNU Data Mining Center, Algorithm 4); input complexity (Serra et al. 2020, arXiv:1909.11480); Mahalanobis distance in a
learned feature space (Lee et al. 2018, arXiv:1807.03888); k-nearest-neighbour distance (Ramaswamy,
Rastogi & Shim 2000; on deep features: Bergman, Cohen & Hoshen 2020, arXiv:2002.10445); maximum
softmax probability baseline for out-of-distribution detection (Hendrycks & Gimpel 2017,
arXiv:1610.02136); geometric-transformation prediction (Golan & El-Yaniv 2018, arXiv:1805.10917;
Hendrycks, Mazeika, Kadavath & Song 2019, arXiv:1906.12340); Mahalanobis distance of reconstruction
error vectors (Malhotra et al. 2016, EncDec-AD, arXiv:1607.00148).

The latent-density scores and ``recon_mahalanobis`` take statistics of the training codes (residuals)
as arguments; a :class:`aelab.scoring.Scorer` fits them (:mod:`aelab.scoring.training_stats`) and keeps
them as module state, so the test step, ``aelab evaluate``, ``aelab predict`` and an exported model give
the same numbers. Every function takes the model first and calls only what its capabilities promise
(:mod:`aelab.models.base`); none imports a model class. Which score applies to which model:
:mod:`aelab.scoring.registry`.
"""

from __future__ import annotations

import math

import torch
from kornia.filters import gaussian_blur2d

from aelab.distributions import gaussian_kl, gaussian_log_density
from aelab.models.base import LIKELIHOOD

Tensor = torch.Tensor


# -- reconstruction-based scores --------------------------------------------------------------------
RESIDUALS = ("squared", "absolute", "darker", "brighter")


def residual_map(model, x: Tensor, residual: str = "squared") -> Tensor:
    """Per-pixel residual of the reconstruction ``r = reconstruct(x)``, summed over channels:
    ``(N, C, H, W) -> (N, 1, H, W)``.

    ``residual``: ``"squared"`` ``(r - x)^2``; ``"absolute"`` ``|r - x|``; ``"darker"``
    ``max(r - x, 0)``, intensity the model expects but the input lacks (black occlusions, holes,
    missing parts); ``"brighter"`` ``max(x - r, 0)``, intensity the input has but the model does not
    expect (bright spots). One-sided residuals for anomalies of known polarity follow Baur et al.
    2021, "Autoencoders for unsupervised anomaly segmentation in brain MR images: a comparative
    study", Medical Image Analysis 69, 101952 (positive residuals only, for hyperintense lesions).

    Raises:
        ValueError: for an unknown ``residual``.
    """
    if residual not in RESIDUALS:
        raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}")
    diff = model.reconstruct(x) - x
    if residual == "squared":
        diff = diff.pow(2)
    elif residual == "absolute":
        diff = diff.abs()
    elif residual == "darker":
        diff = diff.clamp_min(0)
    else:
        diff = (-diff).clamp_min(0)
    return diff.sum(dim=1, keepdim=True)


def mse_score(model, x: Tensor) -> Tensor:
    """Mean squared reconstruction error per pixel (and channel), ``(N,)``; images in [0, 1]."""
    return (model.reconstruct(x) - x).pow(2).flatten(1).mean(1)


def local_error_score(model, x: Tensor, sigma: float = 1.0, top_k: float = 0.0, residual: str = "squared") -> Tensor:
    """Localised reconstruction error, ``(N,)``: for small damaged regions a mean washes out.

    The per-pixel residual map (:func:`residual_map`; squared error by default, or one-sided for
    anomalies of known polarity) is smoothed with a Gaussian of standard deviation ``sigma`` pixels
    (kornia ``gaussian_blur2d``, kernel ``2 * ceil(3 sigma) + 1``); the score is its maximum
    (``top_k = 0``) or the mean of its largest ``top_k`` percent of pixels (e.g. ``top_k = 5``).

    Raises:
        ValueError: for an unknown ``residual``.
    """
    err = residual_map(model, x, residual)
    if sigma > 0:
        k = 2 * int(torch.tensor(3 * sigma).ceil()) + 1
        err = gaussian_blur2d(err, (k, k), (sigma, sigma))
    flat = err.flatten(1)
    if top_k <= 0:
        return flat.max(1).values
    n = max(1, int(round(flat.shape[1] * top_k / 100)))
    return flat.topk(n, dim=1).values.mean(1)


# -- VAE likelihood-based scores --------------------------------------------------------------------
def neg_elbo_score(model, x: Tensor, k: int = 1) -> Tensor:
    """``-ELBO(x)`` in nats per image, ``(N,)``, with ``k`` reparameterised samples of ``q(z|x)``.

    ``-ELBO = -1/k sum_k log p(x | z_k) + KL(q(z|x) || p(z))`` (closed-form KL; Kingma & Welling 2014).
    The KL term is weighted by 1 (not ``beta``): this is the bound on ``-log p(x)``.
    """
    mu, log_var = model.posterior(x)
    z = model.reparameterize(mu, log_var, k)
    recon = -model.log_likelihood(x, model.decode_logits(z)).mean(0)
    return recon + gaussian_kl(mu, log_var)


def iwae_score(model, x: Tensor, k: int = 64) -> Tensor:
    """``-log p(x)`` estimated with ``k`` importance samples (Burda et al. 2016, eq. 8), nats, ``(N,)``.

    ``log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log k``, ``z_k ~ q(z|x)``;
    a lower bound on ``log p(x)`` that tightens as ``k`` grows (``k = 1`` is the ELBO).
    """
    mu, log_var = model.posterior(x)
    z = model.reparameterize(mu, log_var, k)  # (k, N, D)
    log_px_z = model.log_likelihood(x, model.decode_logits(z))
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
    log_qz = gaussian_log_density(z, mu, log_var)
    log_w = log_px_z + log_pz - log_qz
    return -(torch.logsumexp(log_w, dim=0) - torch.log(torch.tensor(float(k))))


def recon_prob_score(model, x: Tensor, k: int = 100) -> Tensor:
    """Negative log reconstruction probability (An & Cho 2015, Algorithm 4), nats, ``(N,)``.

    The reconstruction probability is ``1/L sum_l p(x | mu_x(z_l), sigma_x(z_l))`` with ``L = k`` samples
    ``z_l ~ q(z|x)`` (the study: ``L = 100``): the average *probability* of the input under the decoder's
    distributions, without the KL term of the ELBO. Its negative logarithm,
    ``-(logsumexp_l log p(x | z_l) - log L)``, is computed in log space (densities of many features
    underflow). With the heteroscedastic decoder every feature is weighed by its own predicted spread.
    """
    mu, log_var = model.posterior(x)
    z = model.reparameterize(mu, log_var, k)
    log_px = model.log_likelihood(x, model.decode_logits(z))  # (k, N)
    return -(torch.logsumexp(log_px, dim=0) - math.log(k))


def recon_nll_per_feature(model, x: Tensor) -> Tensor:
    """``-log p(x_j | z = mu(x))`` of every value ``j`` of the flattened input, nats, ``(N, D)``: the terms
    that :func:`recon_nll_score` sums (and that a feature choice on labelled rows ranks)."""
    mu, _ = model.posterior(x)
    return -model.feature_log_likelihood(x, model.decode_logits(mu))


def recon_nll_score(model, x: Tensor, features: list[int] | None = None) -> Tensor:
    """Negative log-likelihood of the input under the decoder's distribution at the posterior mean,
    ``-sum_{j in F} log p(x_j | z = mu(x))``, nats, ``(N,)``; no sampling.

    The deterministic one-sample form of An & Cho's reconstruction probability (2015, Algorithm 4, with
    ``L = 1`` and ``z`` at the mean of ``q(z|x)`` instead of drawn from it); with the heteroscedastic
    decoder each feature is weighed by its own predicted variance (Nix & Weigend 1994). ``features``:
    the indices ``F`` of the flattened input's values to sum over (``None``: all of them), e.g. the table
    columns that a labelled validation set shows to carry the anomalies
    (:func:`aelab.evaluation.feature_subset.backward_feature_subset`).

    Raises:
        ValueError: an index in ``features`` outside ``0 .. D - 1``, or an empty list.
    """
    nll = recon_nll_per_feature(model, x)  # (N, D)
    if features is not None:
        d = nll.shape[-1]
        if not features or any(not 0 <= int(j) < d for j in features):
            raise ValueError(f"recon_nll: features must be a non-empty list of indices in 0..{d - 1} "
                             f"(the input's {d} values), got {list(features)}")
        nll = nll[:, torch.as_tensor([int(j) for j in features], device=nll.device)]
    return nll.sum(-1)


def png_bits(x: Tensor) -> Tensor:
    """Lossless compressed length of images ``(N, C, H, W)`` in [0, 1] as 8-bit PNG (Pillow,
    ``compress_level=9``), in bits, ``(N,)`` float64: the complexity estimate ``L(x)`` of Serra et al. 2020."""
    import io

    import numpy as np
    from PIL import Image

    arrays = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    out = []
    for a in arrays:
        image = Image.fromarray(a[0] if a.shape[0] == 1 else np.ascontiguousarray(a.transpose(1, 2, 0)))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=9)
        out.append(8.0 * buffer.tell())
    return torch.tensor(out, dtype=torch.float64, device=x.device)


def complexity_score(model, x: Tensor, k: int = 16) -> Tensor:
    """Input-complexity corrected likelihood score (Serra et al. 2020, "Input complexity and
    out-of-distribution detection with likelihood-based generative models", ICLR, arXiv:1909.11480,
    Eq. 2): ``S(x) = -log2 p(x) - L(x)`` in bits, ``(N,)`` float64.

    ``-log2 p(x)`` is the IWAE estimate with ``k`` samples (:func:`iwae_score`, nats / ln 2); for a
    Gaussian decoder (a density over grey values in [0, 1]) ``D * log2(256)`` bits are added so that it is
    the code length of the 8-bit image (the density times the bin width ``1/256`` per pixel; a constant
    per data set, so rankings do not change). ``L(x)`` is the PNG length (:func:`png_bits`). Likelihood
    models give simple images (e.g. digits against Fashion-MNIST) *higher* likelihoods (Nalisnick et al.
    2019, arXiv:1810.09136); subtracting their complexity removes that bias.
    """
    bits = iwae_score(model, x, k).double() / math.log(2)
    if getattr(model, "likelihood", "bernoulli") != "bernoulli":
        bits = bits + x[0].numel() * 8.0
    return bits - png_bits(x)


# -- Mahalanobis distances to the training inputs' codes or residuals ----------------------------------
def mahalanobis_distance(v: Tensor, mean: Tensor, precision: Tensor) -> Tensor:
    """``sqrt((v - m)^T P (v - m))`` of vectors ``v`` ``(N, D)`` to a Gaussian's mean ``m`` ``(D,)`` and
    precision ``P`` ``(D, D)`` (Mahalanobis 1936), ``(N,)`` in ``v``'s dtype. The quadratic form is summed in
    float64 (a precision matrix of nearly flat vectors has large entries whose products cancel), so every
    runtime gives the same float32 result."""
    d = (v - mean).double()
    return torch.einsum("ni,ij,nj->n", d, precision.double(), d).clamp_min(0).sqrt().to(v.dtype)


def standardized_residual(model, x: Tensor) -> Tensor:
    """The reconstruction residual of every value of the flattened input, ``(N, D)``.

    With a heteroscedastic VAE decoder (a mean and a log-variance per feature), the residual in the decoder's
    own standard deviations at the posterior mean, ``(x - mean(z)) / sigma(z)`` with ``z = mu(x)``; with any
    other model, ``x - reconstruct(x)`` (a shared decoder variance only rescales it, which a Mahalanobis
    distance ignores).
    """
    if LIKELIHOOD in model.capabilities:
        mean, log_var = model.decoder_distribution(model.decode_logits(model.posterior(x)[0]))
        if log_var is not None:
            return ((x - mean) * torch.exp(-0.5 * log_var)).flatten(1)
    return (x - model.reconstruct(x)).flatten(1)


def recon_mahalanobis_score(model, x: Tensor, residual_mean: Tensor, residual_precision: Tensor) -> Tensor:
    """Mahalanobis distance of the input's reconstruction residual (:func:`standardized_residual`) to the
    residuals of the normal training rows, ``sqrt((r - m)^T S^-1 (r - m))``, ``(N,)``, dimensionless; table
    rows ``(N, D)``.

    EncDec-AD's anomaly score (Malhotra et al. 2016, "LSTM-based Encoder-Decoder for Multi-sensor Anomaly
    Detection", arXiv:1607.00148, Sec. 2.2: a Gaussian ``N(m, S)`` fitted by maximum likelihood to the error
    vectors of normal data, score ``(e - m)^T S^-1 (e - m)``), here on the heteroscedastic decoder's
    standardised residuals, its square root. Up to constants it is ``-log p(x | z = mu(x))`` under a decoder
    whose covariance is ``diag(sigma(z)) S diag(sigma(z))`` instead of ``diag(sigma(z)^2)``: the residuals'
    correlations, which a per-feature likelihood (``recon_nll``) ignores, count. ``m`` ``(D,)`` and ``S^-1``
    ``(D, D)``: :func:`aelab.scoring.training_stats.fit_residual_stats`.
    """
    return mahalanobis_distance(standardized_residual(model, x), residual_mean, residual_precision)


def mahalanobis_score(model, x: Tensor, code_mean: Tensor, code_precision: Tensor) -> Tensor:
    """Mahalanobis distance ``sqrt((z - m)^T S^-1 (z - m))`` of the code ``z = encode(x)`` to the
    training codes' mean ``m`` ``(D,)`` and precision ``S^-1`` ``(D, D)`` (Lee et al. 2018), ``(N,)``,
    latent units (:func:`mahalanobis_distance`)."""
    return mahalanobis_distance(model.encode(x), code_mean, code_precision)


# -- k-nearest-neighbour distance to the training codes -----------------------------------------------
def pairwise_distances(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances ``(N, M)`` between the rows of ``a`` ``(N, D)`` and ``b`` ``(M, D)``, returned in
    ``a``'s dtype.

    ``|a|^2 + |b|^2 - 2 a.b`` as one matrix product of padded rows (the computation of ``torch.cdist`` for
    more than 25 rows, ATen's ``_euclidean_dist``), in float64: the expansion subtracts large numbers for
    codes far from the origin, and float64 keeps the result exact to float32 precision whichever runtime
    (eager PyTorch, TorchScript, ONNX Runtime) sums the product, so exported scores match.
    """
    a64, b64 = a.double(), b.double()
    a_norm = a64.pow(2).sum(-1, keepdim=True)
    b_norm = b64.pow(2).sum(-1, keepdim=True)
    a_pad = torch.cat([a64.mul(-2), a_norm, torch.ones_like(a_norm)], -1)
    b_pad = torch.cat([b64, torch.ones_like(b_norm), b_norm], -1)
    return (a_pad @ b_pad.transpose(-2, -1)).clamp_min(0).sqrt().to(a.dtype)


def knn_score(model, x: Tensor, reference_codes: Tensor, k: int = 5) -> Tensor:
    """Mean Euclidean distance from ``encode(x)`` to its ``k`` nearest training codes
    (``reference_codes`` ``(R, D)``), ``(N,)``, latent units."""
    dist = pairwise_distances(model.encode(x), reference_codes)
    return dist.topk(min(k, reference_codes.shape[0]), dim=1, largest=False).values.mean(1)


# -- classifier and self-supervised scores ----------------------------------------------------------
def msp_score(model, x: Tensor) -> Tensor:
    """``1 - max_k softmax(classify(x))_k``, ``(N,)`` in [0, 1 - 1/K]: low classifier confidence =
    likely out-of-distribution (Hendrycks & Gimpel 2017). Needs a model with ``classify``."""
    return 1 - model.classify(x).softmax(-1).max(-1).values


def transform_score(model, x: Tensor) -> Tensor:
    """``-(1/T) sum_t log p(t | T_t(x))``, ``(N,)`` in nats: how unsure the encoder's
    transformation-prediction head is about which of the ``T`` rotations/shifts was applied
    (Golan & El-Yaniv 2018, arXiv:1805.10917; Hendrycks et al. 2019, arXiv:1906.12340, Sec. 4).
    Needs a model trained with ``transform_weight > 0`` (see :mod:`aelab.models.transform_head`)."""
    return model.transform_head.nll(model.encoder, x)
