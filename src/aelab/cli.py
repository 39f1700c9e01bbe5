"""The ``aelab`` command: a LightningCLI with fit / validate / test / predict, the ``evaluate`` and
``latent`` reports (:class:`aelab.trainer.AelabTrainer`), and ``aelab tune`` (:mod:`aelab.tuning`).

``aelab fit --config configs/cae.yaml`` trains, then (``test_after_fit: true``, the default) tests the
best checkpoint and prints the test metrics. The CLI only wires: models, datamodules and reports
know nothing about it. Short class names (``--model=CAE``) resolve for the classes imported here.
"""

from __future__ import annotations

import sys

from lightning.pytorch.cli import LightningCLI

from aelab.data import Fashion5DataModule, FashionMNISTDataModule, OneClassDataModule  # noqa: F401
from aelab.models import CAE, VAE, EncoderClassifier, SemiSupervisedVAE  # noqa: F401
from aelab.trainer import AelabTrainer


class AelabCLI(LightningCLI):
    """LightningCLI subclass: links the datamodule's ``image_shape`` to the model, tests after fit, and
    adds the ``evaluate`` and ``latent`` subcommands (see :class:`aelab.trainer.AelabTrainer`)."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        commands = LightningCLI.subcommands()
        commands["evaluate"] = {"model", "datamodule"}
        commands["latent"] = {"model", "datamodule"}
        return commands

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.image_shape", "model.init_args.image_shape", apply_on="instantiate")
        parser.add_argument(
            "--test_after_fit", type=bool, default=True,
            help="after `fit`, evaluate the best checkpoint (by the checkpoint monitor) on the test set",
        )

    def after_fit(self) -> None:
        if not self.config[self.subcommand].get("test_after_fit", True) or self.trainer.interrupted:
            return
        if self.trainer.fast_dev_run:
            return
        callback = self.trainer.checkpoint_callback
        ckpt = "best" if callback is not None and getattr(callback, "best_model_path", "") else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)
        self._print_test_metrics(ckpt_path=getattr(callback, "best_model_path", None) if ckpt else None)

    def after_test(self) -> None:
        self._print_test_metrics(ckpt_path=self.config[self.subcommand].get("ckpt_path"))

    def _print_test_metrics(self, ckpt_path: str | None) -> None:
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test_")}
        text = ", ".join(f"{k} = {v:.5f}" for k, v in sorted(metrics.items()))
        source = f" (checkpoint {ckpt_path})" if ckpt_path else ""
        print(f"aelab test results{source}: {text}", flush=True)


def build(args: list[str] | dict | None = None, run: bool = True, **kwargs) -> AelabCLI:
    """Create the CLI. ``run=False`` with a config dict only instantiates ``model``, ``datamodule``
    and ``trainer`` (used by ``aelab tune`` to build one Trainer per trial from a recipe)."""
    return AelabCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_class=AelabTrainer,
        args=args,
        run=run,
        **kwargs,
    )


def main(args: list[str] | None = None) -> None:
    """Console-script entry point (returns ``None``: a returned CLI object would exit 1).

    ``aelab tune ...`` is handed to :func:`aelab.tuning.main`; everything else to LightningCLI.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["tune"]:
        from aelab.tuning import main as tune_main

        tune_main(argv[1:])
        return
    build(args)


if __name__ == "__main__":
    main()
