"""Writing a :class:`~aelab.latent.compute.LatentResult`: ``embeddings.npz``, ``latent.json``, the PNG
figures, and TensorBoard (figures, image grids and the embedding projector); the printed table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aelab.latent import plots
from aelab.latent.compute import LatentResult

SPRITE_MAX_PIXELS = 8192  # TensorBoard's projector refuses larger sprite images


def fmt(value: float | None, digits: int = 3) -> str:
    """A clustering figure, or ``n/a`` when the data has no labels to compare the clusters with."""
    return "n/a (no labels)" if value is None else f"{value:.{digits}f}"


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


def reconstruction_columns(pairs: torch.Tensor) -> int:
    """Images per row of the reconstruction grid of ``pairs`` ``(2, n, C, H, W)``."""
    return max(1, int(round(math.sqrt(2 * pairs.shape[1]))))


def reconstruction_rows(pairs: torch.Tensor) -> torch.Tensor:
    """``(2, n, C, H, W)`` inputs and reconstructions -> ``(2n, C, H, W)`` laid out as rows of inputs, each
    followed by the row of their reconstructions (:func:`reconstruction_columns` images per row)."""
    ncols = reconstruction_columns(pairs)
    n = pairs.shape[1]
    out = []
    for start in range(0, n, ncols):
        out += [pairs[0, start:start + ncols], pairs[1, start:start + ncols]]
    return torch.cat(out)


def figures(r: LatentResult) -> dict[str, Any]:
    """The report's matplotlib figures (scatter plots always; samples, interpolations and the latent plane
    for images)."""
    rep, split, m, k = r.report, r.report["split"], len(r.sub), r.k
    n, latent_dim = len(r.emb), rep["latent_dim"]
    names = r.names
    figs = {
        "pca": plots.scatter_by_class(
            r.pca2, r.emb.labels, names, title=f"PCA of the {split} codes ({n} points, "
            f"{100 * r.ratios[:2].sum():.1f}% of the variance)", xlabel="PC 1", ylabel="PC 2"),
        "pca_explained_variance": plots.explained_variance(r.ratios, title=f"PCA of the {latent_dim}-D codes"),
        "tsne": plots.scatter_by_class(
            r.tsne, r.sub.labels, names, title=f"t-SNE of {m} {split} codes (perplexity {rep['tsne_perplexity']:g})",
            xlabel="t-SNE 1", ylabel="t-SNE 2"),
        "tsne_kmeans": plots.scatter_by_class(
            r.tsne, r.km_labels, [f"cluster {i}" for i in range(k)], xlabel="t-SNE 1", ylabel="t-SNE 2",
            title=f"t-SNE coloured by k-means (k={k}): NMI {fmt(rep['kmeans_nmi'])}, ARI {fmt(rep['kmeans_ari'])}"),
        "tsne_ekm": plots.scatter_by_class(
            r.tsne, r.ekm_labels, [f"cluster {i}" for i in range(k)], xlabel="t-SNE 1", ylabel="t-SNE 2",
            title=f"t-SNE coloured by equilibrium k-means (k={k}): NMI {fmt(rep['ekm_nmi'])}, "
            f"ARI {fmt(rep['ekm_ari'])}"),
    }
    if r.samples is not None:
        samples, sampler = r.samples
        ncols = max(1, int(round(math.sqrt(len(samples)))))
        figs["samples"] = plots.image_grid(samples.numpy(), ncols, title=f"samples ({sampler})")
        figs["interpolations"] = plots.image_grid(
            r.interpolations.flatten(0, 1).numpy(), r.interpolations.shape[1],
            title="interpolations: inputs at both ends, decoded (1-t) z_a + t z_b between")
    if r.reconstructions is not None:
        figs["reconstructions"] = plots.image_grid(
            reconstruction_rows(r.reconstructions).numpy(), reconstruction_columns(r.reconstructions),
            title=f"{split} images (odd rows) and their reconstructions (even rows)")
    if r.plane is not None:
        figs["latent_plane"] = plots.latent_plane(r.plane[2].numpy(), r.plane[0], r.plane[1],
                                                  title="decoded latent plane (1%-99% of the codes)")
    return figs


def write_latent(r: LatentResult, out: Path, writer) -> dict[str, Any]:
    """Write the figures, ``embeddings.npz`` and the TensorBoard entries (into ``writer``); returns the
    file paths by name (``latent.json`` is written by the caller with the timings)."""
    figs = figures(r)
    files = {}
    for name, fig in figs.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        files[name] = str(path)
    np.savez_compressed(
        out / "embeddings.npz", codes=r.emb.codes, labels=r.emb.labels, index=r.emb.index, pca=r.pca2,
        tsne=r.tsne, tsne_index=r.sub_rows.astype(np.int64), kmeans=r.km_labels, ekm=r.ekm_labels,
        class_names=np.array(r.names),
    )
    for name, fig in figs.items():
        writer.add_figure(f"latent/{name}", fig, global_step=0, close=False)
    if r.samples is not None:
        samples = r.samples[0]
        ncols = max(1, int(round(math.sqrt(len(samples)))))
        formats = "HW" if samples.shape[1] == 1 else "HWC"
        writer.add_image("latent/samples_grid", plots.tile_images(samples.numpy(), ncols), 0, dataformats=formats)
        writer.add_image("latent/interpolations_grid",
                         plots.tile_images(r.interpolations.flatten(0, 1).numpy(), r.interpolations.shape[1]), 0,
                         dataformats=formats)
    if r.reconstructions is not None:
        formats = "HW" if r.reconstructions.shape[2] == 1 else "HWC"
        writer.add_image("latent/reconstructions_grid",
                         plots.tile_images(reconstruction_rows(r.reconstructions).numpy(),
                                           reconstruction_columns(r.reconstructions)), 0, dataformats=formats)
    labelled = r.sub.labels
    metadata = {
        "class": [r.names[i] if i >= 0 else plots.UNLABELLED for i in labelled],
        "label": labelled.tolist(),
        "kmeans": r.km_labels.tolist(),
        "ekm": r.ekm_labels.tolist(),
    }
    add_projector(writer, r.sub.codes, metadata, r.sub.float_images() if r.sub.images is not None else None,
                  tag=f"{r.report['split']}_codes")
    files.update(embeddings=str(out / "embeddings.npz"), report=str(out / "latent.json"))
    return files


def format_table(report: dict) -> str:
    """The short summary table printed at the end of ``aelab latent``."""
    ratios = report["pca_explained_variance_ratio"]
    rows = [
        ("points / latent_dim", f"{report['n_points']} / {report['latent_dim']} ({report['split']} split)"),
        ("linear probe accuracy", f"{report['probe_accuracy']:.4f} (fit on {report['probe_n_train']} train codes)"
         if report["probe_accuracy"] is not None else "none (fewer than two classes among the training codes)"),
        (f"k-means (k={report['n_clusters']}) NMI / ARI",
         f"{fmt(report['kmeans_nmi'], 4)} / {fmt(report['kmeans_ari'], 4)} on {report['n_subset']} codes"),
        ("equilibrium k-means NMI / ARI",
         f"{fmt(report['ekm_nmi'], 4)} / {fmt(report['ekm_ari'], 4)} (alpha {report['ekm_alpha']:.3g})"),
        ("PCA variance PC1, PC1+2", f"{ratios[0]:.3f}, {sum(ratios[:2]):.3f}"),
        ("time (s)", ", ".join(f"{k} {v:.1f}" for k, v in report["timings_s"].items())),
        ("written to", report["output_dir"]),
        ("projector / TensorBoard", report["tensorboard_dir"]),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"aelab latent ({report['model']}, {report['checkpoint']})"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)
