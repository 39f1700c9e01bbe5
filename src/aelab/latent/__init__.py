"""Latent-space analysis: embeddings -> PCA / t-SNE maps, projector, clustering, probe, generation.

Modules: :mod:`~aelab.latent.embed` (encode a split), :mod:`~aelab.latent.plots` (figures from
arrays), :mod:`~aelab.latent.generate` (samples, interpolations, latent plane),
:mod:`~aelab.latent.probe` (linear separability) and :mod:`~aelab.latent.report` (the
``aelab latent`` subcommand). Clustering lives in :mod:`aelab.clustering`.
"""

from aelab.latent.embed import Embedding, encode_dataset, encode_split, split_dataset
from aelab.latent.report import latent_report

__all__ = ["Embedding", "encode_dataset", "encode_split", "latent_report", "split_dataset"]
