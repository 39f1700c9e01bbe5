"""``aelab predict``: decisions on new data with a trained model.

Reads new inputs (an image file or folder, an IDX image file, a CSV / Parquet table; default: the
datamodule's test split), preprocesses them exactly as the training data (size, channels, resize
policy; columns, transforms and the fitted scaler), scores them with the model's scorer and writes
one ``predictions.csv``: the item (file path or row number), ``score``, ``threshold``, ``is_anomaly``,
and for models with a classifier the predicted class and its probability. With ``save_maps``, the
difference maps of flagged images go to ``maps/`` as PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aelab.checkpoint import load_weights
from aelab.commands.settings import PredictSettings
from aelab.data.datasets import InMemoryDataset
from aelab.models.base import CLASSIFY, IMAGES, RECONSTRUCT
from aelab.runs import infer, model_device, output_dir, write_csv
from aelab.scoring.calibrate import calibrate


def ensure_calibrated(model, datamodule, batch_size: int = 500, seed: int = 0) -> None:
    """Calibrate the model's scorer on the datamodule's training / normal validation items if the
    checkpoint did not carry a fitted one (saying so)."""
    scorer = getattr(model, "scorer", None)
    if scorer is None or scorer.fitted:
        return
    if datamodule is None:
        raise ValueError("the checkpoint's scorer is not calibrated and there is no datamodule to calibrate it on")
    print(f"aelab: the checkpoint's scorer is not calibrated ({'; '.join(scorer.notes) or 'no threshold'}); "
          f"fitting it on the training / normal validation data of {type(datamodule).__name__}", flush=True)
    datamodule.setup("fit")
    calibrate(scorer, model, datamodule.train_set, datamodule.normal_val_set, batch_size, seed)


def prediction_columns(scores: torch.Tensor | None, flags: torch.Tensor | None, threshold: float | None,
                       names: list[str], probs: torch.Tensor | None = None,
                       class_names: tuple[str, ...] = ()) -> dict[str, list]:
    """The columns of ``predictions.csv``: ``item``, ``score``, ``threshold``, ``is_anomaly`` (models with a
    scorer) and ``predicted_class`` (+ ``predicted_name``) / ``probability`` (models with a classifier)."""
    columns: dict[str, list] = {"item": list(names)}
    if scores is not None:
        columns["score"] = scores.double().tolist()
        columns["threshold"] = [threshold] * len(scores)
        columns["is_anomaly"] = flags.tolist()
    if probs is not None:
        prob, pred = probs.max(-1)
        columns["predicted_class"] = pred.tolist()
        if class_names:
            columns["predicted_name"] = [class_names[int(p)] for p in pred]
        columns["probability"] = prob.double().tolist()
    return columns


@torch.no_grad()
def score_inputs(model, dataset, preprocess=None, batch_size: int = 256, seed: int = 0
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """``(scores (N,), flags (N,), class probabilities (N, K))`` of every item of ``dataset`` (raw inputs
    passed through ``preprocess`` first, if given); ``None`` for what the model does not offer. The one
    eager scoring path of ``aelab predict`` and :class:`aelab.Detector`."""
    device = model_device(model)
    model.eval()
    pre = preprocess.to(device) if preprocess is not None else (lambda x: x)
    scorer = getattr(model, "scorer", None)
    scores = flags = probs = None
    if scorer is not None:
        torch.manual_seed(seed)
        scores = infer(lambda x: scorer(model, pre(x)), dataset, batch_size, device)
        flags = scorer.flag(scores)
    if CLASSIFY in model.capabilities:
        probs = infer(lambda x: model.classify(pre(x)).softmax(-1), dataset, batch_size, device)
    return scores, flags, probs


def save_difference_maps(model, dataset, flags: list[int], folder: Path, batch_size: int = 64) -> int:
    """PNG maps ``|x - reconstruct(x)|`` (largest over channels, scaled to 0..255) of the flagged images,
    named after the items. Returns how many were written."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    idx = [i for i, f in enumerate(flags) if f]
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        x = dataset[part]["input"].to(model_device(model))
        with torch.no_grad():
            diff = (model.reconstruct(x) - x).abs().amax(1).clamp(0, 1).cpu().numpy()
        for i, d in zip(part, diff):
            name = Path(dataset.names[i]).stem if dataset.names is not None else f"item{i}"
            Image.fromarray(np.round(d * 255).astype(np.uint8)).save(folder / f"{i:06d}_{name}.png")
    return len(idx)


def run_predict(trainer, model, datamodule, ckpt_path: str | None, s: PredictSettings) -> Path:
    """Score new inputs (or the test split) with ``model`` (weights from ``ckpt_path``) and write
    ``predictions.csv``; returns its path.

    Raises:
        aelab.data.errors.DataError: unreadable inputs, or inputs of the wrong shape or columns.
        aelab.checkpoint.CheckpointError: missing or unsafe checkpoint.
    """
    if ckpt_path:
        load_weights(model, ckpt_path, datamodule)
    model.to(trainer.strategy.root_device).eval()
    if datamodule is None:
        raise ValueError("aelab predict needs the datamodule of the training config (--config <run>/config.yaml)")
    ensure_calibrated(model, datamodule, seed=s.seed)
    if s.input:
        raw, names = datamodule.read_raw(s.input)
        dataset = InMemoryDataset(raw, torch.full((len(raw),), -1, dtype=torch.long), names=names)
        preprocess = datamodule.preprocessor()
    else:
        datamodule.setup("test")
        dataset, preprocess = datamodule.test_set, None  # already model inputs
        names = dataset.names or [str(i) for i in range(len(dataset))]
    print(f"aelab predict: {len(dataset)} items from {s.input or 'the test split'}", flush=True)
    scores, flags, probs = score_inputs(model, dataset, preprocess, s.batch_size, s.seed)
    scorer = getattr(model, "scorer", None)
    columns = prediction_columns(scores, flags, float(scorer.threshold_) if scorer is not None else None, names,
                                 probs, tuple(datamodule.class_names))
    out = Path(s.output) if s.output and s.output.endswith(".csv") else output_dir("predict", ckpt_path, s.output) / \
        "predictions.csv"
    write_csv(out, columns)
    flagged = int(flags.sum()) if flags is not None else 0
    print(f"aelab predict: wrote {len(dataset)} rows to {out}" + (f" ({flagged} flagged as anomalies, "
          f"{scorer.describe()})" if flags is not None else ""), flush=True)
    if s.save_maps and flags is not None and RECONSTRUCT in model.capabilities and IMAGES in model.capabilities:
        inputs = dataset if preprocess is None else InMemoryDataset(preprocess(dataset.inputs), dataset.labels,
                                                                    names=dataset.names)
        n = save_difference_maps(model, inputs, flags.tolist(), out.parent / "maps")
        print(f"aelab predict: {n} difference maps in {out.parent / 'maps'}", flush=True)
    return out
