"""The ``aelab`` command: LightningCLI with fit / validate / test, the aelab subcommands ``evaluate``,
``latent``, ``predict`` and ``export`` (:class:`aelab.commands.trainer.AelabTrainer`), and ``aelab tune``
(:mod:`aelab.tuning`). The CLI only wires: it links the datamodule's input shape to the model,
attaches the scorer configured under ``scorer:``, fits it after training, and hands ``tune`` the recipe
builder.

``aelab fit --config configs/cae.yaml`` trains, fits the scorer of the best checkpoint (and writes it
into that file), then (``test_after_fit: true``, the default) tests the best checkpoint and prints the
test metrics. Short class names (``--model=CAE``) resolve for the classes imported here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from aelab.checkpoint import AtomicCheckpointIO
from aelab.commands.fit import TestReport, calibrate_checkpoint
from aelab.commands.trainer import AelabTrainer
from aelab.data import (  # noqa: F401
    AnomalyDataModule,
    ClassificationDataModule,
    Fashion5DataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    OneClassDataModule,
    TabularDataModule,
)
from aelab.models import CAE, VAE, AutoencoderModule, EncoderClassifier, SemiSupervisedVAE  # noqa: F401
from aelab.runs import run_dir
from aelab.scoring.scorer import Scorer, attach_scorer

AELAB_SUBCOMMANDS = ("evaluate", "latent", "export")


class AelabCLI(LightningCLI):
    """LightningCLI subclass: links the datamodule's ``input_shape`` to the model, attaches and fits the
    scorer, tests after fit, and adds the aelab subcommands (see :class:`aelab.commands.trainer.AelabTrainer`)."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        commands = LightningCLI.subcommands()
        for name in AELAB_SUBCOMMANDS:
            commands[name] = {"model", "datamodule"}
        return commands

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")
        parser.add_argument(
            "--test_after_fit", type=bool, default=True,
            help="after `fit`, evaluate the best checkpoint (by the checkpoint monitor) on the test set",
        )
        parser.add_class_arguments(Scorer, "scorer", fail_untyped=False)

    def instantiate_trainer(self, **kwargs):
        trainer = super().instantiate_trainer(**kwargs)
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()  # no truncated checkpoint under a final name
        return trainer

    def after_instantiate_classes(self) -> None:
        if isinstance(self.model, AutoencoderModule):
            scorer = self.config_init[self.subcommand]["scorer"] if self.subcommand else self.config_init["scorer"]
            attach_scorer(self.model, scorer)

    def after_fit(self) -> None:
        config = self.config[self.subcommand]
        if self.trainer.interrupted or self.trainer.fast_dev_run:
            return
        callback = self.trainer.checkpoint_callback
        best = getattr(callback, "best_model_path", "") if callback is not None else ""
        if best and getattr(self.model, "scorer", None) is not None:
            described = calibrate_checkpoint(self.trainer, self.model, self.datamodule, best)
            print(f"aelab fit: scorer of {best}: {described}", flush=True)
        if not config.get("test_after_fit", True):
            return
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None)
        self._print_test_metrics(ckpt_path=best or None)

    def after_test(self) -> None:
        self._print_test_metrics(ckpt_path=self.config[self.subcommand].get("ckpt_path"))

    def _print_test_metrics(self, ckpt_path: str | None) -> None:
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test_")}
        text = ", ".join(f"{k} = {v:.5f}" for k, v in sorted(metrics.items()))
        source = f" (checkpoint {ckpt_path})" if ckpt_path else ""
        print(f"aelab test results{source}: {text}", flush=True)


def build(args: list[str] | dict | None = None, run: bool = True, **kwargs) -> AelabCLI:
    """Create the CLI. ``run=False`` with a config dict only instantiates ``model``, ``datamodule`` and
    ``trainer`` (used by ``aelab tune`` to build one Trainer per trial from a recipe, and by
    :class:`aelab.Detector`)."""
    defaults = dict(kwargs.pop("trainer_defaults", None) or {})
    extra = defaults.get("callbacks") or []
    defaults["callbacks"] = [TestReport(), *(extra if isinstance(extra, list) else [extra])]
    return AelabCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_class=AelabTrainer,
        trainer_defaults=defaults,
        args=args,
        run=run,
        **kwargs,
    )


def predict_args(argv: list[str]) -> list[str]:
    """``aelab predict --data PATH``: a path to new data (a file or folder that is not a YAML / JSON
    config) means ``--input PATH``; ``--data`` keeps its LightningCLI meaning otherwise. Without
    ``--config``, the run's ``config.yaml`` beside ``--ckpt_path`` is used."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--data":
            value = out[i + 1]
            if Path(value).exists() and Path(value).suffix.lower() not in (".yaml", ".yml", ".json"):
                out[i], out[i + 1] = "--input", value
    if "--config" not in out and "-c" not in out and "--ckpt_path" in out[:-1]:
        run_config = run_dir(out[out.index("--ckpt_path") + 1]) / "config.yaml"
        if run_config.is_file():
            out[1:1] = ["--config", str(run_config)]
    return out


def predict_exported_args(argv: list[str]) -> bool:
    """``aelab predict --model FILE.onnx|FILE.pt --data PATH [--output OUT]``: run an exported detector
    (no config, no checkpoint). Returns whether ``argv`` was such a call (and ran it)."""
    if "--model" not in argv[:-1]:
        return False
    model = argv[argv.index("--model") + 1]
    if Path(model).suffix not in (".onnx", ".pt"):
        return False
    from aelab.commands.exported import predict_exported

    value = {flag: argv[argv.index(flag) + 1] for flag in ("--data", "--input", "--output") if flag in argv[:-1]}
    data = value.get("--data", value.get("--input"))
    if data is None:
        raise SystemExit("aelab predict --model FILE needs --data PATH (an image file or folder, an IDX file, a table)")
    predict_exported(model, data, value.get("--output"))
    return True


def main(args: list[str] | None = None) -> None:
    """Console-script entry point (returns ``None``: a returned CLI object would exit 1).

    ``aelab tune ...`` is handed to :func:`aelab.tuning.main` (with :func:`build`); everything else to
    LightningCLI.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["tune"]:
        from aelab.tuning import main as tune_main

        tune_main(argv[1:], build)
        return
    if argv[:1] == ["predict"]:
        if predict_exported_args(argv):
            return
        argv = predict_args(argv)
    build(argv)


if __name__ == "__main__":
    main()
