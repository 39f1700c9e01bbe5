"""Helpers shared by the tests: tiny recipes written from the shipped configs, the small Fashion-5
protocol sizes, a quiet Trainer, and reading TensorBoard event files."""

from __future__ import annotations

import re
from pathlib import Path

import lightning.pytorch as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]

# the Fashion-5 protocol at test size (150 unlabeled + 40 labeled training images, 60 + 20 test images)
FASHION5_SMALL = dict(num_unlabeled=150, num_labeled=40, num_test_normal=60, num_anomalies=20)


def fashion5_kwargs(data_dir: Path, **overrides) -> dict:
    """Keyword arguments of a small ``Fashion5DataModule`` on the synthetic data in ``data_dir``."""
    return {**FASHION5_SMALL, "data_dir": str(data_dir), "download": False, "verify": False, "batch_size": 32,
            **overrides}


def tiny_config(tmp_path: Path, data_dir: Path, recipe: str = "cae.yaml", limit_batches: int = 3,
                max_epochs: int = 2, **model) -> Path:
    """The shipped recipe with a tiny model, synthetic data and a temporary log directory (``tiny.yaml``)."""
    config = yaml.safe_load((ROOT / "configs" / recipe).read_text())
    config["trainer"].update(max_epochs=max_epochs, limit_train_batches=limit_batches, limit_val_batches=2,
                             check_val_every_n_epoch=1, enable_progress_bar=False, enable_model_summary=False)
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    config["model"]["init_args"].update(channels=4, latent_dim=4, hidden_dim=16, **model)
    if config["model"]["init_args"].get("decoder_channels") and "decoder_channels" not in model:
        config["model"]["init_args"]["decoder_channels"] = 4  # a recipe's thin decoder, at test size too
    config["data"]["init_args"].update(data_dir=str(data_dir), download=False, verify=False,
                                        batch_size=32, val_size=60)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fashion5_config(tmp_path: Path, data_dir: Path, recipe: str, **model) -> Path:
    """:func:`tiny_config` of a Fashion-5 recipe at test size, both anomaly kinds."""
    path = tiny_config(tmp_path, data_dir, recipe, **model)
    config = yaml.safe_load(path.read_text())
    config["data"]["init_args"].pop("val_size")
    config["data"]["init_args"].update(anomaly_kind="both", **FASHION5_SMALL)
    path.write_text(yaml.safe_dump(config))
    return path


def tiny_trainer(tmp_path: Path, **kw) -> pl.Trainer:
    """A Trainer without logger, checkpoints, progress bar or summary (one epoch unless told)."""
    kw.setdefault("max_epochs", 1)
    return pl.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kw)


def event_tags(log_dir: Path) -> dict[str, set[str]]:
    """Scalar and image tags of every TensorBoard event file under ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(log_dir.rglob("events.out.tfevents.*"))
    assert events, f"no event file under {log_dir}"
    tags: dict[str, set[str]] = {"scalars": set(), "images": set()}
    for e in events:
        acc = EventAccumulator(str(e), size_guidance={"images": 0})
        acc.Reload()
        tags["scalars"] |= set(acc.Tags()["scalars"])
        tags["images"] |= set(acc.Tags()["images"])
    return tags


def printed_metrics(out: str) -> dict[str, float]:
    """The ``name = value`` pairs of the last ``aelab test results`` line in ``out``."""
    line = [ln for ln in out.splitlines() if ln.startswith("aelab test results")][-1]
    return {k: float(v) for k, v in re.findall(r"(\w+) = ([-\d.e+]+)", line.split("):", 1)[-1])}


def png_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a PNG file in pixels."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size
