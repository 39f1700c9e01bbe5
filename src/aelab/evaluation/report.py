"""``aelab evaluate``: every applicable anomaly score of a trained model on the test set, with
thresholds, figures, ``metrics.json``, ``report.md`` and TensorBoard output."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from aelab.checkpoint import load_weights, read_checkpoint
from aelab.evaluation.classes import anomaly_class_counts, anomaly_class_figure, predict_classes, write_predictions
from aelab.evaluation.metrics import anomaly_metrics, pr_curve, roc_curve
from aelab.evaluation.plots import pr_figure, reconstruction_grid_figure, roc_figure, score_histogram_figure
from aelab.evaluation.thresholds import (
    confusion,
    f1_threshold,
    percentile_threshold,
    sweep_table,
    youden_threshold,
)
from aelab.scores import RESIDUALS, SCORES, applicable_scores, fit_model_stats_on, score

ANOMALY_TYPES = {1: "occlusion", 2: "novel_class"}


@torch.no_grad()
def score_set(model: LightningModule, dataset, method: str, batch_size: int, seed: int,
              **kwargs) -> np.ndarray:
    """Scores ``(N,)`` float64 of every image of an in-memory dataset (seeded: sampling scores repeat)."""
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    out = []
    for start in range(0, len(dataset), batch_size):
        batch = dataset[list(range(start, min(start + batch_size, len(dataset))))]
        out.append(score(model, batch["image"].to(device), method, **kwargs).double().cpu())
    return torch.cat(out).numpy()


def score_kwargs(method: str, k_samples: int, iwae_samples: int, local_sigma: float, local_top_k: float,
                 knn_k: int, local_residual: str = "squared") -> dict[str, Any]:
    return {"neg_elbo_k": {"k": k_samples}, "recon_prob": {"k": k_samples}, "iwae": {"k": iwae_samples},
            "local_error": {"sigma": local_sigma, "top_k": local_top_k, "residual": local_residual},
            "knn": {"k": knn_k}}.get(method, {})


def evaluate_scores(test_scores: np.ndarray, labels: np.ndarray, val_scores: np.ndarray,
                    percentile: float, anomaly_types: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics, the three thresholds with their confusion matrices, the sweep table, and per-type
    AUROC/AUPRC (each anomaly type against all normal images) for one score."""
    s, y = torch.from_numpy(test_scores), torch.from_numpy(labels)
    result: dict[str, Any] = anomaly_metrics(s, y)
    thresholds = {"youden": youden_threshold(s, y), "f1": f1_threshold(s, y),
                  f"percentile_{percentile:g}": percentile_threshold(torch.from_numpy(val_scores), percentile)}
    result["thresholds"] = {k: confusion(s, y, t) for k, t in thresholds.items()}
    result["sweep"] = sweep_table(s, y)
    if anomaly_types is not None and len(np.unique(anomaly_types[labels == 1])) > 1:
        result["per_type"] = {}
        for code, kind in ANOMALY_TYPES.items():
            keep = (labels == 0) | (anomaly_types == code)
            if (anomaly_types == code).any():
                result["per_type"][kind] = anomaly_metrics(s[keep], y[keep])
    return result


def _default_output_dir(trainer: Trainer, ckpt_path: str | None) -> Path:
    if ckpt_path:
        ckpt = Path(ckpt_path)
        run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
        return run / "evaluate"
    return Path(trainer.log_dir or ".") / "evaluate"


def _grid(model, dataset, idx: np.ndarray, titles: list[str], suptitle: str):
    device = next(model.parameters()).device
    batch = dataset[idx.tolist()]
    with torch.no_grad():
        recon = model.reconstruct(batch["image"].to(device)).cpu().numpy()
    return reconstruction_grid_figure(batch["image"].numpy(), recon, titles, suptitle)


def evaluate_report(
    trainer: Trainer,
    model: LightningModule,
    datamodule: LightningDataModule,
    ckpt_path: str | None = None,
    output_dir: str | None = None,
    scores: list[str] | None = None,
    threshold_percentile: float = 95.0,
    k_samples: int = 16,
    iwae_samples: int = 64,
    local_sigma: float = 1.0,
    local_top_k: float = 0.0,
    local_residual: str = "squared",
    knn_k: int = 5,
    num_images: int = 8,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """Runs the evaluation and writes ``metrics.json``, ``report.md``, ``predictions.csv``, figures and
    ``scored.ckpt``. For a model with ``classify`` (semi-supervised VAE), also the predicted class of
    every anomaly (counts per class, a figure) and the accuracy on the normal test images.

    Args: see :meth:`aelab.trainer.AelabTrainer.evaluate`.

    Returns:
        The content of ``metrics.json``.

    Raises:
        ValueError: unknown score names or local_residual, or a test set without both normal and anomalous images.
        aelab.checkpoint.CheckpointError: missing or unsafe checkpoint.
    """
    if local_residual not in RESIDUALS:
        raise ValueError(f"--local_residual must be one of {RESIDUALS}, got {local_residual!r}")
    if datamodule is None:
        raise ValueError("aelab evaluate needs a datamodule with anomaly labels (e.g. Fashion5DataModule)")
    if not hasattr(model, "reconstruct"):
        raise ValueError(f"aelab evaluate needs an autoencoder (CAE, VAE, SemiSupervisedVAE); got "
                         f"{type(model).__name__}")
    names = scores or applicable_scores(model)
    unknown = [n for n in names if n not in applicable_scores(model)]
    if unknown:
        raise ValueError(f"scores {unknown} do not apply to {type(model).__name__}; "
                         f"expected some of {applicable_scores(model)}")
    if ckpt_path:
        load_weights(model, ckpt_path)
    model.eval().to(trainer.strategy.root_device)
    datamodule.setup("fit")
    test, val = datamodule.test_set, datamodule.val_set
    if "anomaly" not in test.extras:
        raise ValueError(f"{type(datamodule).__name__} has no anomaly labels: use Fashion5DataModule or "
                         "OneClassDataModule for `aelab evaluate`")
    out_dir = Path(output_dir) if output_dir else _default_output_dir(trainer, ckpt_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = test.extras["anomaly"].numpy()
    types = test.extras.get("anomaly_type")
    types = types.numpy() if types is not None else None

    timings: dict[str, float] = {}
    start = time.process_time()
    if any(SCORES[n].needs_fit for n in names):
        fit_model_stats_on(model, datamodule.train_set, batch_size=batch_size, seed=seed)
        timings["fit_latent_stats"] = time.process_time() - start

    results: dict[str, Any] = {}
    raw: dict[str, np.ndarray] = {}
    for name in names:
        t0 = time.process_time()
        kw = score_kwargs(name, k_samples, iwae_samples, local_sigma, local_top_k, knn_k, local_residual)
        raw[name] = score_set(model, test, name, batch_size, seed, **kw)
        val_scores = score_set(model, val, name, batch_size, seed, **kw)
        results[name] = evaluate_scores(raw[name], labels, val_scores, threshold_percentile, types)
        results[name]["unit"] = SCORES[name].unit
        results[name]["settings"] = kw
        timings[name] = time.process_time() - t0

    primary = getattr(model, "anomaly_score", names[0])
    primary = primary if primary in results else names[0]
    best = max(results, key=lambda n: (results[n]["auroc"], results[n]["auprc"]))
    metrics = {
        "model": type(model).__name__, "checkpoint": ckpt_path, "datamodule": type(datamodule).__name__,
        "anomaly_kind": getattr(datamodule, "anomaly_kind", None), "n_test": int(len(labels)),
        "n_anomalies": int(labels.sum()), "primary_score": primary, "best_score": best,
        "auroc": results[primary]["auroc"], "auprc": results[primary]["auprc"],
        "scores": results, "cpu_seconds": timings,
        "threshold_notes": {
            "youden": "chosen on the test labels themselves (an oracle: the best this score can do)",
            "f1": "chosen on the test labels themselves (an oracle: the best this score can do)",
            f"percentile_{threshold_percentile:g}": "chosen on validation images, all normal (deployable)",
        },
    }
    figures = _figures(model, test, raw, results, labels, primary, best, num_images, seed)
    class_names = list(getattr(datamodule, "class_names", ()))
    predicted = None
    if hasattr(model, "classify") and class_names:
        predicted = predict_classes(model, test, batch_size)
        metrics["anomaly_predicted_classes"] = anomaly_class_counts(predicted, labels, class_names)
        normal = (labels == 0) & (test.labels.numpy() >= 0)
        metrics["normal_test_accuracy"] = float((predicted[normal] == test.labels.numpy()[normal]).mean())
        anomalous = np.flatnonzero(labels == 1)[: 4 * num_images]
        figures["anomaly_classes"] = anomaly_class_figure(
            test[anomalous.tolist()]["image"].numpy(), [class_names[p] for p in predicted[anomalous]],
            raw[primary][anomalous])
    thresholds = {k: v["threshold"] for k, v in results[primary]["thresholds"].items()}
    write_predictions(out_dir / "predictions.csv", test, raw[primary], thresholds, predicted, class_names)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))

    for fname, fig in figures.items():
        fig.savefig(out_dir / f"{fname}.png", dpi=110)
    _to_tensorboard(trainer, figures, results)
    _write_markdown(out_dir, metrics, list(figures))
    if ckpt_path:  # the checkpoint plus what `aelab predict` needs to give the same scores
        ckpt = read_checkpoint(ckpt_path)
        if getattr(model, "score_stats", None):
            ckpt["score_stats"] = {k: v.cpu() for k, v in model.score_stats.items()}
        ckpt["score_settings"] = {name: results[name]["settings"] for name in names if results[name]["settings"]}
        torch.save(ckpt, out_dir / "scored.ckpt")
    _print_table(results, out_dir)
    if "anomaly_predicted_classes" in metrics:
        print(f"normal test accuracy {metrics['normal_test_accuracy']:.4f}; anomalies per predicted class: "
              f"{metrics['anomaly_predicted_classes']}", flush=True)
    return metrics


def _figures(model, test, raw, results, labels, primary, best, num_images, seed) -> dict[str, Any]:
    curves_roc, curves_pr = {}, {}
    for name, s in raw.items():
        fpr, tpr, _ = roc_curve(torch.from_numpy(s), torch.from_numpy(labels))
        precision, recall, _ = pr_curve(torch.from_numpy(s), torch.from_numpy(labels))
        curves_roc[name] = (fpr.numpy(), tpr.numpy(), results[name]["auroc"])
        curves_pr[name] = (precision.numpy(), recall.numpy(), results[name]["auprc"])
    figures = {"roc": roc_figure(curves_roc), "pr": pr_figure(curves_pr, float(labels.mean()))}
    for name in dict.fromkeys([primary, best]):
        thresholds = {k: v["threshold"] for k, v in results[name]["thresholds"].items()}
        figures[f"scores_{name}"] = score_histogram_figure(raw[name], labels, name, thresholds)
    s = raw[best]
    order = np.argsort(-s, kind="stable")
    for title, idx in (("most_anomalous", order[:num_images]), ("least_anomalous", order[::-1][:num_images])):
        tags = [f"{'anom' if labels[i] else 'norm'} {s[i]:.3g}" for i in idx]
        figures[title] = _grid(model, test, idx, tags, f"{title.replace('_', ' ')} test images by {best}")
    rng = np.random.default_rng(seed)
    for value, title in ((0, "random_normal"), (1, "random_anomalous")):
        pool = np.flatnonzero(labels == value)
        idx = rng.choice(pool, size=min(num_images, len(pool)), replace=False)
        figures[title] = _grid(model, test, idx, [f"{s[i]:.3g}" for i in idx],
                               f"reconstructions of random {title.split('_')[1]} test images ({best})")
    return figures


def _to_tensorboard(trainer: Trainer, figures: dict[str, Any], results: dict[str, Any]) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            for name, fig in figures.items():
                logger.experiment.add_figure(f"evaluate/{name}", fig)
            for name, r in results.items():
                logger.experiment.add_scalar(f"evaluate/auroc/{name}", r["auroc"])
                logger.experiment.add_scalar(f"evaluate/auprc/{name}", r["auprc"])
            logger.experiment.flush()


def _write_markdown(out_dir: Path, metrics: dict[str, Any], figures: list[str]) -> None:
    lines = [
        f"# Anomaly detection report: {metrics['model']} on {metrics['datamodule']}",
        "",
        f"Checkpoint: `{metrics['checkpoint']}`. Test set: {metrics['n_test']} images, "
        f"{metrics['n_anomalies']} anomalous (kind: {metrics['anomaly_kind']}).",
        f"Configured score: **{metrics['primary_score']}** (AUROC {metrics['auroc']:.4f}, "
        f"AUPRC {metrics['auprc']:.4f}); best score: **{metrics['best_score']}**.",
        "",
        "| score | AUROC | AUPRC | F1 at best-F1 threshold (oracle) | recall at percentile threshold | CPU s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in metrics["scores"].items():
        pct = next(v for k, v in r["thresholds"].items() if k.startswith("percentile"))
        lines.append(f"| {name} | {r['auroc']:.4f} | {r['auprc']:.4f} | {r['thresholds']['f1']['f1']:.3f} | "
                     f"{pct['recall']:.3f} (FPR {pct['fpr']:.3f}) | {metrics['cpu_seconds'].get(name, 0):.1f} |")
    if "anomaly_predicted_classes" in metrics:
        lines += ["", f"Classifier accuracy on the normal test images: {metrics['normal_test_accuracy']:.4f}.",
                  "Predicted class of the anomalies:", "", "| class | anomalies |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in metrics["anomaly_predicted_classes"].items()]
    lines += ["", "Youden and best-F1 thresholds are chosen on the test labels (oracles); the percentile "
              "threshold is chosen on normal validation images only, as it would be in use."]
    lines += ["", "Full numbers (thresholds, confusion matrices, sweep tables): [metrics.json](metrics.json); "
              "per-image scores, threshold flags (and predicted classes): [predictions.csv](predictions.csv).", ""]
    lines += [f"![{f}]({f}.png)" for f in figures]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")


def _print_table(results: dict[str, Any], out_dir: Path) -> None:
    print(f"\naelab evaluate -> {out_dir}")
    print(f"{'score':<14}{'AUROC':>8}{'AUPRC':>8}")
    for name, r in results.items():
        per_type = "".join(f"  {k}: {v['auroc']:.3f}/{v['auprc']:.3f}" for k, v in r.get("per_type", {}).items())
        print(f"{name:<14}{r['auroc']:>8.4f}{r['auprc']:>8.4f}{per_type}", flush=True)
