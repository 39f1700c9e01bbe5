"""Anomaly scores: functions of ``(model, images)`` returning one number per image, higher = more anomalous.

=====================  ==============================================================  ===========
name                   definition                                                      models
=====================  ==============================================================  ===========
``mse``                mean squared reconstruction error per pixel                     CAE, VAE
``local_error``        max (or mean of the top-k %) of the Gaussian-smoothed           CAE, VAE
                       per-pixel squared (or one-sided) residual map
``neg_elbo``           ``-ELBO(x)``, one reparameterised sample, nats                  VAE
``neg_elbo_k``         ``-ELBO(x)`` averaged over K samples, nats                      VAE
``iwae``               ``-log p(x)`` estimated with K importance samples, nats         VAE
``recon_prob``         ``-1/L sum_l log p(x | z_l)``, ``z_l ~ q(z|x)``, nats           VAE
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
Probability", Algorithm 4; here as the Monte-Carlo mean log-likelihood); Mahalanobis distance in a
learned feature space (Lee et al. 2018, arXiv:1807.03888); k-nearest-neighbour distance (Ramaswamy,
Rastogi & Shim 2000; on deep features: Bergman, Cohen & Hoshen 2020, arXiv:2002.10445); maximum
softmax probability baseline for out-of-distribution detection (Hendrycks & Gimpel 2017,
arXiv:1610.02136); geometric-transformation prediction (Golan & El-Yaniv 2018, arXiv:1805.10917;
Hendrycks, Mazeika, Kadavath & Song 2019, arXiv:1906.12340).

The latent-density scores need statistics of the training codes: :func:`fit_latent_stats` computes
them, and models keep them in ``model.score_stats`` (saved in checkpoints), so ``aelab evaluate``
and a later ``aelab predict`` give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from kornia.filters import gaussian_blur2d

from aelab.models.vae import gaussian_kl, gaussian_log_density

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


def recon_prob_score(model, x: Tensor, k: int = 16) -> Tensor:
    """Negative reconstruction probability (An & Cho 2015, Algorithm 4), nats, ``(N,)``.

    ``-1/L sum_l log p(x | z_l)`` with ``L = k`` samples ``z_l ~ q(z|x)``: how probable the input is
    under the decoder's distribution, without the KL term of the ELBO.
    """
    mu, log_var = model.posterior(x)
    z = model.reparameterize(mu, log_var, k)
    return -model.log_likelihood(x, model.decode_logits(z)).mean(0)


# -- latent-density scores --------------------------------------------------------------------------
def fit_latent_stats(codes: Tensor, max_reference: int = 10_000, shrinkage: float = 1e-3,
                     seed: int = 0) -> dict[str, Tensor]:
    """Statistics of training codes ``(M, D)`` for the latent-density scores.

    Returns ``{"code_mean": (D,), "code_precision": (D, D), "reference_codes": (R, D)}``: the mean,
    the inverse of the covariance shrunk towards ``shrinkage * mean variance * I`` (keeps it invertible),
    and a seeded subset of at most ``max_reference`` codes for the k-NN score. float32, on the CPU.

    Raises:
        ValueError: if fewer than 2 codes are given.
    """
    codes = codes.detach().double().cpu()
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"need at least 2 codes of shape (M, D) to fit latent statistics, got {tuple(codes.shape)}")
    mean = codes.mean(0)
    cov = torch.cov(codes.T).reshape(codes.shape[1], codes.shape[1])
    cov = cov + shrinkage * cov.diagonal().mean().clamp_min(1e-12) * torch.eye(len(cov), dtype=cov.dtype)
    idx = torch.randperm(len(codes), generator=torch.Generator().manual_seed(seed))[:max_reference]
    return {"code_mean": mean.float(), "code_precision": torch.linalg.inv(cov).float(),
            "reference_codes": codes[idx].float()}


def _stats(model) -> dict[str, Tensor]:
    stats = getattr(model, "score_stats", None)
    if not stats:
        raise RuntimeError(
            f"{type(model).__name__} has no fitted latent statistics: call "
            "aelab.scores.fit_model_stats(model, train_loader) first (aelab evaluate does this)"
        )
    return stats


def mahalanobis_score(model, x: Tensor) -> Tensor:
    """Mahalanobis distance ``sqrt((z - m)^T S^-1 (z - m))`` of the code ``z = encode(x)`` to the
    training codes' mean ``m`` and covariance ``S`` (Lee et al. 2018), ``(N,)``, latent units."""
    stats = _stats(model)
    d = model.encode(x) - stats["code_mean"].to(x.device)
    return torch.einsum("ni,ij,nj->n", d, stats["code_precision"].to(x.device), d).clamp_min(0).sqrt()


def knn_score(model, x: Tensor, k: int = 5) -> Tensor:
    """Mean Euclidean distance from ``encode(x)`` to its ``k`` nearest training codes, ``(N,)``."""
    ref = _stats(model)["reference_codes"].to(x.device)
    dist = torch.cdist(model.encode(x), ref)
    return dist.topk(min(k, ref.shape[0]), dim=1, largest=False).values.mean(1)


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


# -- registry ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreSpec:
    """A registered score: its function, what the model needs for it (a VAE, a classifier, a
    reconstruction; every score but ``msp`` needs ``encode``), and whether it needs fitted statistics."""

    fn: Callable[..., Tensor]
    vae_only: bool = False
    needs_fit: bool = False
    unit: str = ""
    needs_classifier: bool = False
    needs_reconstruct: bool = False
    needs_transform_head: bool = False


SCORES: dict[str, ScoreSpec] = {
    "mse": ScoreSpec(mse_score, unit="per pixel", needs_reconstruct=True),
    "local_error": ScoreSpec(local_error_score, unit="smoothed squared error", needs_reconstruct=True),
    "neg_elbo": ScoreSpec(neg_elbo_score, vae_only=True, unit="nats"),
    "neg_elbo_k": ScoreSpec(lambda m, x, k=16: neg_elbo_score(m, x, k), vae_only=True, unit="nats"),
    "iwae": ScoreSpec(iwae_score, vae_only=True, unit="nats"),
    "recon_prob": ScoreSpec(recon_prob_score, vae_only=True, unit="nats"),
    "mahalanobis": ScoreSpec(mahalanobis_score, needs_fit=True, unit="latent units"),
    "knn": ScoreSpec(knn_score, needs_fit=True, unit="latent units"),
    "msp": ScoreSpec(msp_score, needs_classifier=True, unit="probability"),
    "transform": ScoreSpec(transform_score, needs_transform_head=True, unit="nats"),
}


def is_vae(model) -> bool:
    return all(hasattr(model, a) for a in ("posterior", "decode_logits", "log_likelihood", "reparameterize"))


def applicable(model, spec: ScoreSpec) -> bool:
    """Whether ``model`` (an instance or a class) has what score ``spec`` needs."""
    return ((is_vae(model) or not spec.vae_only) and (hasattr(model, "classify") or not spec.needs_classifier)
            and (hasattr(model, "reconstruct") or not spec.needs_reconstruct)
            and (hasattr(model, "encode") or spec.needs_classifier)
            and (getattr(model, "transform_weight", 0) > 0 or not spec.needs_transform_head))


def applicable_scores(model) -> list[str]:
    """Names of the scores that apply to ``model`` (VAE-only scores need a VAE, ``msp`` a classifier)."""
    return [name for name, spec in SCORES.items() if applicable(model, spec)]


@torch.no_grad()
def score(model, x: Tensor, method: str = "mse", **kwargs) -> Tensor:
    """Score images ``(N, C, H, W)`` float32 in [0, 1] with ``method``: ``(N,)``, higher = more anomalous.

    ``kwargs`` go to the score function (e.g. ``k`` samples, ``sigma``, ``top_k``).

    Raises:
        ValueError: unknown method, or a VAE-only score on a model that is not a VAE.
        RuntimeError: a latent-density score before :func:`fit_model_stats`.
    """
    if method not in SCORES:
        raise ValueError(f"unknown anomaly score {method!r}; expected one of {list(SCORES)}")
    spec = SCORES[method]
    if not applicable(model, spec):
        need = ("a VAE" if spec.vae_only else "a classifier" if spec.needs_classifier
                else "a model trained with transform_weight > 0" if spec.needs_transform_head else "an autoencoder")
        raise ValueError(f"score {method!r} needs {need}; {type(model).__name__} supports {applicable_scores(model)}")
    return spec.fn(model, x, **kwargs)


@torch.no_grad()
def encode_all(model, batches: Iterable[dict[str, Tensor]]) -> Tensor:
    """Codes ``(M, D)`` of every image in ``batches`` (dicts with ``"image"``), on the CPU."""
    device = next(model.parameters()).device
    return torch.cat([model.encode(b["image"].to(device)).cpu() for b in batches])


def fit_model_stats_on(model, dataset, batch_size: int = 500, **kwargs) -> dict[str, Tensor]:
    """:func:`fit_model_stats` on every image of an in-memory dataset, in order (the one way both the
    test step and ``aelab evaluate`` fit the latent statistics, so they agree)."""
    device = next(model.parameters()).device
    batches = ({"image": dataset[list(range(i, min(i + batch_size, len(dataset))))]["image"].to(device)}
               for i in range(0, len(dataset), batch_size))
    return fit_model_stats(model, batches, **kwargs)


def fit_model_stats(model, batches: Iterable[dict[str, Tensor]], **kwargs) -> dict[str, Tensor]:
    """Encodes ``batches`` (normally the training loader), fits :func:`fit_latent_stats` and stores the
    result in ``model.score_stats`` (saved with the model's checkpoints). Returns the statistics."""
    was_training = model.training
    model.eval()
    stats = fit_latent_stats(encode_all(model, batches), **kwargs)
    model.train(was_training)
    model.score_stats = stats
    return stats
