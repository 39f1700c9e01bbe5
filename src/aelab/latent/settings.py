"""The settings of ``aelab latent`` (its flags; see :mod:`aelab.commands.settings`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class LatentSettings:
    """Settings of ``aelab latent``.

    Args:
        output_dir: where ``embeddings.npz``, figures and ``latent.json`` go (default ``<run>/latent``).
        split: ``train``, ``val`` or ``test``.
        max_points: codes used for t-SNE / clustering / projector (a seeded subset).
        perplexity: scikit-learn ``TSNE`` perplexity.
        tsne_iterations: scikit-learn ``TSNE`` iterations (>= 250).
        n_clusters: clusters for k-means / equilibrium k-means (default: number of classes).
        ekm_alpha: equilibrium k-means ``alpha`` (default: scale-free, derived from the data).
        n_samples: images in the sample and interpolation grids.
        seed: seeds subsets, t-SNE and clustering.
    """

    output_dir: str | None = None
    split: Literal["train", "val", "test"] = "test"
    max_points: int = 3000
    perplexity: float = 30.0
    tsne_iterations: int = 1000
    n_clusters: int | None = None
    ekm_alpha: float | None = None
    n_samples: int = 64
    seed: int = 0
