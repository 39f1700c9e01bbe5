"""The Python API: an anomaly detector with the estimator contract of scikit-learn and PyOD.

    from aelab import Detector
    detector = Detector.load("lightning_logs/cae/version_0/checkpoints/best.ckpt")
    scores = detector.score_samples(images)        # higher = more anomalous, (N,) float64
    flags = detector.predict(images)               # 1 = anomaly, 0 = normal
    detector.threshold_, detector.decision_function(images)   # score - threshold

``X`` is an image file, an image folder, an IDX image file, a CSV / Parquet table (a path), or data in
memory: uint8 images ``(N, H, W)`` / ``(N, H, W, C)`` / ``(N, C, H, W)`` or float ``(N, C, H, W)`` in [0, 1]
(numpy or torch), or table rows (a pandas DataFrame with the feature columns, or ``(N, D)`` in their
order). Inputs are preprocessed as at training time, and scored by the same code as ``aelab predict``
(eager checkpoints) or by the exported graph (``.onnx`` / ``.pt`` files of ``aelab export``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aelab.checkpoint import CheckpointError, load_weights
from aelab.commands.exported import ExportedModel
from aelab.commands.predict import ensure_calibrated, score_inputs
from aelab.data.datasets import InMemoryDataset
from aelab.runs import run_dir


class Detector:
    """Anomaly detector of a trained aelab model (see the module docstring).

    Args:
        model: a trained autoencoder with a scorer attached (or ``None`` with ``exported``).
        datamodule: its datamodule (the preprocessing of raw inputs; the calibration data).
        exported: an :class:`~aelab.commands.exported.ExportedModel` instead of ``model``.
        batch_size: items per forward pass.
        seed: seeds sampling scores (repeatable numbers).

    Attributes:
        threshold_: the decision threshold, in the score's units (PyOD's name).
    """

    def __init__(self, model=None, datamodule=None, exported: ExportedModel | None = None, batch_size: int = 256,
                 seed: int = 0) -> None:
        self.model, self.datamodule, self.exported = model, datamodule, exported
        self.batch_size, self.seed = batch_size, seed

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def load(cls, checkpoint: str | Path, config: str | Path | None = None, **kwargs) -> Detector:
        """A detector from an ``aelab fit`` checkpoint (with the run's ``config.yaml`` beside it, or
        ``config``), or from an exported ``.onnx`` / ``.pt`` file.

        Raises:
            aelab.checkpoint.CheckpointError: a missing or unsafe file, or no config for a checkpoint.
        """
        path = Path(checkpoint)
        if path.suffix in (".onnx", ".pt"):
            return cls(exported=ExportedModel(path), **kwargs)
        config = Path(config) if config else run_dir(path) / "config.yaml"
        if not config.is_file():
            raise CheckpointError(f"no config for {path}: expected the run's config.yaml at {config} (written by "
                                  "`aelab fit`); pass config=<recipe.yaml>")
        import yaml

        from aelab.cli import build

        recipe = yaml.safe_load(config.read_text()) or {}
        for key in ("ckpt_path", "weights_only"):  # keys of a subcommand, not of the recipe
            recipe.pop(key, None)
        recipe.setdefault("trainer", {}).update(logger=False, enable_progress_bar=False)
        cli = build(recipe, run=False)
        model, datamodule = cli.model, cli.datamodule
        load_weights(model, path, datamodule)
        ensure_calibrated(model, datamodule)
        return cls(model, datamodule, **kwargs)

    def fit(self, datamodule_or_config, **trainer_kwargs) -> Detector:
        """Train: a recipe path runs ``aelab fit --config`` (and loads its best checkpoint); a datamodule
        trains ``self.model`` on it with a Lightning Trainer (``trainer_kwargs``) and calibrates the scorer.
        Returns ``self``."""
        if isinstance(datamodule_or_config, (str, Path)):
            from aelab.cli import build

            cli = build(["fit", "--config", str(datamodule_or_config), *trainer_kwargs.pop("args", [])])
            best = cli.trainer.checkpoint_callback.best_model_path
            fitted = Detector.load(best, run_dir(best) / "config.yaml", batch_size=self.batch_size, seed=self.seed)
            self.model, self.datamodule, self.exported = fitted.model, fitted.datamodule, None
            return self
        import lightning.pytorch as pl

        from aelab.scoring import attach_scorer, calibrate

        if self.model is None:
            raise ValueError("Detector.fit(datamodule) needs Detector(model=...) (or give a recipe path)")
        if getattr(self.model, "scorer", None) is None:
            attach_scorer(self.model)
        pl.Trainer(**{"logger": False, "enable_checkpointing": False, **trainer_kwargs}).fit(
            self.model, datamodule_or_config)
        self.datamodule = datamodule_or_config
        self.datamodule.setup("fit")
        calibrate(self.model.scorer, self.model.eval(), self.datamodule.train_set, self.datamodule.normal_val_set,
                  seed=self.seed)
        return self

    # -- the estimator contract ----------------------------------------------------------------------
    @property
    def threshold_(self) -> float:
        return self.exported.threshold if self.exported is not None else float(self.model.scorer.threshold_)

    def raw(self, X) -> tuple[torch.Tensor, list[str]]:
        """``X`` (module docstring) as raw inputs and item names."""
        if isinstance(X, (str, Path)):
            if self.exported is not None:
                from aelab.data.inputs import read_raw

                return read_raw(X, self.exported.meta["input"])
            return self.datamodule.read_raw(X)
        if self.exported is not None:
            from aelab.data.inputs import as_raw

            raw = as_raw(X, self.exported.meta["input"])
        else:
            raw = self.datamodule.as_raw(X)
        return raw, [str(i) for i in range(len(raw))]

    def _scores_and_flags(self, X) -> tuple[torch.Tensor, torch.Tensor]:
        raw, names = self.raw(X)
        if self.exported is not None:
            return self.exported(raw)
        dataset = InMemoryDataset(raw, torch.full((len(raw),), -1, dtype=torch.long), names=names)
        scores, flags, _ = score_inputs(self.model, dataset, self.datamodule.preprocessor(), self.batch_size,
                                        self.seed)
        return scores, flags

    def score_samples(self, X) -> np.ndarray:
        """Anomaly scores ``(N,)`` float64, higher = more anomalous."""
        return self._scores_and_flags(X)[0].double().numpy()

    def predict(self, X) -> np.ndarray:
        """``(N,)`` int64: 1 where the score reaches the threshold (anomaly), else 0."""
        return self._scores_and_flags(X)[1].long().numpy()

    def decision_function(self, X) -> np.ndarray:
        """``score - threshold_`` ``(N,)`` float64: positive = anomalous (PyOD's sign convention)."""
        return self.score_samples(X) - self.threshold_
