"""Reading classification and anomaly detection together: which class does a classifier give each
anomaly, and which test images does the anomaly threshold flag (``predictions.csv``)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from aelab.evaluation.plots import _show


@torch.no_grad()
def predict_classes(model, dataset, batch_size: int = 256) -> np.ndarray:
    """Predicted class ``(N,)`` int64 of every image of an in-memory dataset (``model.classify``)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(dataset), batch_size):
        batch = dataset[list(range(start, min(start + batch_size, len(dataset))))]
        out.append(model.classify(batch["image"].to(device)).argmax(-1).cpu())
    return torch.cat(out).numpy()


def anomaly_class_counts(predicted: np.ndarray, is_anomaly: np.ndarray, class_names: Sequence[str]) -> dict[str, int]:
    """How many anomalies were given each class: ``{class name: count}`` (sums to the anomaly count)."""
    counts = np.bincount(predicted[is_anomaly == 1], minlength=len(class_names))
    return {name: int(c) for name, c in zip(class_names, counts)}


def anomaly_class_figure(images: np.ndarray, predicted: Sequence[str], scores: np.ndarray, ncols: int = 8) -> Figure:
    """Anomalous images ``(N, C, H, W)`` in [0, 1] titled with their predicted class and score."""
    n = len(images)
    rows = max(1, -(-n // ncols))
    fig = Figure(figsize=(1.4 * ncols, 1.6 * rows))
    axes = np.asarray(fig.subplots(rows, ncols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for i in range(n):
        _show(axes[i], images[i])
        axes[i].axis("on")
        axes[i].set_title(f"{predicted[i]}\n{scores[i]:.3g}", fontsize=6)
    fig.suptitle("anomalies with their predicted class (and anomaly score)", fontsize=9)
    fig.tight_layout()
    return fig


def write_predictions(path: Path, test, scores: np.ndarray, thresholds: dict[str, float],
                      predicted: np.ndarray | None, class_names: Sequence[str]) -> None:
    """One CSV row per test image: index, anomaly label and type, true class, anomaly score, whether
    each threshold flags it, and (for classifiers) the predicted class."""
    extras = test.extras
    header = ["index", "anomaly", "anomaly_type", "label", "score"] + [f"flagged_{k}" for k in thresholds]
    if predicted is not None:
        header += ["predicted_class", "predicted_name"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i in range(len(scores)):
            row: list[Any] = [i, int(extras["anomaly"][i]), int(extras.get("anomaly_type", extras["anomaly"])[i]),
                              int(test.labels[i]), f"{scores[i]:.6g}"]
            row += [int(scores[i] >= t) for t in thresholds.values()]
            if predicted is not None:
                row += [int(predicted[i]), class_names[int(predicted[i])]]
            writer.writerow(row)
