"""``aelab evaluate``: every applicable anomaly score of a trained model on the test set, with
thresholds, figures, ``metrics.json``, ``report.md``, ``predictions.csv``, TensorBoard output, and
``scored.ckpt`` (the checkpoint with the scorer fitted here: its score and settings, the latent
statistics of the training items and the deployable threshold)."""

from __future__ import annotations

from typing import Any

from aelab.checkpoint import load_weights, read_checkpoint, save_atomic
from aelab.evaluation.settings import EvaluateSettings
from aelab.evaluation.compute import compute_evaluation
from aelab.evaluation.write import write_evaluation
from aelab.models.base import RECONSTRUCT
from aelab.runs import output_dir, tensorboard_writer
from aelab.scoring.calibrate import calibrate
from aelab.scoring.registry import applicable_scores, check_score
from aelab.scoring.scorer import attach_scorer


def run_evaluate(trainer, model, datamodule, ckpt_path: str | None, s: EvaluateSettings) -> dict[str, Any]:
    """Evaluate ``model`` (weights from ``ckpt_path``) on ``datamodule``'s test set; see the module docstring.

    Returns:
        The content of ``metrics.json``.

    Raises:
        ValueError: no datamodule or no anomaly labels in its test set, a model without reconstructions,
            unknown or inapplicable score names or settings.
        aelab.checkpoint.CheckpointError: missing or unsafe checkpoint.
    """
    if datamodule is None:
        raise ValueError("aelab evaluate needs a datamodule with anomaly labels (e.g. Fashion5DataModule)")
    if RECONSTRUCT not in model.capabilities:
        raise ValueError(f"aelab evaluate needs an autoencoder (CAE, VAE, SemiSupervisedVAE); got {type(model).__name__}")
    scorer = model.scorer if getattr(model, "scorer", None) is not None else attach_scorer(model)
    if ckpt_path:
        load_weights(model, ckpt_path, datamodule)
    names = s.scores or applicable_scores(model)
    settings = {}
    for name in names:
        check_score(model, name, s.overrides(name))
        settings[name] = scorer.settings_for(name, s.overrides(name))
    model.eval().to(trainer.strategy.root_device)
    datamodule.setup("fit")
    if "anomaly" not in datamodule.test_set.extras:
        raise ValueError(f"{type(datamodule).__name__} has no anomaly labels: use an anomaly protocol "
                         "(Fashion5DataModule, AnomalyDataModule, OneClassDataModule, TabularDataModule with labels)")
    print(f"aelab evaluate: {len(names)} scores on {len(datamodule.test_set)} test items "
          f"({type(model).__name__}, {ckpt_path})", flush=True)
    result = compute_evaluation(model, scorer, datamodule, names, settings, s.batch_size, s.seed, s.num_images,
                                ckpt_path)
    out_dir = output_dir("evaluate", ckpt_path, s.output_dir)
    writer = tensorboard_writer(ckpt_path, out_dir)
    try:
        metrics = write_evaluation(result, datamodule.test_set, out_dir, writer)
    finally:
        writer.close()
    if ckpt_path:  # the checkpoint with the scorer fitted here, so `aelab predict` gives the same scores
        if scorer.score in settings:
            scorer.settings = {k: v for k, v in settings[scorer.score].items()}
        calibrate(scorer, model, datamodule.train_set, datamodule.normal_val_set, s.batch_size, s.seed)
        ckpt = read_checkpoint(ckpt_path)
        ckpt["state_dict"].update(scorer.state_dict(prefix="scorer."))
        save_atomic(ckpt, out_dir / "scored.ckpt")
        print(f"aelab evaluate: wrote {out_dir / 'scored.ckpt'} ({scorer.describe()})", flush=True)
    return metrics
