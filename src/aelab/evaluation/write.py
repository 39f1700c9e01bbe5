"""Writing an :class:`~aelab.evaluation.compute.EvaluationResult`: ``metrics.json``, ``report.md``,
``predictions.csv``, the figures (PNG and TensorBoard), and a printed summary table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from aelab.evaluation.classes import anomaly_class_figure
from aelab.evaluation.compute import EvaluationResult
from aelab.evaluation.metrics import pr_curve, roc_curve
from aelab.evaluation.plots import pr_figure, reconstruction_grid_figure, roc_figure, score_histogram_figure
from aelab.runs import write_csv


def figures(result: EvaluationResult) -> dict[str, Any]:
    """ROC and precision-recall curves of every score, score histograms of the primary and the best
    score, the reconstruction grids and the anomalies' predicted classes, as matplotlib figures."""
    m, labels = result.metrics, result.labels
    curves_roc, curves_pr = {}, {}
    for name, s in result.scores.items():
        fpr, tpr, _ = roc_curve(torch.from_numpy(s), torch.from_numpy(labels))
        precision, recall, _ = pr_curve(torch.from_numpy(s), torch.from_numpy(labels))
        curves_roc[name] = (fpr.numpy(), tpr.numpy(), m["scores"][name]["auroc"])
        curves_pr[name] = (precision.numpy(), recall.numpy(), m["scores"][name]["auprc"])
    out = {"roc": roc_figure(curves_roc), "pr": pr_figure(curves_pr, float(labels.mean()))}
    for name in dict.fromkeys([m["primary_score"], m["best_score"]]):
        thresholds = {k: v["threshold"] for k, v in m["scores"][name]["thresholds"].items()}
        out[f"scores_{name}"] = score_histogram_figure(result.scores[name], labels, name, thresholds)
    for title, grid in result.grids.items():
        out[title] = reconstruction_grid_figure(grid.images, grid.reconstructions, grid.titles, grid.suptitle)
    if result.anomaly_examples is not None:
        out["anomaly_classes"] = anomaly_class_figure(*result.anomaly_examples)
    return out


def prediction_columns(result: EvaluationResult, test) -> dict[str, list]:
    """``predictions.csv`` of evaluate: one row per test item: index (and item name), anomaly label and
    type, true class, the primary score, whether each threshold flags it, and the predicted class."""
    m = result.metrics
    primary = m["primary_score"]
    scores = result.scores[primary]
    thresholds = {k: v["threshold"] for k, v in m["scores"][primary]["thresholds"].items()}
    columns: dict[str, list] = {"index": list(range(len(scores)))}
    if result.names is not None:
        columns["item"] = list(result.names)
    columns["anomaly"] = result.labels.astype(int).tolist()
    columns["anomaly_type"] = (result.types if result.types is not None else result.labels).astype(int).tolist()
    columns["label"] = test.labels.tolist()
    columns["score"] = scores.tolist()
    for key, t in thresholds.items():
        columns[f"flagged_{key}"] = (scores >= t).astype(int).tolist()
    if result.predicted is not None:
        columns["predicted_class"] = result.predicted.astype(int).tolist()
        columns["predicted_name"] = [result.class_names[int(p)] for p in result.predicted]
    return columns


def write_evaluation(result: EvaluationResult, test, out_dir: Path, writer=None) -> dict[str, Any]:
    """Write every file of the report into ``out_dir`` (and the figures and AUROC / AUPRC scalars into the
    TensorBoard ``writer`` if given); print the summary table. Returns the metrics."""
    m = result.metrics
    figs = figures(result)
    write_csv(out_dir / "predictions.csv", prediction_columns(result, test))
    (out_dir / "metrics.json").write_text(json.dumps(m, indent=2))
    for name, fig in figs.items():
        fig.savefig(out_dir / f"{name}.png", dpi=110)
    if writer is not None:
        for name, fig in figs.items():
            writer.add_figure(f"evaluate/{name}", fig)
        for name, r in m["scores"].items():
            writer.add_scalar(f"evaluate/auroc/{name}", r["auroc"])
            writer.add_scalar(f"evaluate/auprc/{name}", r["auprc"])
        writer.flush()
    write_markdown(out_dir, m, list(figs))
    print_table(m, out_dir)
    return m


def write_markdown(out_dir: Path, metrics: dict[str, Any], figure_names: list[str]) -> None:
    """``report.md``: the scores table, the classifier's view of the anomalies, links to the files."""
    lines = [
        f"# Anomaly detection report: {metrics['model']} on {metrics['datamodule']}",
        "",
        f"Checkpoint: `{metrics['checkpoint']}`. Test set: {metrics['n_test']} items, "
        f"{metrics['n_anomalies']} anomalous (kind: {metrics['anomaly_kind']}).",
        f"Configured score: **{metrics['primary_score']}** (AUROC {metrics['auroc']:.4f}, "
        f"AUPRC {metrics['auprc']:.4f}); best score: **{metrics['best_score']}**.",
        "",
        "| score | AUROC | AUPRC | F1 at best-F1 threshold (oracle) | recall at deployable threshold | CPU s |",
        "|---|---|---|---|---|---|",
    ]
    deployable = [k for k in metrics["threshold_notes"] if k not in ("youden", "f1")][0]
    for name, r in metrics["scores"].items():
        d = r["thresholds"][deployable]
        lines.append(f"| {name} | {r['auroc']:.4f} | {r['auprc']:.4f} | {r['thresholds']['f1']['f1']:.3f} | "
                     f"{d['recall']:.3f} (FPR {d['fpr']:.3f}) | {metrics['cpu_seconds'].get(name, 0):.1f} |")
    if "anomaly_predicted_classes" in metrics:
        lines += ["", f"Classifier accuracy on the normal test items: {metrics['normal_test_accuracy']:.4f}.",
                  "Predicted class of the anomalies:", "", "| class | anomalies |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in metrics["anomaly_predicted_classes"].items()]
    lines += ["", f"Youden and best-F1 thresholds are chosen on the test labels (oracles); the {deployable} "
              f"threshold is {metrics['threshold_notes'][deployable]}."]
    lines += ["", "Full numbers (thresholds, confusion matrices, sweep tables): [metrics.json](metrics.json); "
              "per-item scores, threshold flags (and predicted classes): [predictions.csv](predictions.csv).", ""]
    lines += [f"![{f}]({f}.png)" for f in figure_names]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")


def print_table(metrics: dict[str, Any], out_dir: Path) -> None:
    """AUROC / AUPRC per score (and per anomaly type) on standard output."""
    print(f"\naelab evaluate -> {out_dir}")
    print(f"{'score':<14}{'AUROC':>8}{'AUPRC':>8}")
    for name, r in metrics["scores"].items():
        per_type = "".join(f"  {k}: {v['auroc']:.3f}/{v['auprc']:.3f}" for k, v in r.get("per_type", {}).items())
        print(f"{name:<14}{r['auroc']:>8.4f}{r['auprc']:>8.4f}{per_type}", flush=True)
    if "anomaly_predicted_classes" in metrics:
        print(f"normal test accuracy {metrics['normal_test_accuracy']:.4f}; anomalies per predicted class: "
              f"{metrics['anomaly_predicted_classes']}", flush=True)
