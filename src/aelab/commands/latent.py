"""``aelab latent``: the latent-space report of a trained model (compute, then write; see
:mod:`aelab.latent.compute` for what is in it)."""

from __future__ import annotations

import json
from typing import Any

from aelab.checkpoint import load_weights
from aelab.latent.compute import Timer, compute_latent, validate
from aelab.latent.settings import LatentSettings
from aelab.latent.write import format_table, write_latent
from aelab.runs import output_dir, tensorboard_writer


def run_latent(trainer, model, datamodule, ckpt_path: str | None, s: LatentSettings) -> dict[str, Any]:
    """Load ``ckpt_path`` into ``model``, compute the report on ``s.split`` of ``datamodule`` and write it.

    Returns:
        The content of ``latent.json`` (also printed as a short table).

    Raises:
        ValueError: an unknown split, a missing ``ckpt_path`` or out-of-range settings.
        aelab.checkpoint.CheckpointError: if the checkpoint cannot be loaded into ``model``.
    """
    validate(s)
    if not ckpt_path:
        raise ValueError("`aelab latent` needs --ckpt_path (a checkpoint written by `aelab fit`)")
    timer = Timer()
    with timer("load"):
        load_weights(model, ckpt_path, datamodule)
        device = trainer.strategy.root_device
        model.to(device)
    print(f"aelab latent: encoding the {s.split} split ({type(model).__name__}, {ckpt_path})", flush=True)
    result = compute_latent(model, datamodule, s, device, timer)
    out = output_dir("latent", ckpt_path, s.output_dir)
    writer = tensorboard_writer(ckpt_path, out)
    try:
        with timer("write"):
            files = write_latent(result, out, writer)
    finally:
        writer.close()
    report = {"checkpoint": str(ckpt_path), **result.report, "output_dir": str(out),
              "tensorboard_dir": str(writer.log_dir), "files": files}
    timer.seconds["total"] = round(sum(timer.seconds.values()), 3)
    report["timings_s"] = dict(timer.seconds)
    (out / "latent.json").write_text(json.dumps(report, indent=2))
    print(format_table(report), flush=True)
    return report
