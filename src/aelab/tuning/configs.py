"""Recipe configs of a study: the recipe with the searched values applied, and each trial's own
TensorBoard logger."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from aelab.tuning.settings import Plan
from aelab.tuning.space import set_path

LOGGER_CLASS = "lightning.pytorch.loggers.TensorBoardLogger"


def with_logger(config: dict, save_dir: str | Path, name: str, version: str | None) -> dict:
    """Point ``trainer.logger`` at a TensorBoardLogger(save_dir, name, version), keeping the
    recipe's other TensorBoardLogger arguments; returns ``config`` (modified in place)."""
    trainer = config.setdefault("trainer", {})
    logger = trainer.get("logger")
    init_args = {"default_hp_metric": False}
    if isinstance(logger, dict) and str(logger.get("class_path", "")).endswith("TensorBoardLogger"):
        init_args = dict(logger.get("init_args") or {})
    init_args.update(save_dir=str(save_dir), name=name)
    if version is None:
        init_args.pop("version", None)
    else:
        init_args["version"] = version
    trainer["logger"] = {"class_path": LOGGER_CLASS, "init_args": init_args}
    return config


def apply_params(plan: Plan, values: dict[str, Any]) -> dict:
    """The recipe (with overrides) with the searched ``values`` (``key -> value``) applied."""
    config = copy.deepcopy(plan.base)
    by_key = {p.key: p for p in plan.params}
    for key, value in values.items():
        if key in by_key:
            set_path(config, by_key[key].path, value)
    return config


def trial_config(plan: Plan, values: dict[str, Any], number: int) -> dict:
    """The LightningCLI config of trial ``number``: its own TensorBoard version ``trial_NNNN``."""
    return with_logger(apply_params(plan, values), plan.study_dir, "trials", f"trial_{number:04d}")
