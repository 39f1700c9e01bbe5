"""Checkpoints: safe loading (``torch.load(weights_only=True)``) with clear errors, atomic writing
(a temporary file in the same folder, then a rename: a full disk or a crash never leaves a truncated
file under the final name), and taking the encoder out of a CAE / VAE checkpoint.

A model never reads files: :class:`PretrainedEncoder` reads the checkpoint and hands the model an
encoder module with its weights.
"""

from __future__ import annotations

import glob
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from aelab.nets import ConvEncoder

ARCHITECTURE_KEYS = ("input_shape", "channels", "latent_dim", "hidden_dim", "batch_norm", "num_stages",
                     "activation", "first_kernel", "first_stride")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, unsafe to unpickle, or does not fit the model."""


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True, map_location="cpu")`` with clear errors.

    Raises:
        CheckpointError: if the file does not exist, is not a checkpoint (another file, random bytes,
            a truncated write), or holds objects that ``weights_only=True`` refuses (a checkpoint from
            an untrusted source is never unpickled with arbitrary code; aelab has no unsafe option).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (expected a .ckpt file written by `aelab fit`)")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint (not a zip archive: another "
                              f"file, or a truncated write); give a .ckpt file written by `aelab fit`")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"checkpoint {path} holds objects that are not safe to load (refused with weights_only=True, "
            f"nothing was executed): {str(err).splitlines()[0][:200]}. aelab loads only checkpoints made "
            "of tensors, numbers, strings, lists and dicts; re-export the file from a trusted source"
        ) from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated or corrupt): "
                              f"{str(err).splitlines()[0][:200]}") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path} has no 'state_dict' (not a Lightning checkpoint)")
    return ckpt


def checkpoint_class_path(ckpt: dict) -> str | None:
    """The model class LightningCLI recorded in a checkpoint's hparams (``_class_path``), if any."""
    hparams = ckpt.get("hyper_parameters") or {}
    return hparams.get("_class_path") if isinstance(hparams, dict) else None


def load_weights(model: nn.Module, path: str | Path, datamodule=None) -> nn.Module:
    """Loads the ``state_dict`` of checkpoint ``path`` into ``model`` (strict), after the model's
    ``on_load_checkpoint`` hook, and returns the model in eval mode. With a ``datamodule``, also its state
    as Lightning saved it (``checkpoint[<datamodule class name>]``: e.g. a table scaler fitted at training
    time), so new data is preprocessed as the training data was.

    Raises:
        CheckpointError: see :func:`read_checkpoint`, or if the weights do not fit the model
            (another architecture or size), naming the mismatching keys.
    """
    ckpt = read_checkpoint(path)
    hook = getattr(model, "on_load_checkpoint", None)
    if callable(hook):
        hook(ckpt)  # e.g. a scorer's state that the model does not hold (models.autoencoder)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as err:
        hparams = dict(getattr(model, "hparams", {}) or {})
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(model).__name__} with hparams {hparams}: "
            f"{str(err)[:600]}") from err
    state = ckpt.get(type(datamodule).__qualname__) if datamodule is not None else None
    if state:
        datamodule.load_state_dict(state)
    return model.eval()


def model_from_checkpoint(path: str | Path) -> nn.Module:
    """The model a checkpoint holds, rebuilt from the class LightningCLI recorded (``_class_path``) and
    its hparams, with its weights, in eval mode (no registry of model names: the checkpoint says).

    Raises:
        CheckpointError: see :func:`read_checkpoint`, or a checkpoint without a recorded model class.
    """
    import importlib

    ckpt = read_checkpoint(path)
    class_path = checkpoint_class_path(ckpt)
    if not class_path:
        raise CheckpointError(f"checkpoint {path} does not record its model class (not written by `aelab fit`)")
    module, name = class_path.rsplit(".", 1)
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    return load_weights(getattr(importlib.import_module(module), name)(**hparams), path)


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` through a temporary file in the same folder and ``os.replace``: the
    final name holds either the old file or the complete new one, never a partial write.

    Raises:
        OSError: when the write fails (e.g. a full disk: ``ENOSPC``), after removing the temporary file; the
            message names ``path``. (torch's zip writer turns a failed write into a ``RuntimeError`` whose
            context is the ``OSError``: that case is reported as the ``OSError``.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        cause = err if isinstance(err, OSError) else err.__context__
        if isinstance(cause, OSError):
            reason = cause.strerror or str(cause)
            raise OSError(cause.errno, f"could not write {path} ({reason}); nothing was written under that name, "
                                       f"free some space or choose another folder") from err
        raise
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes every checkpoint with :func:`save_atomic` (used by the CLI
    for all checkpoints: ``best-*``, ``last``, resume files)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        save_atomic(checkpoint, path)


def resolve_checkpoint(pattern: str) -> str:
    """A checkpoint path, or the newest file matching a glob pattern (by modification time), e.g.
    ``lightning_logs/cae/*/checkpoints/last.ckpt``.

    Raises:
        CheckpointError: if a pattern matches no file.
    """
    if not any(c in pattern for c in "*?["):
        return pattern
    matches = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not matches:
        raise CheckpointError(f"no checkpoint matches {pattern!r}: train one first (e.g. "
                              "`aelab fit --config configs/cae.yaml`) or give a path")
    return matches[-1]


class PretrainedEncoder:
    """The convolutional encoder of a CAE / VAE / SemiSupervisedVAE checkpoint, read once.

    Args:
        path: the checkpoint, or a glob pattern (the newest match is used).

    Attributes:
        path: the file that was read.
        architecture: ``input_shape`` and the size options of :class:`~aelab.nets.ConvEncoder` as the
            checkpoint's hparams record them (``out_dim`` included: ``2 * latent_dim`` for a VAE, whose
            first ``latent_dim`` outputs are the posterior mean).
        state_dict: the encoder's weights.

    Raises:
        CheckpointError: missing / unsafe file, or a checkpoint without a convolutional encoder.
    """

    def __init__(self, path: str) -> None:
        self.path = resolve_checkpoint(path)
        ckpt = read_checkpoint(self.path)
        hp = ckpt.get("hyper_parameters", {}) or {}
        state = {k[len("encoder."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
        required = ("input_shape", "channels", "latent_dim", "hidden_dim")
        missing = [k for k in required if k not in hp]
        if missing or not state or len(hp.get("input_shape", ())) != 3:
            raise CheckpointError(f"checkpoint {self.path} has no convolutional encoder to reuse (missing hparams "
                                  f"{missing}, encoder.* weights or image input); expected a CAE or VAE checkpoint")
        matrices = [v for v in state.values() if v.ndim == 2]  # the encoder's head: its last matrix is out_dim
        arch = {k: hp[k] for k in ARCHITECTURE_KEYS if k in hp}
        arch["input_shape"] = tuple(arch["input_shape"])
        arch["out_dim"] = int(matrices[-1].shape[0]) if matrices else int(hp["latent_dim"])
        self.architecture = arch
        self.state_dict = state

    def build(self) -> ConvEncoder:
        """A :class:`~aelab.nets.ConvEncoder` of the checkpoint's architecture, with its weights.

        Raises:
            CheckpointError: if the weights do not fit the recorded architecture.
        """
        a = self.architecture
        encoder = ConvEncoder(a["input_shape"], a["channels"], a["out_dim"], a["hidden_dim"],
                              a.get("num_stages", 3), a.get("batch_norm", False), a.get("activation", "relu"),
                              a.get("first_kernel", 3), a.get("first_stride", 2))
        try:
            encoder.load_state_dict(self.state_dict)
        except RuntimeError as err:
            raise CheckpointError(f"encoder weights in {self.path} do not fit its hparams {a}: {err}") from err
        return encoder
