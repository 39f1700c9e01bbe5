"""Latent-space analysis: embeddings -> PCA / t-SNE maps, projector, clustering, probe, generation.

Modules: :mod:`~aelab.latent.embed` (encode a split), :mod:`~aelab.latent.compute` (the report's
numbers and arrays), :mod:`~aelab.latent.write` (files, figures, TensorBoard),
:mod:`~aelab.latent.plots` (figures from arrays), :mod:`~aelab.latent.generate` (samples,
interpolations, latent plane), :mod:`~aelab.latent.probe` (linear separability),
:mod:`~aelab.latent.clustering` (equilibrium k-means) and :mod:`~aelab.latent.settings` (the flags).
"""

from aelab.latent.compute import LatentResult, compute_latent
from aelab.latent.embed import Embedding, encode_dataset, encode_split, split_dataset

__all__ = ["Embedding", "LatentResult", "compute_latent", "encode_dataset", "encode_split", "split_dataset"]
