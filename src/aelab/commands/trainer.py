"""The Trainer of the CLI: Lightning's Trainer plus the ``evaluate``, ``latent``, ``predict`` and
``export`` subcommands.

LightningCLI builds a subcommand's flags from the signature of the Trainer method of the same name;
each method here is made from the subcommand's settings dataclass (:func:`subcommand_method`) and only
calls the command's ``run_*`` function. ``predict`` is ``aelab predict`` (new data in, one
``predictions.csv`` out); Lightning's own prediction loop stays available on ``lightning.Trainer``.
"""

from __future__ import annotations

from lightning.pytorch import Trainer

from aelab.commands.evaluate import run_evaluate
from aelab.commands.export import run_export
from aelab.commands.latent import run_latent
from aelab.commands.predict import run_predict
from aelab.commands.settings import ExportSettings, PredictSettings, subcommand_method
from aelab.evaluation.settings import EvaluateSettings
from aelab.latent.settings import LatentSettings


class AelabTrainer(Trainer):
    """``lightning.pytorch.Trainer`` with the aelab subcommands."""

    evaluate = subcommand_method(EvaluateSettings, run_evaluate,
                                 "Anomaly-detection report: AUROC / AUPRC of every score, thresholds, figures.")
    latent = subcommand_method(LatentSettings, run_latent,
                               "Latent-space report: embeddings, PCA / t-SNE maps, projector, clustering, samples.")
    predict = subcommand_method(PredictSettings, run_predict,  # type: ignore[assignment]
                                "Score new data: one predictions.csv with score, threshold and is_anomaly per item.")
    export = subcommand_method(ExportSettings, run_export,
                               "Export preprocessing, network and scorer as one ONNX or TorchScript graph.")
