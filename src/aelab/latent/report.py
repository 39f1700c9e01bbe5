"""The ``aelab latent`` report: embeddings, PCA / t-SNE maps, projector, clustering, probe, generation.

:func:`latent_report` (called by :meth:`aelab.trainer.AelabTrainer.latent`) loads a checkpoint, encodes
a split and writes into ``output_dir``:

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
    ``tsne_ekm.png`` (by cluster), ``samples.png``, ``interpolations.png`` and, for 2-D codes,
    ``latent_plane.png``.

and, under the run's TensorBoard directory (``trainer.logger.log_dir`` for a ``TensorBoardLogger``,
else ``output_dir/tensorboard``), the figures (``add_figure``, tags ``latent/...``), the sample and
interpolation grids (``add_image``) and the embedding projector (``add_embedding``:
``projector_config.pbtxt``, ``metadata.tsv`` with class, k-means and EKM columns, ``sprite.png``) for
the same subset of codes, so TensorBoard's Projector tab offers interactive PCA / t-SNE / UMAP.

Clustering (k-means with ``n_init=10`` and :class:`aelab.clustering.EquilibriumKMeans`) and t-SNE run on the
raw codes of the subset (Euclidean geometry of the code space, no standardisation). t-SNE is scikit-learn's
``TSNE(init="pca", learning_rate="auto")``, Barnes-Hut above 500 points, exact below.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from aelab.checkpoint import load_weights
from aelab.clustering import EquilibriumKMeans, cluster_metrics
from aelab.latent import plots
from aelab.latent.embed import encode_split, seeded_subset
from aelab.latent.generate import (
    decode,
    different_class_pairs,
    interpolate,
    latent_plane_grid,
    sample_images,
)
from aelab.latent.probe import linear_probe

PROBE_TRAIN_SIZE = 10_000  # training codes for the probe and the CAE's Gaussian (a seeded subset)
SPRITE_MAX_PIXELS = 8192  # TensorBoard's projector refuses larger sprite images
TSNE_MIN_ITER = 250  # scikit-learn's minimum for TSNE(max_iter=...)
TSNE_EXACT_MAX = 500  # exact t-SNE gradient up to this many points (fast there, and Barnes-Hut can be slow
# on tiny, nearly coincident codes); Barnes-Hut (O(N log N)) above


class _Timer:
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


def default_output_dir(ckpt_path: str | Path) -> Path:
    """``<run>/latent`` for a checkpoint ``<run>/checkpoints/x.ckpt``; ``<dir>/latent`` otherwise."""
    ckpt = Path(ckpt_path)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run / "latent"


def tensorboard_dir(trainer, output_dir: Path) -> Path:
    """``trainer.logger.log_dir`` if the trainer logs to TensorBoard, else ``output_dir/tensorboard``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = getattr(trainer, "logger", None) if trainer is not None else None
    if isinstance(logger, TensorBoardLogger):
        return Path(logger.log_dir)
    return output_dir / "tensorboard"


def class_names_for(datamodule, labels: np.ndarray) -> list[str]:
    """``datamodule.class_names`` if it names every label, else the label ids as text."""
    names = list(getattr(datamodule, "class_names", ()) or ())
    top = int(labels.max()) if len(labels) else -1
    if len(names) > top:
        return [str(n) for n in names]
    return [str(k) for k in range(top + 1)]


def sprite_images(images: torch.Tensor) -> torch.Tensor:
    """Downsamples images ``(N, C, H, W)`` if needed so that the square sprite of ``ceil(sqrt(N))`` images
    per side stays within TensorBoard's 8192-pixel limit."""
    n, _, h, w = images.shape
    per_side = math.ceil(math.sqrt(n))
    limit = SPRITE_MAX_PIXELS // per_side
    if max(h, w) <= limit:
        return images
    scale = limit / max(h, w)
    size = (max(1, int(h * scale)), max(1, int(w * scale)))
    return F.interpolate(images, size=size, mode="area")


def add_projector(writer, codes: np.ndarray, metadata: dict[str, list], images: torch.Tensor | None,
                  tag: str) -> None:
    """``writer.add_embedding`` for codes ``(M, D)`` with metadata columns (header row = the dict's keys)
    and a sprite of ``images`` ``(M, C, H, W)`` in [0, 1]. Writes ``projector_config.pbtxt`` in the
    writer's directory and ``00000/<tag>/{tensors.tsv, metadata.tsv, sprite.png}``."""
    header = list(metadata)
    rows = [[str(metadata[k][i]) for k in header] for i in range(len(codes))]
    label_img = None if images is None else sprite_images(images.float())
    if len(header) == 1:
        writer.add_embedding(torch.from_numpy(codes), metadata=[r[0] for r in rows], label_img=label_img, tag=tag)
    else:
        writer.add_embedding(torch.from_numpy(codes), metadata=rows, label_img=label_img, tag=tag,
                             metadata_header=header)


def _device(trainer) -> torch.device:
    try:
        return torch.device(trainer.strategy.root_device)
    except Exception:  # noqa: BLE001 - no trainer, or no accelerator set up: run on the CPU
        return torch.device("cpu")


def _validate(split, max_points, perplexity, tsne_iterations, n_clusters, ekm_alpha, n_samples) -> None:
    from aelab.latent.embed import SPLITS

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if max_points < 10:
        raise ValueError(f"max_points must be >= 10, got {max_points}")
    if not perplexity > 0:
        raise ValueError(f"perplexity must be > 0, got {perplexity}")
    if tsne_iterations < TSNE_MIN_ITER:
        raise ValueError(f"tsne_iterations must be >= {TSNE_MIN_ITER} (scikit-learn's minimum), got {tsne_iterations}")
    if n_clusters is not None and n_clusters < 2:
        raise ValueError(f"n_clusters must be >= 2, got {n_clusters}")
    if ekm_alpha is not None and not ekm_alpha > 0:
        raise ValueError(f"ekm_alpha must be > 0 (or unset for the default), got {ekm_alpha}")
    if n_samples < 4:
        raise ValueError(f"n_samples must be >= 4, got {n_samples}")


def latent_report(
    trainer,
    model,
    datamodule,
    *,
    ckpt_path: str | None = None,
    output_dir: str | None = None,
    split: str = "test",
    max_points: int = 3000,
    perplexity: float = 30.0,
    tsne_iterations: int = 1000,
    n_clusters: int | None = None,
    ekm_alpha: float | None = None,
    n_samples: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Writes the latent-space report of ``model`` (weights from ``ckpt_path``) on ``split`` of ``datamodule``.

    See the module docstring for the files. Args as in :meth:`aelab.trainer.AelabTrainer.latent`.

    Returns:
        The content of ``latent.json`` (also printed as a short table).

    Raises:
        ValueError: for an unknown split, missing ``ckpt_path`` or out-of-range options.
        aelab.checkpoint.CheckpointError: if the checkpoint cannot be loaded into ``model``.
    """
    _validate(split, max_points, perplexity, tsne_iterations, n_clusters, ekm_alpha, n_samples)
    if not ckpt_path:
        raise ValueError("`aelab latent` needs --ckpt_path (a checkpoint written by `aelab fit`)")
    timer = _Timer()
    out = Path(output_dir) if output_dir else default_output_dir(ckpt_path)
    out.mkdir(parents=True, exist_ok=True)

    with timer("load"):
        load_weights(model, ckpt_path)
        device = _device(trainer)
        model.to(device)

    # -- encode the split, and (a subset of) the training split for the probe / Gaussian ----------
    with timer("encode"):
        emb = encode_split(model, datamodule, split, seed=seed, device=device)
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
    sub_rows = seeded_subset(n, max_points, seed)
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
        used_perplexity = float(perplexity)
        if used_perplexity >= m:
            used_perplexity = max(1.0, (m - 1) / 3)
            warnings.warn(f"perplexity {perplexity} >= {m} points: using {used_perplexity:.1f}", stacklevel=2)
        method = "exact" if m <= TSNE_EXACT_MAX else "barnes_hut"
        tsne = TSNE(n_components=2, perplexity=used_perplexity, max_iter=tsne_iterations, init="pca",
                    learning_rate="auto", method=method, random_state=seed).fit_transform(sub.codes)
        tsne = tsne.astype(np.float32)

    # -- clustering of the subset ----------------------------------------------------------------------
    labelled = sub.labels >= 0
    k = n_clusters or (len(names) if labelled.any() else 10)
    k = min(k, m)
    with timer("kmeans"):
        km_labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(sub.codes).astype(np.int64)
    with timer("ekm"):
        ekm = EquilibriumKMeans(n_clusters=k, alpha=ekm_alpha, random_state=seed).fit(sub.codes)
    km_metrics = cluster_metrics(sub.labels[labelled], km_labels[labelled])
    ekm_metrics = cluster_metrics(sub.labels[labelled], ekm.labels_[labelled])

    # -- linear probe -------------------------------------------------------------------------------------
    with timer("probe"):
        probe = linear_probe(train.codes, train.labels, emb.codes[score_rows], emb.labels[score_rows], seed=seed)

    # -- generation -------------------------------------------------------------------------------------------
    with timer("generate"):
        samples, sampler = sample_images(model, n_samples, train_codes=train.codes, seed=seed)
        n_pairs = max(1, int(round(math.sqrt(n_samples))))
        steps = max(2, n_samples // n_pairs)
        pairs = different_class_pairs(emb.labels, n_pairs, seed=seed)
        x_all = emb.float_images()
        x_a, x_b = x_all[pairs[:, 0]], x_all[pairs[:, 1]]
        inter = interpolate(model, x_a, x_b, steps=steps)  # (P, steps, C, H, W)
        inter_rows = torch.cat([x_a[:, None], inter, x_b[:, None]], dim=1)  # inputs at both ends
        plane = None
        if latent_dim == 2:
            z1, z2, zg = latent_plane_grid(emb.codes, n=20)
            plane = (z1, z2, decode(model, torch.from_numpy(zg).float()))

    # -- figures -----------------------------------------------------------------------------------------------
    with timer("figures"):
        ncols = max(1, int(round(math.sqrt(n_samples))))
        figures = {
            "pca": plots.scatter_by_class(
                pca2, emb.labels, names, title=f"PCA of the {split} codes ({n} points, "
                f"{100 * ratios[:2].sum():.1f}% of the variance)", xlabel="PC 1", ylabel="PC 2"),
            "pca_explained_variance": plots.explained_variance(ratios, title=f"PCA of the {latent_dim}-D codes"),
            "tsne": plots.scatter_by_class(
                tsne, sub.labels, names, title=f"t-SNE of {m} {split} codes (perplexity {used_perplexity:g})",
                xlabel="t-SNE 1", ylabel="t-SNE 2"),
            "tsne_kmeans": plots.scatter_by_class(
                tsne, km_labels, [f"cluster {i}" for i in range(k)], xlabel="t-SNE 1", ylabel="t-SNE 2",
                title=f"t-SNE coloured by k-means (k={k}): NMI {km_metrics['nmi']:.3f}, ARI {km_metrics['ari']:.3f}"),
            "tsne_ekm": plots.scatter_by_class(
                tsne, ekm.labels_, [f"cluster {i}" for i in range(k)], xlabel="t-SNE 1", ylabel="t-SNE 2",
                title=f"t-SNE coloured by equilibrium k-means (k={k}): NMI {ekm_metrics['nmi']:.3f}, "
                f"ARI {ekm_metrics['ari']:.3f}"),
            "samples": plots.image_grid(samples.numpy(), ncols, title=f"samples ({sampler})"),
            "interpolations": plots.image_grid(
                inter_rows.flatten(0, 1).numpy(), steps + 2,
                title="interpolations: inputs at both ends, decoded (1-t) z_a + t z_b between"),
        }
        if plane is not None:
            figures["latent_plane"] = plots.latent_plane(plane[2].numpy(), plane[0], plane[1],
                                                         title="decoded latent plane (1%-99% of the codes)")
        files = {}
        for name, fig in figures.items():
            path = out / f"{name}.png"
            fig.savefig(path, dpi=110)
            files[name] = str(path)

    with timer("save"):
        np.savez_compressed(
            out / "embeddings.npz", codes=emb.codes, labels=emb.labels, index=emb.index, pca=pca2,
            tsne=tsne, tsne_index=sub_rows.astype(np.int64), kmeans=km_labels, ekm=ekm.labels_,
            class_names=np.array(names),
        )

    # -- TensorBoard: figures, grids, projector ---------------------------------------------------------
    with timer("tensorboard"):
        from torch.utils.tensorboard import SummaryWriter

        tb_dir = tensorboard_dir(trainer, out)
        writer = SummaryWriter(str(tb_dir))
        try:
            for name, fig in figures.items():
                writer.add_figure(f"latent/{name}", fig, global_step=0, close=False)
            writer.add_image("latent/samples_grid", plots.tile_images(samples.numpy(), ncols), 0,
                             dataformats="HW" if samples.shape[1] == 1 else "HWC")
            writer.add_image("latent/interpolations_grid",
                             plots.tile_images(inter_rows.flatten(0, 1).numpy(), steps + 2), 0,
                             dataformats="HW" if samples.shape[1] == 1 else "HWC")
            metadata = {
                "class": [names[i] if i >= 0 else plots.UNLABELLED for i in sub.labels],
                "label": sub.labels.tolist(),
                "kmeans": km_labels.tolist(),
                "ekm": ekm.labels_.tolist(),
            }
            add_projector(writer, sub.codes, metadata, sub.float_images(), tag=f"{split}_codes")
        finally:
            writer.close()

    report: dict[str, Any] = {
        "checkpoint": str(ckpt_path),
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
        "ekm_alpha_default": ekm_alpha is None,
        "ekm_n_iter": int(ekm.n_iter_),
        "ekm_converged": bool(ekm.converged_),
        "class_sizes": np.bincount(sub.labels[labelled], minlength=len(names)).tolist(),
        "pca_explained_variance_ratio": [float(r) for r in ratios],
        "tsne_perplexity": used_perplexity,
        "tsne_iterations": int(tsne_iterations),
        "sampler": sampler,
        "seed": int(seed),
        "output_dir": str(out),
        "tensorboard_dir": str(tb_dir),
        "files": {**files, "embeddings": str(out / "embeddings.npz"), "report": str(out / "latent.json")},
    }
    timer.seconds["total"] = round(sum(timer.seconds.values()), 3)
    report["timings_s"] = dict(timer.seconds)
    (out / "latent.json").write_text(json.dumps(report, indent=2))
    print(format_table(report), flush=True)
    return report


def format_table(report: dict) -> str:
    """The short summary table printed at the end of ``aelab latent``."""
    ratios = report["pca_explained_variance_ratio"]
    rows = [
        ("points / latent_dim", f"{report['n_points']} / {report['latent_dim']} ({report['split']} split)"),
        ("linear probe accuracy", f"{report['probe_accuracy']:.4f} (fit on {report['probe_n_train']} train codes)"),
        (f"k-means (k={report['n_clusters']}) NMI / ARI",
         f"{report['kmeans_nmi']:.4f} / {report['kmeans_ari']:.4f} on {report['n_subset']} codes"),
        ("equilibrium k-means NMI / ARI",
         f"{report['ekm_nmi']:.4f} / {report['ekm_ari']:.4f} (alpha {report['ekm_alpha']:.3g})"),
        ("PCA variance PC1, PC1+2", f"{ratios[0]:.3f}, {sum(ratios[:2]):.3f}"),
        ("time (s)", ", ".join(f"{k} {v:.1f}" for k, v in report["timings_s"].items())),
        ("written to", report["output_dir"]),
        ("projector / TensorBoard", report["tensorboard_dir"]),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"aelab latent ({report['model']}, {report['checkpoint']})"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)
