"""Figures of the latent space. Each function takes arrays and returns a ``matplotlib.figure.Figure``.

Figures are built with the object-oriented API (``Figure()``, no ``pyplot``), so nothing depends on
the interactive backend and no global figure state is kept: PNGs are rendered by Agg on ``savefig``,
and the caller decides whether to save them or log them to TensorBoard.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

UNLABELLED = "unlabelled"


def _colours(n: int) -> list:
    """``n`` distinct colours: tab10 up to 10, tab20 up to 20, evenly spaced hues beyond."""
    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    return [matplotlib.colormaps["hsv"](i / n) for i in range(n)]


def scatter_by_class(
    xy: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    point_size: float | None = None,
) -> Figure:
    """2-D scatter plot, one colour (and one legend entry) per class present in ``labels``.

    Args:
        xy: ``(N, 2)`` coordinates (e.g. PCA or t-SNE of the codes).
        labels: ``(N,)`` int class ids (or cluster ids); ``-1`` is drawn in grey as "unlabelled".
        class_names: name of class id ``k`` at position ``k`` (default: the id as text).
        title, xlabel, ylabel: axis texts.
        point_size: marker area in points^2 (default: ``20000 / N`` clipped to [2, 20]).

    Returns:
        A figure with one axes holding one scatter collection per class present, in class-id order,
        and a legend with one entry per class present.
    """
    xy = np.asarray(xy)
    labels = np.asarray(labels)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(labels) != len(xy):
        raise ValueError(f"need xy (N, 2) and labels (N,), got {xy.shape} and {labels.shape}")
    if point_size is None:
        point_size = float(np.clip(20000 / max(len(xy), 1), 2, 20))
    present = [int(k) for k in np.unique(labels)]
    ids = [k for k in present if k >= 0]
    n_colours = max(len(class_names) if class_names is not None else 0, (max(ids) + 1) if ids else 0)
    colours = _colours(n_colours)
    fig = Figure(figsize=(8.5, 6.5), layout="constrained")
    ax = fig.add_subplot()
    for k in present:
        rows = labels == k
        if k < 0:
            name, colour = UNLABELLED, (0.6, 0.6, 0.6, 1.0)
        else:
            name = class_names[k] if class_names is not None and k < len(class_names) else str(k)
            colour = colours[k]
        ax.scatter(xy[rows, 0], xy[rows, 1], s=point_size, color=colour, alpha=0.7, linewidths=0,
                   label=f"{name} ({rows.sum()})")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=max(1.0, 12.0 / point_size),
              frameon=False, fontsize="small")
    return fig


def explained_variance(ratios: np.ndarray, title: str = "PCA of the codes") -> Figure:
    """Bar chart of PCA explained-variance ratios per component, with the cumulative ratio as a line.

    Args:
        ratios: ``(n_components,)`` ``PCA.explained_variance_ratio_`` (fractions of the total variance).
    """
    ratios = np.asarray(ratios, dtype=float)
    k = np.arange(1, len(ratios) + 1)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(k, ratios, color="tab:blue", label="per component")
    ax.plot(k, np.cumsum(ratios), "o-", color="tab:orange", label="cumulative")
    ax.set(title=title, xlabel="principal component", ylabel="fraction of variance explained", ylim=(0, 1.02))
    ax.set_xticks(k)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="center right")
    return fig


def tile_images(images: np.ndarray, ncols: int, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tiles images ``(N, C, H, W)`` (float in [0, 1], or uint8) into one array, row-major.

    Returns ``(rows * (H + pad) + pad, ncols * (W + pad) + pad)`` float for one channel, with a trailing
    channel axis of size C for C = 3 (RGB). Empty cells and the gaps are ``pad_value``.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got shape {images.shape}")
    n, c, h, w = images.shape
    ncols = max(1, min(ncols, n))
    rows = -(-n // ncols)
    out = np.full((c, rows * (h + pad) + pad, ncols * (w + pad) + pad), pad_value, dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[:, y : y + h, x : x + w] = images[i]
    return out[0] if c == 1 else out.transpose(1, 2, 0)


def image_grid(images: np.ndarray, ncols: int, title: str = "", scale: float = 0.9) -> Figure:
    """A figure showing ``images`` ``(N, C, H, W)`` in [0, 1] tiled with ``ncols`` columns.

    ``scale``: inches per image cell.
    """
    grid = tile_images(images, ncols)
    n = len(images)
    ncols = max(1, min(ncols, n))
    rows = -(-n // ncols)
    fig = Figure(figsize=(max(2.0, scale * ncols), max(2.0, scale * rows) + 0.4), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize="small")
    return fig


def latent_plane(images: np.ndarray, z1: np.ndarray, z2: np.ndarray, title: str = "", codes: np.ndarray | None = None,
                 labels: np.ndarray | None = None) -> Figure:
    """The decoded 2-D latent plane: ``images[i * len(z1) + j]`` is the decoding of ``(z1[j], z2[i])``.

    Args:
        images: ``(len(z2) * len(z1), C, H, W)`` in [0, 1], rows of constant ``z2`` (ascending).
        z1, z2: ascending, evenly spaced grid values of the two latent dimensions.
        codes, labels: optional ``(N, 2)`` codes and labels drawn as small dots over the grid.
    """
    n1, n2 = len(z1), len(z2)
    if len(images) != n1 * n2:
        raise ValueError(f"need len(z1) * len(z2) = {n1 * n2} images, got {len(images)}")
    # image row 0 is drawn at the top: flip so that z2 increases upwards
    rows = np.asarray(images).reshape(n2, n1, *images.shape[1:])[::-1].reshape(images.shape)
    grid = tile_images(rows, n1, pad=0)
    d1 = (z1[-1] - z1[0]) / max(n1 - 1, 1) / 2
    d2 = (z2[-1] - z2[0]) / max(n2 - 1, 1) / 2
    fig = Figure(figsize=(8, 8), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto",
              extent=(z1[0] - d1, z1[-1] + d1, z2[0] - d2, z2[-1] + d2))
    if codes is not None:
        c = None if labels is None else np.asarray(labels)
        ax.scatter(codes[:, 0], codes[:, 1], s=1, c=c, cmap="tab10", alpha=0.3, linewidths=0)
        ax.set(xlim=(z1[0] - d1, z1[-1] + d1), ylim=(z2[0] - d2, z2[-1] + d2))
    ax.set(title=title, xlabel="z[0]", ylabel="z[1]")
    return fig
