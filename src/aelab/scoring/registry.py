"""Which anomaly score exists, what it needs from a model, and its default settings.

Each :class:`ScoreSpec` names the model capabilities it needs (:mod:`aelab.models.base`: ``encode``,
``reconstruct``, ``likelihood``, ``classify``, ``transform``, ``images``, ``vectors``); a model offers a
score when it has all of them. Nothing here imports a model class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from aelab.models.base import CLASSIFY, ENCODE, IMAGES, LIKELIHOOD, RECONSTRUCT, TRANSFORM, VECTORS
from aelab.scoring import functions as f


@dataclass(frozen=True)
class ScoreSpec:
    """A registered score.

    Attributes:
        fn: ``fn(model, x, **settings[, statistics])`` -> ``(N,)``.
        requires: model capabilities it needs.
        defaults: its settings and their default values (e.g. ``{"k": 5}``).
        needs_stats: it takes statistics fitted on the training inputs (``mahalanobis``: the codes' mean
            and precision; ``knn``: reference codes; ``recon_mahalanobis``: the residuals' mean and
            precision).
        sampling: it draws random numbers (seeded by the caller for repeatable numbers).
        exportable: it can be traced into an ONNX / TorchScript graph (no Python-side work, no sampling).
        unit: what its numbers measure.
    """

    fn: Callable[..., torch.Tensor]
    requires: frozenset[str]
    defaults: dict[str, Any] = field(default_factory=dict)
    needs_stats: tuple[str, ...] = ()
    sampling: bool = False
    exportable: bool = True
    unit: str = ""


def _neg_elbo_k(model, x, k: int = 16):
    return f.neg_elbo_score(model, x, k)


SCORES: dict[str, ScoreSpec] = {
    "mse": ScoreSpec(f.mse_score, frozenset({RECONSTRUCT}), unit="squared error per pixel (feature)"),
    "local_error": ScoreSpec(f.local_error_score, frozenset({RECONSTRUCT, IMAGES}),
                             {"sigma": 1.0, "top_k": 0.0, "residual": "squared"}, unit="smoothed squared error"),
    "neg_elbo": ScoreSpec(f.neg_elbo_score, frozenset({LIKELIHOOD}), {"k": 1}, sampling=True,
                          exportable=False, unit="nats"),
    "neg_elbo_k": ScoreSpec(_neg_elbo_k, frozenset({LIKELIHOOD}), {"k": 16}, sampling=True, exportable=False,
                            unit="nats"),
    "iwae": ScoreSpec(f.iwae_score, frozenset({LIKELIHOOD}), {"k": 64}, sampling=True, exportable=False,
                      unit="nats"),
    "recon_prob": ScoreSpec(f.recon_prob_score, frozenset({LIKELIHOOD}), {"k": 100}, sampling=True,
                            exportable=False, unit="nats"),
    "recon_nll": ScoreSpec(f.recon_nll_score, frozenset({LIKELIHOOD}), {"features": None}, unit="nats"),
    "complexity": ScoreSpec(f.complexity_score, frozenset({LIKELIHOOD, IMAGES}), {"k": 16}, sampling=True,
                            exportable=False, unit="bits"),
    "mahalanobis": ScoreSpec(f.mahalanobis_score, frozenset({ENCODE}), needs_stats=("code_mean", "code_precision"),
                             unit="latent units"),
    "knn": ScoreSpec(f.knn_score, frozenset({ENCODE}), {"k": 5}, needs_stats=("reference_codes",),
                     unit="latent units"),
    "recon_mahalanobis": ScoreSpec(f.recon_mahalanobis_score, frozenset({RECONSTRUCT, VECTORS}),
                                   needs_stats=("residual_mean", "residual_precision"),
                                   unit="Mahalanobis distance (dimensionless)"),
    "msp": ScoreSpec(f.msp_score, frozenset({CLASSIFY}), unit="probability"),
    "transform": ScoreSpec(f.transform_score, frozenset({TRANSFORM}), unit="nats"),
}


def applicable_scores(model) -> list[str]:
    """Names of the scores whose required capabilities ``model`` has, in registry order."""
    caps = model.capabilities
    return [name for name, spec in SCORES.items() if spec.requires <= caps]


def check_score(model, name: str, settings: dict[str, Any] | None = None) -> ScoreSpec:
    """The spec of score ``name`` after checking that it applies to ``model`` and knows ``settings``.

    Raises:
        ValueError: unknown score, a score the model cannot give (naming the ones it can), or an unknown
            setting (naming the known ones).
    """
    if name not in SCORES:
        raise ValueError(f"unknown anomaly score {name!r}; expected one of {list(SCORES)}")
    spec = SCORES[name]
    missing = spec.requires - model.capabilities
    if missing:
        raise ValueError(f"score {name!r} needs a model with {sorted(missing)}; {type(model).__name__} "
                         f"supports {applicable_scores(model)}")
    unknown = set(settings or {}) - set(spec.defaults)
    if unknown:
        raise ValueError(f"score {name!r} has no setting(s) {sorted(unknown)}; its settings are "
                         f"{spec.defaults or 'none'}")
    return spec
