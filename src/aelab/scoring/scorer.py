"""The :class:`Scorer`: one anomaly score with its settings, the fitted statistics of the training inputs
and the decision threshold, as ``nn.Module`` state (the shape of anomalib's post-processor).

Attached to a model as ``model.scorer`` (:func:`attach_scorer`), it is part of the model's
``state_dict``: every checkpoint carries it and loads with ``torch.load(weights_only=True)`` (buffers
for the statistics and the threshold; the score name and settings as the module's extra state, a dict
of strings and numbers). The test step, ``aelab evaluate``, ``aelab predict``, :class:`aelab.Detector`
and the exported graph all score through it, so they agree.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from aelab.scoring.registry import SCORES, ScoreSpec, check_score
from aelab.scoring.thresholds import RULES, rule_percentile

STAT_BUFFERS = ("code_mean", "code_precision", "reference_codes", "residual_mean", "residual_precision")
DEFAULT_RULE = ("percentile", 99.0)


class Scorer(nn.Module):
    """Anomaly score + statistics of the training inputs + threshold of one model.

    Args:
        score: a score of :mod:`aelab.scoring.registry` (``None``: the one a loaded checkpoint holds,
            else the model's ``default_score``: ``mse`` for the CAE, ``neg_elbo`` for the VAE).
        settings: the score's settings (e.g. ``{"k": 5}`` for ``knn``; ``None``: the registry's defaults,
            or the checkpoint's).
        threshold: the label-free threshold rule, ``percentile`` (of normal validation scores),
            ``fpr`` (a target false-positive rate on them) or ``contamination`` (PyOD: a percentile of the
            training scores); ``None``: the checkpoint's, else ``percentile``.
        threshold_value: the rule's parameter (percentile ``q`` in [0, 100], default 99; rate or
            contamination in [0, 1)).
        max_reference: training codes kept as the ``knn`` reference set (a seeded subset).
        shrinkage: covariance shrinkage of the ``mahalanobis`` statistics.

    An explicit ``score``/``settings``/``threshold`` that differs from what a checkpoint holds wins:
    the checkpoint's statistics and threshold are then dropped (``fitted`` false) and the scorer must be
    calibrated again (:func:`aelab.scoring.calibrate.calibrate`).

    Raises:
        ValueError: an unknown score, rule or setting, or a threshold value outside its range.
    """

    def __init__(self, score: str | None = None, settings: dict[str, Any] | None = None,
                 threshold: str | None = None, threshold_value: float | None = None,
                 max_reference: int = 10_000, shrinkage: float = 1e-3) -> None:
        super().__init__()
        if score is not None and score not in SCORES:
            raise ValueError(f"unknown anomaly score {score!r}; expected one of {list(SCORES)}")
        if threshold is not None and threshold not in RULES:
            raise ValueError(f"threshold rule must be one of {RULES}, got {threshold!r}")
        if threshold_value is not None:
            rule_percentile(threshold or DEFAULT_RULE[0], threshold_value)
        self.explicit = {"score": score is not None, "settings": bool(settings),
                         "threshold": threshold is not None or threshold_value is not None}
        self.score = score
        self.settings = dict(settings or {})
        self.threshold = threshold or DEFAULT_RULE[0]
        self.threshold_value = float(threshold_value if threshold_value is not None
                                     else (DEFAULT_RULE[1] if self.threshold == "percentile" else 0.01))
        self.max_reference = max_reference
        self.shrinkage = shrinkage
        self.stats_fitted = False
        for name in STAT_BUFFERS:
            self.register_buffer(name, torch.zeros(0))
        self.register_buffer("threshold_", torch.tensor(math.nan, dtype=torch.float64))
        self.notes: list[str] = []

    # -- configuration ----------------------------------------------------------------------------
    def bind(self, model) -> Scorer:
        """Resolve the default score for ``model`` and check that the score applies to it.

        Raises:
            ValueError: see :func:`aelab.scoring.registry.check_score`.
        """
        if self.score is None:
            self.score = getattr(model, "default_score", "mse")
        check_score(model, self.score, self.settings)
        return self

    @property
    def spec(self) -> ScoreSpec:
        if self.score is None:
            raise RuntimeError("the scorer is not bound to a model yet (Scorer.bind)")
        return SCORES[self.score]

    @property
    def fitted(self) -> bool:
        """Statistics (where the score needs them) and threshold are set."""
        return (self.stats_fitted or not self.spec.needs_stats) and bool(torch.isfinite(self.threshold_))

    def settings_for(self, name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Settings of score ``name``: registry defaults, this scorer's own (for its score), ``overrides``."""
        own = self.settings if name == self.score else {}
        return {**SCORES[name].defaults, **own, **(overrides or {})}

    def describe(self) -> str:
        """One line: score, settings, threshold rule and value."""
        settings = ", ".join(f"{k}={v}" for k, v in self.settings_for(self.score).items()) if self.score else ""
        value = float(self.threshold_)
        return (f"{self.score}({settings}) >= {value:.6g} [{self.threshold} {self.threshold_value:g}]"
                if math.isfinite(value) else f"{self.score}({settings}), threshold not fitted")

    # -- fitted state -----------------------------------------------------------------------------
    def set_stats(self, stats: dict[str, torch.Tensor]) -> None:
        """Store statistics of the training inputs (:mod:`aelab.scoring.training_stats`: the codes', and for
        table rows the residuals') as buffers; the ones not given are emptied.

        Raises:
            ValueError: a name that is not one of ``STAT_BUFFERS``.
        """
        unknown = set(stats) - set(STAT_BUFFERS)
        if unknown:
            raise ValueError(f"unknown scorer statistics {sorted(unknown)}; expected some of {STAT_BUFFERS}")
        device = self.threshold_.device
        for name in STAT_BUFFERS:
            value = stats[name].detach().float() if name in stats else torch.zeros(0)
            setattr(self, name, value.to(device))
        self.stats_fitted = True

    def set_threshold(self, value: float) -> None:
        """Store the decision threshold (in the score's units).

        Raises:
            ValueError: for a NaN threshold.
        """
        if math.isnan(value):
            raise ValueError("the anomaly threshold is NaN: the scores it was chosen from are NaN")
        self.threshold_.fill_(float(value))

    def reset(self) -> None:
        """Forget statistics and threshold (weights changed, or another score was chosen)."""
        for name in STAT_BUFFERS:
            setattr(self, name, torch.zeros(0, device=self.threshold_.device))
        self.stats_fitted = False
        self.threshold_.fill_(math.nan)

    # -- scoring ----------------------------------------------------------------------------------
    def forward(self, model, x: torch.Tensor) -> torch.Tensor:
        """Scores ``(N,)`` of inputs ``x`` (``(N, C, H, W)`` in [0, 1] or ``(N, D)``) by this scorer's score."""
        return self.score_as(model, x, self.score)

    def score_as(self, model, x: torch.Tensor, name: str | None, settings: dict[str, Any] | None = None
                 ) -> torch.Tensor:
        """Scores ``(N,)`` of ``x`` by any applicable score ``name``, with this scorer's statistics.

        Raises:
            RuntimeError: the score needs statistics of the training inputs that were not fitted.
        """
        spec = SCORES[name]
        kwargs = self.settings_for(name, settings)
        if spec.needs_stats:
            if not self.stats_fitted or any(getattr(self, k).numel() == 0 for k in spec.needs_stats):
                raise RuntimeError(f"score {name!r} needs statistics of the training inputs "
                                   f"({', '.join(spec.needs_stats)}); calibrate the scorer first "
                                   "(aelab.scoring.calibrate, done by `aelab fit`/`evaluate`)")
            kwargs.update({k: getattr(self, k) for k in spec.needs_stats})
        return spec.fn(model, x, **kwargs)

    def flag(self, scores: torch.Tensor) -> torch.Tensor:
        """``scores >= threshold`` as int64 0/1 ``(N,)``.

        Raises:
            RuntimeError: the threshold was not fitted.
        """
        if not bool(torch.isfinite(self.threshold_)):
            raise RuntimeError("the scorer has no threshold yet; calibrate it on normal validation data first")
        return (scores >= self.threshold_.to(scores.dtype)).long()

    # -- state_dict: buffers of any fitted shape, and the configuration as extra state ---------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"score": self.score, "settings": dict(self.settings), "threshold": self.threshold,
                "threshold_value": self.threshold_value, "stats_fitted": self.stats_fitted}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._loaded_config = dict(state)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        for name in (*STAT_BUFFERS, "threshold_"):
            key = prefix + name
            if key in state_dict:  # fitted statistics have their own shapes: take them as they are
                setattr(self, name, state_dict[key].detach().clone().to(self.threshold_.device))
        self._loaded_config = None
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if self._loaded_config is not None:
            self._adopt(self._loaded_config)

    def _adopt(self, saved: dict[str, Any]) -> None:
        """Take the saved configuration where this scorer's own was not given explicitly; drop the saved
        statistics and threshold when an explicit setting differs from what they were fitted for."""
        saved_score = saved.get("score")
        if not self.explicit["score"] and saved_score:
            self.score = saved_score
        same_score = saved_score == self.score
        if not self.explicit["settings"] and same_score:
            self.settings = dict(saved.get("settings") or {})
        if not self.explicit["threshold"]:
            self.threshold = saved.get("threshold") or self.threshold
            self.threshold_value = float(saved.get("threshold_value", self.threshold_value))
        differs = []
        if not same_score:
            differs.append(f"score {saved_score} -> {self.score}")
        elif self.score in SCORES and (self.settings_for(self.score)
                                       != {**SCORES[self.score].defaults, **(saved.get("settings") or {})}):
            differs.append(f"settings {saved.get('settings')} -> {self.settings}")
        if (saved.get("threshold"), saved.get("threshold_value")) != (self.threshold, self.threshold_value):
            differs.append(f"threshold {saved.get('threshold')} {saved.get('threshold_value')} -> "
                           f"{self.threshold} {self.threshold_value}")
        self.stats_fitted = bool(saved.get("stats_fitted"))
        if differs:
            self.notes.append("the checkpoint's scorer was fitted for another setting ("
                              + "; ".join(differs) + "): recalibrating")
            self.reset()


def attach_scorer(model, scorer: Scorer | None = None) -> Scorer:
    """Bind ``scorer`` (default: a new :class:`Scorer` with the model's default score) to ``model`` and
    set it as ``model.scorer``, taking over a scorer state that a checkpoint loaded before the scorer was
    attached (``model.detached_scorer_state``). Returns the scorer.

    Raises:
        ValueError: the score does not apply to the model (see :func:`~aelab.scoring.registry.check_score`).
    """
    scorer = scorer if scorer is not None else Scorer()
    pending = getattr(model, "detached_scorer_state", None)
    if pending:
        scorer.load_state_dict(pending, strict=False)
        model.detached_scorer_state = {}
    scorer.bind(model)
    model.scorer = scorer.to(next(model.parameters()).device)
    return scorer
