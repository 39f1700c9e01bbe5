"""Reading classification and anomaly detection together: which class a classifier gives each anomaly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from aelab.evaluation.plots import _show
from aelab.runs import infer, model_device


def predict_classes(model, dataset, batch_size: int = 256) -> np.ndarray:
    """Predicted class ``(N,)`` int64 of every item of an in-memory dataset (``model.classify``)."""
    return infer(lambda x: model.classify(x).argmax(-1), dataset, batch_size, model_device(model)).numpy()


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
