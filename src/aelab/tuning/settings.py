"""The tune YAML (``aelab tune --config tune/cae.yaml``) as a dataclass, and its validation.

Example::

    recipe: configs/cae.yaml          # base LightningCLI recipe (relative to the cwd or this file)
    metric: val_loss                  # logged by the model; the objective (never a test metric)
    direction: minimize
    n_trials: 20                      # total over all runs and workers (resuming tops it up)
    timeout: null                     # seconds per worker, or null
    seed: 0                           # study seed (sampler; recipe seed if it has none)
    sampler: {name: tpe, n_startup_trials: 5}
    pruner: {name: median, n_startup_trials: 4, n_warmup_steps: 3}
    overrides:                        # recipe values set for every trial, not searched
      trainer.max_epochs: 10
    space:
      model.channels: {type: categorical, choices: [8, 16, 32]}
      model.latent_dim: {type: int, low: 4, high: 16}
      model.lr: {type: log_float, low: 1.0e-4, high: 1.0e-2}

Every field can be given on the command line too (``--n_trials 30``), overriding the file; overrides
given on the command line (``--overrides.trainer.limit_train_batches 20`` or ``--overrides
'{trainer.limit_train_batches: 20}'``) are merged key by key into the file's ``overrides``.

Several processes on one study (``--n_jobs N`` here, or the same command started on several machines):
``storage: journal:tune/studies.log`` for processes on one machine, ``storage:
postgresql://user:password@host/dbname`` (a PostgreSQL server, the database created with ``createdb``)
for several machines; the default SQLite file suits one machine (see :mod:`aelab.tuning.storage`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

from jsonargparse import get_loader

from aelab.tuning.samplers import make_pruner, make_sampler
from aelab.tuning.space import Param, SpaceError, check_overrides, parse_space, set_path
from aelab.tuning.storage import journal_path


@dataclass
class TuneSettings:
    """Settings of one ``aelab tune`` study.

    Args:
        recipe: base LightningCLI recipe (a file in configs/), relative to the working directory or
            to the tune YAML (and its parent directory).
        space: searched hyperparameters, ``"model.lr": {type: log_float, low: 1.0e-4, high: 1.0e-2}``;
            types int, float, log_float, categorical (see ``aelab.tuning.space``).
        metric: validation metric logged by the model (objective and pruning monitor).
        direction: ``minimize`` or ``maximize`` the metric.
        n_trials: finished (complete + pruned) trials wanted in the study, over all runs and workers;
            re-running tops the study up to this number. ``null``: run until ``timeout``.
        timeout: wall-clock seconds per worker process; no new trial starts after it.
        overrides: recipe values set for every trial but not searched, e.g. ``trainer.max_epochs: 10``.
            Command-line overrides (``--overrides.KEY VALUE``, ``--overrides '{KEY: VALUE}'``) are
            merged key by key into the tune YAML's.
        sampler: ``tpe`` (default), ``random``, ``cmaes``, ``qmc``, ``gp``, ``{name: tpe, <args>}`` or
            ``{class_path: ..., init_args: ...}``; seeded per trial from ``seed``.
        pruner: ``median`` (default), ``hyperband``, ``successive_halving``, ``percentile``,
            ``threshold``, ``wilcoxon``, ``none``, with arguments or as a ``class_path`` likewise.
        seed: study seed: derives each trial's sampler seed; also the recipe's ``seed_everything``
            when the recipe does not pin one.
        study_name: name in the storage (default: the tune YAML's file name without ``.yaml``).
        storage: where the study lives: ``sqlite:///tune/studies.db`` (default, one machine); a journal
            file ``journal:tune/studies.log`` (or ``PATH.log``) for several processes on one machine;
            ``postgresql://user:password@host/dbname`` (any Optuna/SQLAlchemy RDB URL) for workers on
            several machines. An unreachable server is one error naming the URL.
        output_dir: studies are written to ``output_dir/<study_name>/`` (trial logs, best.yaml,
            trials.csv, figures/).
        n_jobs: worker processes started by this command (each runs trials of the same study).
        test_trials: after each complete trial, test its best checkpoint and store the ``test_*``
            metrics as trial user attributes (reported, never optimised).
        figures: write the Optuna figures at the end (a few seconds of matplotlib).
        heartbeat_interval: seconds between heartbeats of a running trial (RDB storages: SQLite,
            PostgreSQL).
        grace_period: seconds without a heartbeat after which a RUNNING trial (of a worker killed on
            any machine) is failed and its budget slot freed; on this machine a trial whose process is
            gone is failed at once (aelab.tuning.storage).
        worker_index: set by ``--n_jobs`` for its worker processes; a worker writes no study outputs.
    """

    # plain `dict` (not dict[str, Any]): jsonargparse would expand `class_path` values inside `Any`
    recipe: str
    space: dict
    metric: str = "val_loss"
    direction: Literal["minimize", "maximize"] = "minimize"
    n_trials: Optional[int] = None
    timeout: Optional[float] = None
    overrides: dict = field(default_factory=dict)
    sampler: Union[str, dict] = "tpe"
    pruner: Union[str, dict, None] = "median"
    seed: int = 0
    study_name: Optional[str] = None
    storage: str = "sqlite:///tune/studies.db"
    output_dir: str = "tune/studies"
    n_jobs: int = 1
    test_trials: bool = True
    figures: bool = True
    heartbeat_interval: int = 20
    grace_period: int = 120
    worker_index: Optional[int] = None


@dataclass
class Plan:
    """A validated study: the settings plus everything derived from them.

    Attributes:
        settings: the settings (``recipe`` made absolute, ``study_name`` filled in).
        params: the search space.
        base: the recipe with the overrides applied and ``seed_everything`` pinned (a config dict).
        study_dir: ``output_dir/study_name``.
    """

    settings: TuneSettings
    params: list[Param]
    base: dict[str, Any]
    study_dir: Path

    @property
    def study_name(self) -> str:
        return self.settings.study_name


def find_recipe(recipe: str, tune_file: str | Path | None = None) -> Path:
    """Locate ``recipe``: as given, else next to the tune YAML, else in its parent directory.

    Raises:
        SpaceError: listing the places tried.
    """
    candidates = [Path(recipe)]
    if tune_file is not None and not Path(recipe).is_absolute():
        here = Path(tune_file).resolve().parent
        candidates += [here / recipe, here.parent / recipe]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise SpaceError(f"recipe {recipe!r}: file not found (tried {', '.join(str(p) for p in candidates)})")


def load_yaml(path: Path) -> dict[str, Any]:
    """Load a YAML file the way LightningCLI does (``1e-4`` is a float)."""
    data = get_loader("yaml")(Path(path).read_text())
    if not isinstance(data, dict):
        raise SpaceError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def prepare(settings: TuneSettings, tune_file: str | Path | None = None) -> Plan:
    """Validate ``settings`` against its recipe and derive the :class:`Plan`.

    Raises:
        SpaceError: with a message naming the offending field or value (recipe, space key,
            overrides key, sampler, pruner, n_trials/timeout, n_jobs, storage).
    """
    s = dataclasses.replace(settings)
    recipe_path = find_recipe(s.recipe, tune_file)
    s.recipe = str(recipe_path)
    recipe = load_yaml(recipe_path)
    if s.n_trials is None and s.timeout is None:
        raise SpaceError("n_trials / timeout: set at least one (a trial count or seconds per worker)")
    if s.n_trials is not None and s.n_trials < 1:
        raise SpaceError(f"n_trials: must be >= 1, got {s.n_trials}")
    if s.timeout is not None and s.timeout <= 0:
        raise SpaceError(f"timeout: must be > 0 seconds, got {s.timeout}")
    if s.n_jobs < 1:
        raise SpaceError(f"n_jobs: must be >= 1, got {s.n_jobs}")
    if s.n_jobs > 1 and s.storage.startswith("sqlite:///:memory:"):
        raise SpaceError("storage: an in-memory database cannot be shared by n_jobs > 1 processes")
    if "://" not in s.storage and journal_path(s.storage) is None:
        raise SpaceError(f"storage {s.storage!r}: expected an RDB URL (sqlite:///tune/studies.db, postgresql://...), "
                         "'journal:PATH' or a PATH ending in .log")
    if not s.metric or s.metric.startswith("test"):
        raise SpaceError(f"metric {s.metric!r}: tune on a validation metric (e.g. val_loss), never on test data")
    params = parse_space(s.space, recipe)
    overrides = check_overrides(s.overrides, recipe, params)
    make_sampler(s.sampler, s.seed)  # validate early; each worker builds its own
    make_pruner(s.pruner)
    if not s.study_name:
        s.study_name = Path(tune_file).stem if tune_file else recipe_path.stem
    base = copy.deepcopy(recipe)
    for path, value in overrides.items():
        set_path(base, path, value)
    seed = base.get("seed_everything")
    if isinstance(seed, bool) or not isinstance(seed, int):
        base["seed_everything"] = s.seed
    return Plan(settings=s, params=params, base=base, study_dir=Path(s.output_dir) / s.study_name)
