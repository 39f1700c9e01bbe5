"""The anomaly-detection evaluation, computed: every score on the test set, its AUROC / AUPRC (overall
and per anomaly type), label-based thresholds (oracles) next to the scorer's label-free rule, a
threshold sweep, and what the figures need (as arrays). Writing is :mod:`aelab.evaluation.write`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from aelab.data.protocols.anomaly import ANOMALY_TYPES
from aelab.evaluation.metrics import anomaly_metrics
from aelab.evaluation.thresholds import confusion, f1_threshold, sweep_table, youden_threshold
from aelab.models.base import CLASSIFY, IMAGES
from aelab.runs import infer, model_device
from aelab.scoring.calibrate import fit_stats
from aelab.scoring.registry import SCORES
from aelab.scoring.thresholds import percentile_threshold, rule_percentile


@dataclass
class ImageGrid:
    """Inputs ``(n, C, H, W)`` and reconstructions in [0, 1] of chosen test items, with titles."""

    images: np.ndarray
    reconstructions: np.ndarray
    titles: list[str]
    suptitle: str


@dataclass
class EvaluationResult:
    """What ``aelab evaluate`` computed.

    Attributes:
        metrics: the content of ``metrics.json`` (per-score AUROC, AUPRC, thresholds, sweep, per type).
        scores: ``{score name: (N,) float64}`` test scores.
        labels: ``(N,)`` 0/1 anomaly labels; ``types``: ``(N,)`` anomaly types or ``None``.
        predicted: ``(N,)`` predicted classes (models with a classifier) or ``None``.
        class_names: the in-distribution class names.
        grids: reconstruction grids (images only) by figure name.
        anomaly_examples: anomalous test images ``(n, C, H, W)`` with their predicted class names and scores.
        settings: the settings each score was computed with.
        names: test item names (file paths) or ``None``.
    """

    metrics: dict[str, Any]
    scores: dict[str, np.ndarray]
    labels: np.ndarray
    types: np.ndarray | None
    predicted: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    grids: dict[str, ImageGrid] = field(default_factory=dict)
    anomaly_examples: tuple[np.ndarray, list[str], np.ndarray] | None = None
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: list[str] | None = None


def score_dataset(scorer, model, dataset, name: str, settings: dict[str, Any], batch_size: int,
                  seed: int) -> np.ndarray:
    """Scores ``(N,)`` float64 of every item of an in-memory data set by score ``name`` (seeded:
    sampling scores repeat)."""
    torch.manual_seed(seed)
    return infer(lambda x: scorer.score_as(model, x, name, settings).double(), dataset, batch_size,
                 model_device(model)).numpy()


def score_metrics(test_scores: np.ndarray, labels: np.ndarray, deployable: tuple[str, float],
                  anomaly_types: np.ndarray | None = None) -> dict[str, Any]:
    """AUROC / AUPRC, the oracle thresholds (Youden, best F1) and the deployable one (``(name, value)``)
    with their confusion matrices, the sweep table, and per-type AUROC / AUPRC (each anomaly type
    against all normal items) for one score."""
    s, y = torch.from_numpy(test_scores), torch.from_numpy(labels)
    result: dict[str, Any] = anomaly_metrics(s, y)
    thresholds = {"youden": youden_threshold(s, y), "f1": f1_threshold(s, y), deployable[0]: deployable[1]}
    result["thresholds"] = {k: confusion(s, y, t) for k, t in thresholds.items()}
    result["sweep"] = sweep_table(s, y)
    if anomaly_types is not None and len(np.unique(anomaly_types[labels == 1])) > 1:
        result["per_type"] = {}
        for code, kind in ANOMALY_TYPES.items():
            keep = (labels == 0) | (anomaly_types == code)
            if (anomaly_types == code).any():
                result["per_type"][kind] = anomaly_metrics(s[keep], y[keep])
    return result


@torch.no_grad()
def reconstruction_grid(model, dataset, idx: np.ndarray, titles: list[str], suptitle: str) -> ImageGrid:
    """Inputs and reconstructions of ``dataset[idx]``."""
    batch = dataset[idx.tolist()]
    recon = model.reconstruct(batch["input"].to(model_device(model))).cpu().numpy()
    return ImageGrid(batch["input"].numpy(), recon, titles, suptitle)


def compute_evaluation(model, scorer, datamodule, names: list[str], settings: dict[str, dict[str, Any]],
                       batch_size: int = 256, seed: int = 0, num_images: int = 8,
                       ckpt_path: str | None = None) -> EvaluationResult:
    """Scores the test set of ``datamodule`` with every score in ``names`` and computes the metrics.

    The scorer's statistics of the training inputs are fitted on the training set first (with ``seed``);
    each score's deployable threshold follows the scorer's rule on the normal validation items (or, for
    ``contamination``, on the training items).

    Raises:
        ValueError: a test set without both normal and anomalous items.
    """
    train, val, test = datamodule.train_set, datamodule.normal_val_set, datamodule.test_set
    labels = test.extras["anomaly"].numpy()
    types = test.extras["anomaly_type"].numpy() if "anomaly_type" in test.extras else None
    timings: dict[str, float] = {}
    start = time.process_time()
    if any(SCORES[n].needs_stats for n in names):
        fit_stats(scorer, model, train, batch_size=batch_size, seed=seed)
        timings["fit_stats"] = time.process_time() - start

    q = rule_percentile(scorer.threshold, scorer.threshold_value)
    rule_name = f"{scorer.threshold}_{scorer.threshold_value:g}"
    threshold_pool = train if scorer.threshold == "contamination" else val
    results: dict[str, Any] = {}
    raw: dict[str, np.ndarray] = {}
    for name in names:
        t0 = time.process_time()
        raw[name] = score_dataset(scorer, model, test, name, settings[name], batch_size, seed)
        pool_scores = score_dataset(scorer, model, threshold_pool, name, settings[name], batch_size, seed)
        deployable = (rule_name, percentile_threshold(torch.from_numpy(pool_scores), q))
        results[name] = score_metrics(raw[name], labels, deployable, types)
        results[name]["unit"] = SCORES[name].unit
        results[name]["settings"] = settings[name]
        timings[name] = time.process_time() - t0

    primary = scorer.score if scorer.score in results else names[0]
    best = max(results, key=lambda n: (results[n]["auroc"], results[n]["auprc"]))
    metrics: dict[str, Any] = {
        "model": type(model).__name__, "checkpoint": ckpt_path, "datamodule": type(datamodule).__name__,
        "anomaly_kind": getattr(datamodule, "anomaly_kind", None), "n_test": int(len(labels)),
        "n_anomalies": int(labels.sum()), "primary_score": primary, "best_score": best,
        "auroc": results[primary]["auroc"], "auprc": results[primary]["auprc"],
        "scores": results, "cpu_seconds": timings,
        "threshold_notes": {
            "youden": "chosen on the test labels themselves (an oracle: the best this score can do)",
            "f1": "chosen on the test labels themselves (an oracle: the best this score can do)",
            rule_name: ("chosen on the training items, PyOD's contamination convention (deployable)"
                        if scorer.threshold == "contamination"
                        else "chosen on normal validation items only (deployable)"),
        },
    }
    result = EvaluationResult(metrics, raw, labels, types, settings=settings, names=test.names,
                              class_names=list(datamodule.class_names))
    if IMAGES in model.capabilities:
        result.grids = example_grids(model, test, raw, labels, best, num_images, seed)
    if CLASSIFY in model.capabilities and result.class_names:
        add_classes(result, model, test, batch_size, num_images, primary)
    return result


def example_grids(model, test, raw: dict[str, np.ndarray], labels: np.ndarray, best: str, num_images: int,
                  seed: int) -> dict[str, ImageGrid]:
    """Most / least anomalous test images by the best score, and random normal / anomalous ones."""
    s = raw[best]
    grids = {}
    order = np.argsort(-s, kind="stable")
    for title, idx in (("most_anomalous", order[:num_images]), ("least_anomalous", order[::-1][:num_images])):
        tags = [f"{'anom' if labels[i] else 'norm'} {s[i]:.3g}" for i in idx]
        grids[title] = reconstruction_grid(model, test, idx, tags, f"{title.replace('_', ' ')} test images by {best}")
    rng = np.random.default_rng(seed)
    for value, title in ((0, "random_normal"), (1, "random_anomalous")):
        pool = np.flatnonzero(labels == value)
        idx = rng.choice(pool, size=min(num_images, len(pool)), replace=False)
        grids[title] = reconstruction_grid(model, test, idx, [f"{s[i]:.3g}" for i in idx],
                                           f"reconstructions of random {title.split('_')[1]} test images ({best})")
    return grids


def add_classes(result: EvaluationResult, model, test, batch_size: int, num_images: int, primary: str) -> None:
    """Predicted class of every test item, the anomalies per predicted class, the accuracy on the normal
    test items, and anomalous examples with their predicted class (models with a classifier)."""
    from aelab.evaluation.classes import anomaly_class_counts, predict_classes

    predicted = predict_classes(model, test, batch_size)
    labels, names = result.labels, result.class_names
    result.predicted = predicted
    result.metrics["anomaly_predicted_classes"] = anomaly_class_counts(predicted, labels, names)
    normal = (labels == 0) & (test.labels.numpy() >= 0)
    result.metrics["normal_test_accuracy"] = float((predicted[normal] == test.labels.numpy()[normal]).mean())
    anomalous = np.flatnonzero(labels == 1)[: 4 * num_images]
    if IMAGES in model.capabilities:
        result.anomaly_examples = (test[anomalous.tolist()]["input"].numpy(),
                                   [names[p] for p in predicted[anomalous]], result.scores[primary][anomalous])
