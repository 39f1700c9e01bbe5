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

import os
import sys
import warnings
from argparse import ArgumentError
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from aelab.checkpoint import AtomicCheckpointIO, CheckpointError, checkpoint_class_path, read_checkpoint
from aelab.commands.fit import DiscardFailedRun, TestReport, calibrate_checkpoint
from aelab.commands.trainer import AelabTrainer
from aelab.data import (  # noqa: F401
    AnomalyDataModule,
    ClassificationDataModule,
    DataError,
    Fashion5DataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    OneClassDataModule,
    TabularDataModule,
)
from aelab.models import CAE, VAE, AutoencoderModule, EncoderClassifier, SemiSupervisedVAE  # noqa: F401
from aelab.runs import RESUME_CHECKPOINT, newest_resumable_run, run_dir, run_parts
from aelab.scoring.scorer import Scorer, attach_scorer
from aelab.training import LineProgress

AELAB_SUBCOMMANDS = ("evaluate", "latent", "export")
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


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

    # -- before anything is built: the checkpoint, the run folder, the logger -------------------------
    def _parse_ckpt_path(self) -> None:
        """Read ``--ckpt_path`` safely first (one clear error for a missing, corrupt or unsafe file) and
        refuse a checkpoint of another model class than the config's; then Lightning merges its hparams."""
        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if ckpt_path and ckpt_path not in LIGHTNING_CKPT_NAMES:
            ckpt = read_checkpoint(ckpt_path)
            saved, wanted = checkpoint_class_path(ckpt), self.config[sub]["model"].get("class_path")
            if saved and wanted and saved != wanted:
                raise CheckpointError(f"checkpoint {ckpt_path} holds a {saved.rsplit('.', 1)[-1]} ({saved}), the "
                                      f"config a {wanted.rsplit('.', 1)[-1]} ({wanted}): give the run's own config "
                                      "(<run>/config.yaml) or a checkpoint of the configured model")
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        """Run folders: ``fit --ckpt_path last`` resumes the newest run of the recipe in its own folder, and
        ``fit`` / ``test`` / ``validate`` of a run's own checkpoint continue or log in that run; ``predict`` / ``evaluate`` /
        ``latent`` / ``export`` make no run folder (they write beside the checkpoint); an explicit
        ``--trainer.default_root_dir`` moves the recipe's logs there."""
        sub = self.subcommand
        config = self.config[sub] if sub else self.config
        trainer = config["trainer"]
        logger = trainer.get("logger")
        tb = logger if getattr(logger, "class_path", "").endswith("TensorBoardLogger") else None
        if tb is not None and trainer.get("default_root_dir"):
            tb.init_args.save_dir = str(trainer["default_root_dir"])
        if sub in AELAB_SUBCOMMANDS + ("predict",):
            trainer["logger"] = False
        elif sub == "fit" and config.get("ckpt_path") == "last":
            if tb is None:
                raise ValueError("--ckpt_path last needs the recipe's TensorBoardLogger (it names the runs to resume)")
            run = newest_resumable_run(tb.init_args.save_dir, tb.init_args.name)
            if run is None:
                raise CheckpointError(f"--ckpt_path last: no run of {tb.init_args.name!r} under {tb.init_args.save_dir} "
                                      f"has checkpoints/{RESUME_CHECKPOINT}.ckpt to resume from")
            tb.init_args.version = run.name
            config["ckpt_path"] = str(run / "checkpoints" / f"{RESUME_CHECKPOINT}.ckpt")
            print(f"aelab fit: resuming {run} from {config['ckpt_path']}", flush=True)
        elif sub in ("fit", "test", "validate") and tb is not None and config.get("ckpt_path") \
                and config["ckpt_path"] not in LIGHTNING_CKPT_NAMES:
            parts = run_parts(config["ckpt_path"])  # a run's own checkpoint: continue / log in that run
            if parts is not None:
                tb.init_args.save_dir, tb.init_args.name, tb.init_args.version = (str(parts[0]), parts[1], parts[2])

    def instantiate_trainer(self, **kwargs):
        extra = []
        if self.subcommand == "fit":  # the state after every epoch, for `--ckpt_path last`
            extra.append(ModelCheckpoint(filename=RESUME_CHECKPOINT, save_top_k=1, enable_version_counter=False))
        if not sys.stderr.isatty():  # a log file: lines instead of a progress bar
            kwargs["enable_progress_bar"] = False
            extra.append(LineProgress())
        save_config = self.save_config_callback
        if self.subcommand != "fit":  # `test` / `validate` log into the run but keep the run's own config.yaml
            self.save_config_callback = None
        try:
            trainer = super().instantiate_trainer(**kwargs)
        finally:
            self.save_config_callback = save_config
        trainer.callbacks.extend(extra)
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
            if self.trainer.is_global_zero:
                print(f"aelab fit: scorer of {best}: {described}", flush=True)
        if not config.get("test_after_fit", True):
            return
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None)
        self._print_test_metrics(ckpt_path=best or None)

    def after_test(self) -> None:
        self._print_test_metrics(ckpt_path=self.config[self.subcommand].get("ckpt_path"))

    def _print_test_metrics(self, ckpt_path: str | None) -> None:
        if not self.trainer.is_global_zero:
            return
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
    defaults["callbacks"] = [TestReport(), DiscardFailedRun(), *(extra if isinstance(extra, list) else [extra])]
    kwargs.setdefault("save_config_kwargs", {"overwrite": True})  # a resumed run rewrites its config.yaml
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


EXPECTED_ERRORS = (DataError, CheckpointError, ValueError, FloatingPointError, OSError, ImportError)
TRACEBACK_VARIABLE = "AELAB_TRACEBACK"


def one_line(message: str) -> str:
    """jsonargparse's multi-line parse error (a typo in a config, an option a subcommand does not take) as
    one line: the key, the class and the offending option or value, without the union bookkeeping."""
    skip = ("Subtypes:", "Given value type:", "Errors:", "Does not validate against any of the Union subtypes",
            "Expected a <class 'NoneType'>")
    parts = [line.strip().lstrip("-").strip() for line in message.splitlines()]
    text = ""
    for part in (p for p in parts if p and not p.startswith(skip)):
        text += (" " if not text or text.endswith(":") else "; ") + part
    return text.strip()


def dispatch(argv: list[str]) -> None:
    """``aelab tune ...`` to :func:`aelab.tuning.main` (with :func:`build`), ``aelab predict --model FILE``
    to the exported model's runner, everything else to LightningCLI."""
    if argv[:1] in (["-h"], ["--help"]):  # `tune` is dispatched here, not a LightningCLI subcommand
        try:
            build(argv)
        except SystemExit:  # after LightningCLI's help, whose subcommand list this line continues
            print(f"    {'tune':<20}Optuna hyperparameter search (aelab tune --help).", flush=True)
            raise
        return
    if argv[:1] == ["tune"]:
        from aelab.tuning import main as tune_main

        tune_main(argv[1:], build)
        return
    if argv[:1] == ["predict"]:
        if predict_exported_args(argv):
            return
        argv = predict_args(argv)
    build(argv, parser_kwargs={"exit_on_error": False})  # parse errors reach main() as ArgumentError


def main(args: list[str] | None = None) -> None:
    """Console-script entry point (returns ``None``: a returned CLI object would exit 1).

    Expected errors (bad data, a bad or unsafe checkpoint, a bad setting, a NaN loss, a full disk, a
    missing extra) print one line, ``aelab: error: <message>``, and exit with status 1; set the environment
    variable ``AELAB_TRACEBACK=1`` for the full traceback. Ctrl-C exits with 130.
    """
    argv = sys.argv[1:] if args is None else list(args)
    # the CLI hands LightningCLI the (possibly rewritten) arguments; sys.argv is kept for DDP's launcher
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    try:
        dispatch(argv)
    except KeyboardInterrupt:
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        print("aelab: interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except ArgumentError as err:  # a parse error: its traceback says nothing more
        sub = next((a for a in argv if not a.startswith("-")), "")
        print(f"aelab: error: {one_line(str(err))} (`aelab {sub} --help` lists the options)".replace("  ", " "),
              file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except EXPECTED_ERRORS as err:
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        message = str(err).strip() or type(err).__name__
        print(f"aelab: error: {message}\n(set {TRACEBACK_VARIABLE}=1 for the full traceback)", file=sys.stderr,
              flush=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
