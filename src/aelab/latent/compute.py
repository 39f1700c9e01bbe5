"""The ``aelab latent`` report, computed: embeddings, PCA / t-SNE, clustering, probe, generation
(:func:`compute_latent` returns a :class:`LatentResult`; :mod:`aelab.latent.write` writes it into
``output_dir``:

``embeddings.npz``
    ``codes`` ``(N, latent_dim)`` float32 (all images of the split; VAE: posterior means),
    ``labels`` ``(N,)`` int64, ``index`` ``(N,)`` int64 (position in the split),
    ``pca`` ``(N, 2)`` float32 (first two principal components of the codes),
    ``tsne_index`` ``(M,)`` int64 (rows of ``codes`` in the seeded subset of ``M = min(N, max_points)``),
    ``tsne`` ``(M, 2)`` float32 (t-SNE of ``codes[tsne_index]``),
    ``kmeans`` / ``ekm`` ``(M,)`` int64 (cluster ids of the subset), ``class_names`` ``(C,)`` str.
``latent.json``
    the numbers (probe accuracy, k-means / equilibrium k-means NMI, ARI and cluster sizes, PCA
    explained-variance ratios, timings in seconds per step, ``n_points``, ``latent_dim``, ...).
PNG figures
    ``pca.png``, ``pca_explained_variance.png``, ``tsne.png`` (by class), ``tsne_kmeans.png``,
    ``tsne_ekm.png`` (by cluster), ``samples.png``, ``interpolations.png``, ``reconstructions.png``
    (seeded split images, each above its reconstruction) and, for 2-D codes,
    ``latent_plane.png`` (the image figures only for image data).

and, in the checkpoint's run folder (TensorBoard; ``output_dir/tensorboard`` without a checkpoint), the figures (``add_figure``, tags ``latent/...``), the sample and
interpolation grids (``add_image``) and the embedding projector (``add_embedding``:
``projector_config.pbtxt``, ``metadata.tsv`` with class, k-means and EKM columns, ``sprite.png``) for
the same subset of codes, so TensorBoard's Projector tab offers interactive PCA / t-SNE / UMAP.

Clustering (k-means with ``n_init=10`` and :class:`aelab.latent.clustering.EquilibriumKMeans`) and t-SNE run on the
raw codes of the subset (Euclidean geometry of the code space, no standardisation). t-SNE is scikit-learn's
``TSNE(init="pca", learning_rate="auto")``, Barnes-Hut above 500 points, exact below.
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from aelab.latent.settings import LatentSettings
from aelab.latent.clustering import EquilibriumKMeans, cluster_metrics
from aelab.latent.embed import Embedding, encode_split, seeded_subset
from aelab.latent.generate import decode, different_class_pairs, interpolate, latent_plane_grid, sample_images
from aelab.latent.probe import linear_probe
from aelab.models.base import IMAGES

PROBE_TRAIN_SIZE = 10_000  # training codes for the probe and the CAE's Gaussian (a seeded subset)
TSNE_MIN_ITER = 250  # scikit-learn's minimum for TSNE(max_iter=...)
TSNE_EXACT_MAX = 500  # exact t-SNE gradient up to this many points (fast there, and Barnes-Hut can be slow
# on tiny, nearly coincident codes); Barnes-Hut (O(N log N)) above


class Timer:
    """Collects wall-clock seconds per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def class_names_for(datamodule, labels: np.ndarray) -> list[str]:
    """``datamodule.class_names`` if it names every label, else the label ids as text."""
    names = list(getattr(datamodule, "class_names", ()) or ())
    top = int(labels.max()) if len(labels) else -1
    if len(names) > top:
        return [str(n) for n in names]
    return [str(k) for k in range(top + 1)]


def validate(s: LatentSettings) -> None:
    from aelab.latent.embed import SPLITS

    if s.split not in SPLITS:
        raise ValueError(f"unknown split {s.split!r}; expected one of {list(SPLITS)}")
    if s.max_points < 10:
        raise ValueError(f"max_points must be >= 10, got {s.max_points}")
    if not s.perplexity > 0:
        raise ValueError(f"perplexity must be > 0, got {s.perplexity}")
    if s.tsne_iterations < TSNE_MIN_ITER:
        raise ValueError(f"tsne_iterations must be >= {TSNE_MIN_ITER} (scikit-learn's minimum), got {s.tsne_iterations}")
    if s.n_clusters is not None and s.n_clusters < 2:
        raise ValueError(f"n_clusters must be >= 2, got {s.n_clusters}")
    if s.ekm_alpha is not None and not s.ekm_alpha > 0:
        raise ValueError(f"ekm_alpha must be > 0 (or unset for the default), got {s.ekm_alpha}")
    if s.n_samples < 4:
        raise ValueError(f"n_samples must be >= 4, got {s.n_samples}")


@dataclass
class LatentResult:
    """What ``aelab latent`` computed (arrays; figures and files come from :mod:`aelab.latent.write`).

    Attributes:
        report: the numbers of ``latent.json`` (probe, clustering, PCA, sizes, settings).
        emb: the encoded split (codes, labels, images); ``sub``: the seeded subset used for t-SNE,
            clustering and the projector, at rows ``sub_rows`` of ``emb``.
        names: class names; ``pca2``: ``(N, 2)``; ``ratios``: PCA explained-variance ratios;
        tsne: ``(M, 2)``; ``km_labels`` / ``ekm_labels``: ``(M,)`` cluster ids; ``k``: clusters.
        samples: generated items ``(n, ...)`` and the sampler's description (images only: else ``None``).
        interpolations: ``(P, steps + 2, C, H, W)`` inputs at both ends, decodings between (images only).
        reconstructions: ``(2, n, C, H, W)``: ``n`` seeded images of the split and their reconstructions
            (``model.reconstruct``: for a VAE the decoded posterior mean; images only).
        plane: ``(z1, z2, images)`` of the decoded latent plane for 2-D codes, else ``None``.
    """

    report: dict[str, Any]
    emb: Embedding
    sub: Embedding
    sub_rows: np.ndarray
    names: list[str]
    pca2: np.ndarray
    ratios: np.ndarray
    tsne: np.ndarray
    km_labels: np.ndarray
    ekm_labels: np.ndarray
    k: int
    samples: tuple[torch.Tensor, str] | None = None
    interpolations: torch.Tensor | None = None
    reconstructions: torch.Tensor | None = None
    plane: tuple[np.ndarray, np.ndarray, torch.Tensor] | None = None


def compute_latent(model, datamodule, s: LatentSettings, device, timer: Timer) -> LatentResult:
    """Encode ``s.split`` of ``datamodule`` and compute PCA, t-SNE, clustering, the probe and (images)
    generation; see the package docstring for the definitions.

    Raises:
        ValueError: out-of-range settings, or an empty split.
    """
    validate(s)
    split, seed = s.split, s.seed
    images = IMAGES in model.capabilities
    # -- encode the split, and (a subset of) the training split for the probe / Gaussian ----------
    with timer("encode"):
        emb = encode_split(model, datamodule, split, seed=seed, device=device, keep_images=images)
        if split == "train":
            # probe fitted on a subset of the training codes, scored on the others
            fit_rows = seeded_subset(len(emb), min(PROBE_TRAIN_SIZE, len(emb) // 2), seed + 1)
            train = emb.take(fit_rows)
            score_rows = np.setdiff1d(np.arange(len(emb)), fit_rows)
        else:
            train = encode_split(model, datamodule, "train", max_items=PROBE_TRAIN_SIZE, seed=seed + 1,
                                 keep_images=False, device=device)
            score_rows = np.arange(len(emb))
    n, latent_dim = emb.codes.shape
    names = class_names_for(datamodule, np.concatenate([emb.labels, train.labels]))
    sub_rows = seeded_subset(n, s.max_points, seed)
    sub = emb.take(sub_rows)
    m = len(sub)

    # -- PCA of all codes ------------------------------------------------------------------------
    with timer("pca"):
        pca = PCA(n_components=min(latent_dim, n), random_state=seed).fit(emb.codes)
        proj = pca.transform(emb.codes)
        pca2 = np.zeros((n, 2), dtype=np.float32)
        pca2[:, : min(2, proj.shape[1])] = proj[:, :2]
        ratios = pca.explained_variance_ratio_.astype(float)

    # -- t-SNE of the subset -----------------------------------------------------------------------
    with timer("tsne"):
        used_perplexity = float(s.perplexity)
        if used_perplexity >= m:
            used_perplexity = max(1.0, (m - 1) / 3)
            warnings.warn(f"perplexity {s.perplexity} >= {m} points: using {used_perplexity:.1f}", stacklevel=2)
        method = "exact" if m <= TSNE_EXACT_MAX else "barnes_hut"
        tsne = TSNE(n_components=2, perplexity=used_perplexity, max_iter=s.tsne_iterations, init="pca",
                    learning_rate="auto", method=method, random_state=seed).fit_transform(sub.codes)
        tsne = tsne.astype(np.float32)

    # -- clustering of the subset ----------------------------------------------------------------------
    labelled = sub.labels >= 0
    k = s.n_clusters or (len(names) if labelled.any() else 10)
    k = min(k, m)
    with timer("kmeans"):
        km_labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(sub.codes).astype(np.int64)
    with timer("ekm"):
        ekm = EquilibriumKMeans(n_clusters=k, alpha=s.ekm_alpha, random_state=seed).fit(sub.codes)

    def agreement(clusters: np.ndarray) -> dict:  # an unlabeled folder: nothing to compare the clusters with
        if labelled.any():
            return cluster_metrics(sub.labels[labelled], clusters[labelled])
        return {"nmi": None, "ari": None, "sizes": np.bincount(clusters).tolist()}

    km_metrics, ekm_metrics = agreement(km_labels), agreement(ekm.labels_)

    # -- linear probe -------------------------------------------------------------------------------------
    probe = {"accuracy": None, "train_accuracy": None, "n_train": 0, "n_test": 0}
    if len(np.unique(train.labels[train.labels >= 0])) >= 2 and (emb.labels[score_rows] >= 0).any():
        with timer("probe"):
            probe = linear_probe(train.codes, train.labels, emb.codes[score_rows], emb.labels[score_rows], seed=seed)
    # else: one class in training (a one-class protocol, normal rows only): no probe, reported as null

    result = LatentResult({}, emb, sub, sub_rows, names, pca2, ratios, tsne, km_labels, ekm.labels_, k)
    # -- generation (images) ------------------------------------------------------------------------------------
    sampler = None
    if images:
        with timer("generate"):
            result.samples = sample_images(model, s.n_samples, train_codes=train.codes, seed=seed)
            sampler = result.samples[1]
            n_pairs = max(1, int(round(math.sqrt(s.n_samples))))
            steps = max(2, s.n_samples // n_pairs)
            pairs = different_class_pairs(emb.labels, n_pairs, seed=seed)
            x_all = emb.float_images()
            x_a, x_b = x_all[pairs[:, 0]], x_all[pairs[:, 1]]
            inter = interpolate(model, x_a, x_b, steps=steps)  # (P, steps, C, H, W)
            result.interpolations = torch.cat([x_a[:, None], inter, x_b[:, None]], dim=1)  # inputs at both ends
            rows = seeded_subset(len(emb), min(s.n_samples // 2, len(emb)), seed + 2)
            x = x_all[rows]
            with torch.inference_mode():
                recon = model.reconstruct(x.to(device)).float().cpu().clamp(0, 1)
            result.reconstructions = torch.stack([x, recon])  # (2, n, C, H, W)
            if latent_dim == 2:
                z1, z2, zg = latent_plane_grid(emb.codes, n=20)
                result.plane = (z1, z2, decode(model, torch.from_numpy(zg).float()))

    result.report = {
        "model": type(model).__name__,
        "split": split,
        "n_points": int(n),
        "latent_dim": int(latent_dim),
        "n_subset": int(m),
        "probe_accuracy": probe["accuracy"],
        "probe_train_accuracy": probe["train_accuracy"],
        "probe_n_train": probe["n_train"],
        "probe_n_test": probe["n_test"],
        "n_clusters": int(k),
        "kmeans_nmi": km_metrics["nmi"],
        "kmeans_ari": km_metrics["ari"],
        "kmeans_sizes": km_metrics["sizes"],
        "ekm_nmi": ekm_metrics["nmi"],
        "ekm_ari": ekm_metrics["ari"],
        "ekm_sizes": ekm_metrics["sizes"],
        "ekm_alpha": float(ekm.alpha_),
        "ekm_alpha_default": s.ekm_alpha is None,
        "ekm_n_iter": int(ekm.n_iter_),
        "ekm_converged": bool(ekm.converged_),
        "class_sizes": np.bincount(sub.labels[labelled], minlength=len(names)).tolist(),
        "pca_explained_variance_ratio": [float(r) for r in ratios],
        "tsne_perplexity": used_perplexity,
        "tsne_iterations": int(s.tsne_iterations),
        "sampler": sampler,
        "seed": int(seed),
    }
    return result
