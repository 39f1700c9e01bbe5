"""Fitting a :class:`~aelab.scoring.scorer.Scorer`: statistics of the training inputs, then the
threshold on normal validation inputs (or, for the ``contamination`` rule, on the training inputs).

Runs in a forked random-number state seeded with ``seed``: sampling scores repeat, and training or
testing that follows draws the same random numbers as without calibration.
"""

from __future__ import annotations

import torch

from aelab.runs import infer, model_device
from aelab.scoring.functions import standardized_residual
from aelab.scoring.registry import SCORES
from aelab.scoring.scorer import Scorer
from aelab.scoring.thresholds import percentile_threshold, rule_percentile
from aelab.scoring.training_stats import fit_latent_stats, fit_residual_stats


@torch.no_grad()
def fit_stats(scorer: Scorer, model, train_set, batch_size: int = 500, seed: int = 0) -> None:
    """Encode every item of ``train_set`` (in order) and store :func:`fit_latent_stats` in the scorer; for a
    model that ``recon_mahalanobis`` applies to (table rows), also :func:`fit_residual_stats` of the items'
    residuals (:func:`~aelab.scoring.functions.standardized_residual`)."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        codes = infer(model.encode, train_set, batch_size, device)
        stats = fit_latent_stats(codes, max_reference=scorer.max_reference, shrinkage=scorer.shrinkage, seed=seed)
        if SCORES["recon_mahalanobis"].requires <= model.capabilities:
            residuals = infer(lambda x: standardized_residual(model, x), train_set, batch_size, device)
            stats.update(fit_residual_stats(residuals, shrinkage=scorer.shrinkage))
        scorer.set_stats(stats)
    finally:
        model.train(was_training)


@torch.no_grad()
def calibrate(scorer: Scorer, model, train_set, normal_val_set, batch_size: int = 500, seed: int = 0,
              stats: bool = True) -> float:
    """Fit the scorer of ``model``: statistics on ``train_set`` (if its score needs them and ``stats``),
    then the threshold by its rule. Returns the threshold (in the score's units).

    Args:
        scorer: a scorer bound to ``model``.
        train_set: in-memory data set of the training inputs.
        normal_val_set: in-memory data set of normal validation inputs (the ``percentile`` / ``fpr`` rules).
        batch_size: inputs per forward pass.
        seed: seeds the reference subset and the sampling scores.
        stats: also (re)fit the statistics of the training inputs (False: keep the fitted ones).

    Raises:
        ValueError: an empty data set for the rule, or NaN scores.
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if stats and scorer.spec.needs_stats:
                fit_stats(scorer, model, train_set, batch_size, seed)
            torch.manual_seed(seed)
            pool = train_set if scorer.threshold == "contamination" else normal_val_set
            if pool is None or len(pool) == 0:
                raise ValueError(f"the {scorer.threshold!r} threshold needs "
                                 f"{'training' if scorer.threshold == 'contamination' else 'normal validation'} "
                                 "inputs, and there are none")
            scores = infer(lambda x: scorer(model, x).double(), pool, batch_size, device)
            value = percentile_threshold(scores, rule_percentile(scorer.threshold, scorer.threshold_value))
            scorer.set_threshold(value)
    finally:
        model.train(was_training)
    return value
