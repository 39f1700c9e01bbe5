"""Running an exported detector (``aelab export`` output) without the training code: ONNX Runtime for
``.onnx`` files, TorchScript for ``.pt`` files, with the input spec from the file's own metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from aelab.checkpoint import CheckpointError


class ExportedModel:
    """An exported detector: ``model(raw) -> (scores (N,) float32, flags (N,) int64)`` for raw inputs
    (uint8 images ``(N, C, H, W)`` or raw rows ``(N, D)`` float32).

    Attributes:
        path: the file; ``format``: ``onnx`` or ``torchscript``.
        meta: the metadata written by ``aelab export`` (``input`` spec, ``score``, ``threshold``, ...).

    Raises:
        CheckpointError: a missing file, a file that is not an aelab export, or (ONNX) no onnxruntime.
    """

    def __init__(self, path: str | Path, batch_size: int = 256) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        if not self.path.is_file():
            raise CheckpointError(f"exported model {self.path} does not exist")
        if self.path.suffix == ".onnx":
            self.format = "onnx"
            try:
                import onnx
                import onnxruntime
            except ImportError as err:
                raise CheckpointError("running an ONNX model needs the export extra: pip install -e '.[export]'") from err
            props = {p.key: p.value for p in onnx.load(str(self.path), load_external_data=False).metadata_props}
            if "aelab" not in props:
                raise CheckpointError(f"{self.path} is not an aelab export (no 'aelab' metadata)")
            self.meta = json.loads(props["aelab"])
            self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        else:
            self.format = "torchscript"
            extra = {"aelab.json": ""}
            try:
                self.module = torch.jit.load(str(self.path), map_location="cpu", _extra_files=extra)
            except RuntimeError as err:
                raise CheckpointError(f"{self.path} is not a TorchScript file ({str(err).splitlines()[0]})") from err
            if not extra["aelab.json"]:
                raise CheckpointError(f"{self.path} is not an aelab export (no aelab.json inside)")
            self.meta = json.loads(extra["aelab.json"])

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    def __call__(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, flags = [], []
        for start in range(0, len(raw), self.batch_size):
            part = raw[start : start + self.batch_size]
            if self.format == "onnx":
                s, f = self.session.run(None, {"input": np.ascontiguousarray(part.numpy())})
                s, f = torch.from_numpy(s), torch.from_numpy(f)
            else:
                with torch.no_grad():
                    s, f = self.module(part)
            scores.append(s)
            flags.append(f)
        return torch.cat(scores), torch.cat(flags)


def predict_exported(model_path: str | Path, input: str | Path, output: str | Path | None = None,
                     batch_size: int = 256) -> Path:
    """``aelab predict --model FILE --data PATH``: score new inputs with an exported detector and write
    ``predictions.csv`` (default: ``predict/`` beside the file). Returns the CSV's path.

    Raises:
        aelab.data.errors.DataError: unreadable inputs or inputs of the wrong shape / columns.
        CheckpointError: see :class:`ExportedModel`.
    """
    from aelab.commands.predict import prediction_columns
    from aelab.data.inputs import read_raw
    from aelab.runs import write_csv

    model = ExportedModel(model_path, batch_size)
    raw, names = read_raw(input, model.meta["input"])
    scores, flags = model(raw)
    out = Path(output) if output and str(output).endswith(".csv") else \
        (Path(output) if output else Path(model_path).parent / "predict") / "predictions.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, prediction_columns(scores, flags, model.threshold, names))
    print(f"aelab predict: wrote {len(raw)} rows to {out} ({int(flags.sum())} flagged; {model.meta['score']} >= "
          f"{model.threshold:.6g}, {model.format} {model_path})", flush=True)
    return out
