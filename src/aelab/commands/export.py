"""``aelab export``: preprocessing, network and scorer as one graph (ONNX or TorchScript).

The exported graph takes a batch of raw inputs (uint8 images ``(N, C, H, W)`` of the training size, or
raw table rows ``(N, D)`` float32 in the training feature order) and returns ``score`` ``(N,)`` float32
and ``is_anomaly`` ``(N,)`` int64 (``score >= threshold``). Its metadata (``aelab`` key, JSON) holds the
input spec (how files are read), the score, its settings and the threshold, so
:class:`aelab.commands.exported.ExportedModel` and ``aelab predict --model FILE`` need nothing else.

After writing, the file is run on up to 512 test items and compared with eager PyTorch: the export
fails unless ``max |score_exported - score_eager| <= 1e-5 * max(1, |score|)`` for every item and the
flags are identical (anomalib's users report exported models that score differently from the trained
ones: its issues #2686, #2448, #2944).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from lightning.pytorch import LightningModule
from torch import nn

from aelab.checkpoint import load_weights
from aelab.commands.predict import ensure_calibrated
from aelab.commands.settings import ExportSettings
from aelab.runs import output_dir
from aelab.scoring.calibrate import calibrate
from aelab.scoring.registry import SCORES, check_score

FORMATS = ("onnx", "torchscript")
PARITY_ITEMS = 512
PARITY_TOLERANCE = 1e-5


class DetectorGraph(nn.Module):
    """Raw inputs -> ``(score (N,) float32, is_anomaly (N,) int64)``: the datamodule's preprocessing module,
    the model, and the model's scorer (with its threshold), in one module."""

    def __init__(self, preprocess: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.model = model

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score = self.model.scorer(self.model, self.preprocess(raw)).float()
        return score, (score >= self.model.scorer.threshold_.float()).to(torch.int64)


def export_error(name: str) -> str:
    exportable = [n for n, spec in SCORES.items() if spec.exportable]
    return (f"score {name!r} cannot be exported (it draws random samples or runs Python code outside the "
            f"graph); exportable scores: {exportable} (choose one with --score)")


def write_onnx(graph: DetectorGraph, example: torch.Tensor, path: Path, meta: dict) -> None:
    """``torch.onnx.export`` (the dynamo exporter; dynamic batch size) with ``meta`` as metadata.

    Raises:
        ImportError: ``onnx`` / ``onnxscript`` missing (the ``export`` extra).
    """
    try:
        import onnx
    except ImportError as err:
        raise ImportError("ONNX export needs the export extra: pip install -e '.[export]'") from err
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(graph, (example,), dynamo=True, input_names=["input"],
                                    output_names=["score", "is_anomaly"],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {"aelab": json.dumps(meta)})
    onnx.save(proto, str(path))


def write_torchscript(graph: DetectorGraph, example: torch.Tensor, path: Path, meta: dict) -> None:
    """``torch.jit.trace`` of the graph, saved with ``aelab.json`` (``meta``) as an extra file."""
    modules = [m for m in graph.modules() if isinstance(m, LightningModule)]
    for m in modules:
        m._jit_is_scripting = True  # Lightning's flag: no `trainer` lookups while tracing
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(graph, (example,), check_trace=False)
    finally:
        for m in modules:
            m._jit_is_scripting = False
    torch.jit.save(traced, str(path), _extra_files={"aelab.json": json.dumps(meta)})


def export_graph(graph: DetectorGraph, example: torch.Tensor, path: str | Path, fmt: str, meta: dict) -> Path:
    """Write ``graph`` as ``fmt`` to ``path`` through a temporary file and a rename (atomic).

    Raises:
        ValueError: an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        (write_onnx if fmt == "onnx" else write_torchscript)(graph.eval(), example, Path(tmp), meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def metadata(model, datamodule, ckpt_path: str | None) -> dict:
    """What an exported file needs to be used alone: the input spec, the score and threshold, names."""
    scorer = model.scorer
    return {"input": datamodule.input_spec(), "score": scorer.score, "settings": scorer.settings_for(scorer.score),
            "threshold": float(scorer.threshold_), "threshold_rule": [scorer.threshold, scorer.threshold_value],
            "model": type(model).__name__, "checkpoint": str(ckpt_path) if ckpt_path else None,
            "class_names": list(datamodule.class_names)}


def parity(graph: DetectorGraph, exported, raw: torch.Tensor) -> dict:
    """Scores of ``raw`` by the eager ``graph`` and the ``exported`` model: the largest relative
    difference ``|a - b| / max(1, |a|)`` and the number of differing flags."""
    with torch.no_grad():
        eager_scores, eager_flags = graph(raw)
    scores, flags = exported(raw)
    rel = ((scores.double() - eager_scores.double()).abs() / eager_scores.double().abs().clamp_min(1)).max()
    return {"items": int(len(raw)), "max_relative_difference": float(rel),
            "flag_differences": int((flags != eager_flags).sum())}


def run_export(trainer, model, datamodule, ckpt_path: str | None, s: ExportSettings) -> Path:
    """Export ``model`` (weights from ``ckpt_path``) with its calibrated scorer; see the module docstring.

    Raises:
        ValueError: no scorer, a score that cannot be exported, an unknown format, or a parity failure.
        aelab.checkpoint.CheckpointError: missing or unsafe checkpoint.
    """
    if getattr(model, "scorer", None) is None:
        raise ValueError(f"aelab export needs an autoencoder with a scorer; got {type(model).__name__}")
    if s.format not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {s.format!r}")
    if ckpt_path:
        load_weights(model, ckpt_path, datamodule)
    model.eval().to("cpu")
    scorer = model.scorer
    if s.score is not None and s.score != scorer.score:
        check_score(model, s.score)
        scorer.score, scorer.settings = s.score, {}
        scorer.reset()
    if not SCORES[scorer.score].exportable:
        raise ValueError(export_error(scorer.score))
    if not scorer.fitted:
        datamodule.setup("fit")
        if s.score is not None:
            calibrate(scorer, model, datamodule.train_set, datamodule.normal_val_set)
        else:
            ensure_calibrated(model, datamodule)
    datamodule.setup("test")
    graph = DetectorGraph(datamodule.preprocessor(), model).eval()
    raw = datamodule.raw_test_inputs()[:PARITY_ITEMS]
    meta = metadata(model, datamodule, ckpt_path)
    suffix = ".onnx" if s.format == "onnx" else ".pt"
    path = Path(s.output) if s.output else output_dir("export", ckpt_path) / f"detector{suffix}"
    export_graph(graph, raw[: max(1, s.batch_size)], path, s.format, meta)
    print(f"aelab export: wrote {path} ({s.format}; {scorer.describe()})", flush=True)
    if s.check:
        from aelab.commands.exported import ExportedModel

        result = parity(graph, ExportedModel(path), raw)
        print(f"aelab export: parity on {result['items']} test items: max |score_{s.format} - score_eager| / "
              f"max(1, |score|) = {result['max_relative_difference']:.2e}, {result['flag_differences']} flags "
              "differ", flush=True)
        if result["max_relative_difference"] > PARITY_TOLERANCE or result["flag_differences"]:
            raise ValueError(f"the exported model scores differently from the trained one: {result}")
    return path
