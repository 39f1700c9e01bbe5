"""Loading model weights from Lightning checkpoints safely (``torch.load(weights_only=True)``)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from lightning.pytorch import LightningModule


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, unsafe to unpickle, or does not fit the model."""


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True, map_location="cpu")`` with clear errors.

    Raises:
        CheckpointError: if the file does not exist, is not a checkpoint, or holds objects that are
            not allowed by ``weights_only=True`` (a checkpoint from an untrusted source is never
            unpickled with arbitrary code).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (expected a .ckpt file written by `aelab fit`)")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"checkpoint {path} holds objects that are not safe to load with weights_only=True "
            f"(refused, nothing was executed): {str(err).splitlines()[0]}"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated or not a checkpoint): {err}") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path} has no 'state_dict' (not a Lightning checkpoint)")
    return ckpt


def load_weights(model: LightningModule, path: str | Path) -> LightningModule:
    """Loads the ``state_dict`` of checkpoint ``path`` into ``model`` (strict), runs the model's
    ``on_load_checkpoint`` hook, and returns the model in eval mode.

    Raises:
        CheckpointError: see :func:`read_checkpoint`, or if the weights do not fit the model
            (another architecture or size), naming the mismatching keys.
    """
    ckpt = read_checkpoint(path)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(model).__name__} with hparams {dict(model.hparams)}: {err}"
        ) from err
    model.on_load_checkpoint(ckpt)  # e.g. the fitted anomaly-score statistics
    return model.eval()
