"""Callbacks: writing ``aelab predict`` outputs to a CSV file users can act on."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import BasePredictionWriter


class PredictionWriter(BasePredictionWriter):
    """Writes the outputs of ``predict_step`` (dicts of tensors) to ``predictions.csv``, one row per image.

    1-D outputs ``(B,)`` become one column each (e.g. ``score``, ``mse``, ``label``, ``pred``); 2-D outputs
    ``(B, K)`` become ``name_0 .. name_{K-1}`` (e.g. the latent ``code``, class ``probs``).

    Args:
        output_dir: folder of the CSV (default: the run's log directory).
    """

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output_dir = output_dir
        self.path: Path | None = None

    def write_on_epoch_end(self, trainer, pl_module, predictions: Any, batch_indices: Any) -> None:
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        if not batches:
            return
        columns: dict[str, torch.Tensor] = {}
        for key in batches[0]:
            value = torch.cat([b[key].detach().cpu() for b in batches])
            if value.ndim == 1:
                columns[key] = value
            else:
                for j in range(value.shape[1]):
                    columns[f"{key}_{j}"] = value[:, j]
        folder = Path(self.output_dir or trainer.log_dir or ".")
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "predictions.csv"
        with open(self.path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", *columns])
            for i in range(len(next(iter(columns.values())))):
                writer.writerow([i, *(_fmt(c[i]) for c in columns.values())])
        print(f"aelab predict: wrote {len(next(iter(columns.values())))} rows to {self.path}", flush=True)


def _fmt(value: torch.Tensor) -> str:
    return str(int(value)) if not value.is_floating_point() else f"{float(value):.6g}"
