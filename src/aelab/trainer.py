"""The Trainer used by the CLI: Lightning's Trainer plus the ``evaluate`` and ``latent`` subcommands.

LightningCLI builds a subcommand's flags from the signature of the Trainer method of the same name;
each method only forwards to the report function that does the work.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer


def check_weights_only(weights_only: bool | None) -> None:
    """``evaluate`` and ``latent`` accept the ``weights_only`` key that ``fit`` writes into a run's
    ``config.yaml`` (so that file can be passed with ``--config``); aelab always loads checkpoints
    with ``torch.load(weights_only=True)``.

    Raises:
        ValueError: for ``weights_only=False`` (unsafe unpickling is not supported).
    """
    if weights_only is False:
        raise ValueError("weights_only=False is not supported: aelab loads checkpoints with weights_only=True only")


class AelabTrainer(Trainer):
    """``lightning.pytorch.Trainer`` with :meth:`evaluate` and :meth:`latent`."""

    def evaluate(
        self,
        model: LightningModule,
        datamodule: LightningDataModule | None = None,
        ckpt_path: str | None = None,
        output_dir: str | None = None,
        scores: list[str] | None = None,
        threshold_percentile: float = 95.0,
        k_samples: int = 16,
        iwae_samples: int = 64,
        local_sigma: float = 1.0,
        local_top_k: float = 0.0,
        local_residual: str = "squared",
        knn_k: int = 5,
        num_images: int = 8,
        batch_size: int = 256,
        seed: int = 0,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Anomaly-detection report: AUROC/AUPRC of every score, thresholds, figures, report.md.

        Args:
            ckpt_path: checkpoint of a trained model (``aelab fit`` output).
            output_dir: where ``metrics.json``, ``report.md``, the PNG figures and ``scored.ckpt``
                (the checkpoint plus fitted latent statistics and the score settings used, for
                ``aelab predict``) go; default ``<run>/evaluate`` next to the checkpoint's run.
            scores: score names (default: every score that applies to the model; see aelab.scores).
            threshold_percentile: percentile of validation-normal scores used as a threshold.
            k_samples: samples for ``neg_elbo_k`` and ``recon_prob``.
            iwae_samples: importance samples for ``iwae``.
            local_sigma: Gaussian smoothing (pixels) of the ``local_error`` map.
            local_top_k: ``local_error`` averages the top-k percent of the map (0 = its maximum).
            local_residual: the ``local_error`` map: ``squared``, ``absolute``, ``darker`` (input darker
                than its reconstruction: black occlusions) or ``brighter`` (see aelab.scores.residual_map).
            knn_k: neighbours of the ``knn`` latent score.
            num_images: images per figure row.
            batch_size: images per scoring batch.
            seed: seeds the sampling scores and the random image choice.
            weights_only: see :func:`check_weights_only`.
        """
        from aelab.evaluation.report import evaluate_report

        check_weights_only(weights_only)
        return evaluate_report(
            self, model, datamodule, ckpt_path=ckpt_path, output_dir=output_dir, scores=scores,
            threshold_percentile=threshold_percentile, k_samples=k_samples, iwae_samples=iwae_samples,
            local_sigma=local_sigma, local_top_k=local_top_k, local_residual=local_residual, knn_k=knn_k,
            num_images=num_images, batch_size=batch_size, seed=seed,
        )

    def latent(
        self,
        model: LightningModule,
        datamodule: LightningDataModule | None = None,
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
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Latent-space report: embeddings, PCA / t-SNE maps, projector, clustering, samples.

        Args:
            ckpt_path: checkpoint of a trained model (``aelab fit`` output).
            output_dir: where ``embeddings.npz``, figures and ``latent.json`` go (default: next to
                the checkpoint, ``<run>/latent``).
            split: ``train``, ``val`` or ``test``.
            max_points: codes used for t-SNE / clustering / projector (a seeded subset).
            perplexity, tsne_iterations: scikit-learn ``TSNE`` settings.
            n_clusters: clusters for k-means / equilibrium k-means (default: number of classes).
            ekm_alpha: equilibrium k-means ``alpha`` (default: scale-free, derived from the data).
            n_samples: images in the sample and interpolation grids.
            seed: seeds subsets, t-SNE and clustering.
            weights_only: see :func:`check_weights_only`.
        """
        from aelab.latent.report import latent_report

        check_weights_only(weights_only)
        return latent_report(
            self, model, datamodule, ckpt_path=ckpt_path, output_dir=output_dir, split=split,
            max_points=max_points, perplexity=perplexity, tsne_iterations=tsne_iterations,
            n_clusters=n_clusters, ekm_alpha=ekm_alpha, n_samples=n_samples, seed=seed,
        )
