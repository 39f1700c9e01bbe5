"""What ``fit`` and ``test`` need around Lightning's loops: fitting the scorer of the best checkpoint
after training (and writing it into that checkpoint), calibrating before a test when a checkpoint
carries no fitted scorer, the test confusion matrix in TensorBoard with the data's class names, and
no empty run folder left by a fit that failed before its first checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from lightning.pytorch import Callback

from aelab.checkpoint import load_weights, read_checkpoint, save_atomic
from aelab.commands.predict import ensure_calibrated
from aelab.evaluation.plots import confusion_figure
from aelab.scoring.calibrate import calibrate


def calibrate_checkpoint(trainer, model, datamodule, ckpt_path: str, batch_size: int = 500, seed: int = 0) -> str:
    """Load ``ckpt_path`` into ``model``, fit its scorer (statistics on the training items, threshold on
    the normal validation items) and write the scorer's state into the checkpoint file (atomically, by
    the first process). Returns the scorer's description."""
    scorer = model.scorer
    load_weights(model, ckpt_path)
    model.to(trainer.strategy.root_device)
    datamodule.setup("fit")
    calibrate(scorer, model, datamodule.train_set, datamodule.normal_val_set, batch_size, seed)
    if trainer.is_global_zero:
        ckpt = read_checkpoint(ckpt_path)
        ckpt["state_dict"].update({k: v.cpu() if torch.is_tensor(v) else v
                                   for k, v in scorer.state_dict(prefix="scorer.").items()})
        save_atomic(ckpt, ckpt_path)
    trainer.strategy.barrier()
    return scorer.describe()


class TestReport(Callback):
    """Before testing: calibrate the scorer if the checkpoint carries no fitted one. After testing: the
    confusion matrix of a classifier into TensorBoard, rows and columns named by the datamodule's classes."""

    def on_test_start(self, trainer, pl_module) -> None:
        if getattr(pl_module, "scorer", None) is not None and trainer.datamodule is not None:
            with torch.inference_mode(False):
                ensure_calibrated(pl_module, trainer.datamodule)

    def on_test_end(self, trainer, pl_module) -> None:
        matrix = getattr(pl_module, "test_confusion", None)
        if matrix is None or not trainer.is_global_zero:
            return
        names = tuple(getattr(trainer.datamodule, "class_names", ()) or ()) or None
        tb = pl_module.tensorboard()
        if tb is not None:
            tb.experiment.add_figure("test/confusion_matrix", confusion_figure(matrix, names), pl_module.global_step)


RUN_BOOKKEEPING = ("events.out.tfevents.", "hparams.yaml", "config.yaml")


class DiscardFailedRun(Callback):
    """A ``fit`` that fails before it wrote any checkpoint (bad data, a bad setting, Ctrl-C during set-up)
    removes the run folder it created: it holds only TensorBoard bookkeeping, and every failed attempt
    would otherwise add a ``version_N``. A folder with checkpoints (a resumed run) is never touched."""

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if trainer.state.fn != "fit" or not trainer.is_global_zero or trainer.logger is None:
            return
        folder = Path(trainer.logger.log_dir) if trainer.logger.log_dir else None
        if folder is None or not folder.is_dir():
            return
        files = [p for p in folder.rglob("*") if p.is_file()]
        if all(p.parent == folder and p.name.startswith(RUN_BOOKKEEPING) for p in files):
            for logger in trainer.loggers:
                logger.finalize("failed")
            shutil.rmtree(folder, ignore_errors=True)
            if folder.parent.is_dir() and not any(folder.parent.iterdir()):
                folder.parent.rmdir()  # the recipe's folder, if this was its first run
