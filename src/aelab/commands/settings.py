"""One settings dataclass per subcommand (``EvaluateSettings`` in :mod:`aelab.evaluation.settings`,
``LatentSettings`` in :mod:`aelab.latent.settings`, the two below). The same class defines the
command-line flags (the Trainer method of the subcommand gets its signature from it,
:func:`subcommand_method`) and is what the command's code receives, so a flag and the value the code
reads have one name."""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass, fields
from typing import Any, Callable, get_type_hints

from lightning.pytorch import LightningDataModule, LightningModule


@dataclass
class PredictSettings:
    """Settings of ``aelab predict``.

    Args:
        input: new data to score: an image file, a folder of images, an IDX image file, a CSV / Parquet
            table (``--data PATH`` means the same); default: the datamodule's test split.
        output: ``predictions.csv``, or a folder for it (default: ``<run>/predict/`` beside the
            checkpoint's run, not a new log version).
        save_maps: also write the difference maps of flagged images as PNG (``maps/`` beside the CSV).
        batch_size: items per batch.
        seed: seeds sampling scores.
    """

    input: str | None = None
    output: str | None = None
    save_maps: bool = False
    batch_size: int = 256
    seed: int = 0


@dataclass
class ExportSettings:
    """Settings of ``aelab export``.

    Args:
        format: ``onnx`` or ``torchscript``.
        output: the file to write (default: ``<run>/export/detector.onnx`` or ``detector.pt``).
        score: the score to export (default: the checkpoint's scorer); another one is calibrated first.
        batch_size: the example batch used for tracing (the exported graph takes any batch size).
        check: compare the exported file's scores with eager PyTorch on test items after writing.
    """

    format: str = "onnx"
    output: str | None = None
    score: str | None = None
    batch_size: int = 8
    check: bool = True


def subcommand_method(settings_cls: type, run: Callable[..., Any], doc: str) -> Callable[..., Any]:
    """A Trainer method ``(self, model, datamodule=None, ckpt_path=None, <settings fields>,
    weights_only=None)`` whose signature LightningCLI turns into the subcommand's flags; calling it runs
    ``run(trainer, model, datamodule, ckpt_path, settings_cls(**fields))``.

    ``weights_only`` is accepted because ``fit`` writes it into a run's ``config.yaml``; aelab always
    loads checkpoints with ``weights_only=True`` (``False`` is refused).
    """
    hints = get_type_hints(settings_cls)
    kw = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("self", kw), inspect.Parameter("model", kw, annotation=LightningModule),
              inspect.Parameter("datamodule", kw, default=None, annotation=LightningDataModule | None),
              inspect.Parameter("ckpt_path", kw, default=None, annotation=str | None)]
    params += [inspect.Parameter(f.name, kw, default=f.default, annotation=hints[f.name])
               for f in fields(settings_cls)]
    params.append(inspect.Parameter("weights_only", kw, default=None, annotation=bool | None))

    def method(self, model, datamodule=None, ckpt_path=None, weights_only=None, **kwargs):
        if weights_only is False:
            raise ValueError("weights_only=False is not supported: aelab loads checkpoints with weights_only=True only")
        return run(self, model, datamodule, ckpt_path, settings_cls(**kwargs))

    method.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    args = (settings_cls.__doc__ or "").split("Args:", 1)[-1].split("\n\n", 1)[0]
    method.__doc__ = (doc + "\n\nArgs:\n    ckpt_path: checkpoint of a trained model (``aelab fit`` output).\n"
                      + textwrap.indent(textwrap.dedent(args.strip("\n")), "    "))
    return method
