"""Evaluation figures. Every function takes arrays and returns a ``matplotlib.figure.Figure``; the
caller saves or logs it. Uses the object-oriented API only (safe on headless machines)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]]) -> Figure:
    """ROC curves: ``{score name: (fpr, tpr, auroc)}``, one line each, chance diagonal dashed."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


def pr_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], anomaly_rate: float) -> Figure:
    """Precision-recall curves: ``{score name: (precision, recall, auprc)}``; chance = anomaly rate."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for name, (precision, recall, ap) in curves.items():
        ax.plot(recall, precision, label=f"{name} (AUPRC {ap:.3f})")
    ax.axhline(anomaly_rate, color="k", ls="--", lw=0.8)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    return fig


def score_histogram_figure(scores: np.ndarray, labels: np.ndarray, name: str,
                           thresholds: Mapping[str, float] | None = None, bins: int = 50) -> Figure:
    """Histogram (left) and Gaussian kernel density (right) of scores of normal vs anomalous images,
    with the chosen thresholds as vertical lines."""
    fig = Figure(figsize=(10, 4))
    ax_hist, ax_kde = fig.subplots(1, 2)
    edges = np.histogram_bin_edges(scores, bins=bins)
    grid = np.linspace(scores.min(), scores.max(), 300)
    for value, label, color in ((0, "normal", "tab:blue"), (1, "anomalous", "tab:red")):
        s = scores[labels == value]
        if len(s) == 0:
            continue
        ax_hist.hist(s, bins=edges, alpha=0.6, density=True, color=color, label=f"{label} ({len(s)})")
        if len(s) > 1 and np.ptp(s) > 0:
            ax_kde.plot(grid, gaussian_kde(s)(grid), color=color, label=label)
    for key, t in (thresholds or {}).items():
        for ax in (ax_hist, ax_kde):
            ax.axvline(t, ls="--", lw=0.8, color="k")
        ax_kde.text(t, ax_kde.get_ylim()[1] * 0.95, key, rotation=90, fontsize=7, va="top")
    ax_hist.set(xlabel=name, ylabel="density", title="Score histogram")
    ax_kde.set(xlabel=name, ylabel="density", title="Kernel density")
    ax_hist.legend(fontsize=8)
    ax_kde.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _show(ax, image: np.ndarray, cmap: str = "gray", vmax: float = 1.0) -> None:
    """Show ``(C, H, W)`` in [0, 1] (C = 1 or 3) without axes."""
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap=cmap, vmin=0, vmax=vmax)
    else:
        ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])


def reconstruction_grid_figure(images: np.ndarray, reconstructions: np.ndarray, titles: Sequence[str],
                               suptitle: str = "") -> Figure:
    """Columns of (original, reconstruction, |difference|) for images ``(N, C, H, W)`` in [0, 1];
    ``titles`` (one per image) go above each column."""
    n = len(images)
    fig = Figure(figsize=(1.3 * max(n, 1), 4.2))
    axes = np.asarray(fig.subplots(3, max(n, 1), squeeze=False))
    diff = np.abs(images - reconstructions).max(axis=1, keepdims=True)
    for i in range(n):
        _show(axes[0, i], images[i])
        _show(axes[1, i], reconstructions[i])
        _show(axes[2, i], diff[i], cmap="magma", vmax=max(float(diff.max()), 1e-6))
        axes[0, i].set_title(titles[i], fontsize=6)
    for row, label in enumerate(("input", "reconstruction", "|difference|")):
        axes[row, 0].set_ylabel(label, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def confusion_figure(matrix, class_names: Sequence[str] | None = None) -> Figure:
    """The confusion matrix ``(K, K)`` (array or nested list; rows = true class) as a figure with counts."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=class_names).plot(
        ax=ax, colorbar=False, xticks_rotation=45)
    fig.tight_layout()
    return fig
