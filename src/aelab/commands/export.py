"""``aelab export`` (written with the export issue)."""

from __future__ import annotations


def run_export(trainer, model, datamodule, ckpt_path, s):
    raise NotImplementedError("aelab export")
