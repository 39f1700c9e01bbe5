"""Samplers and pruners for ``aelab tune``, named in the tune YAML.

Either a short name, a name with keyword arguments, or any importable class::

    sampler: tpe
    sampler: {name: tpe, n_startup_trials: 5, constant_liar: true}
    pruner: {name: median, n_startup_trials: 4, n_warmup_steps: 3}
    pruner: {name: hyperband, min_resource: 2, max_resource: 12, reduction_factor: 3}
    pruner: none
    pruner: {class_path: my_package.MyPruner, init_args: {...}}

Seeding: a seeded sampler re-created with the same seed on resume (or in a second worker) repeats
the first trials' parameters. :class:`PerTrialSeedSampler` therefore builds the TPE / random / GP
sampler afresh for every trial, seeded from ``(seed, trial.number)``: trial numbers are unique
across workers and runs, so every trial gets its own stream, and a given study seed still
reproduces trial by trial (see :func:`make_sampler` for the other samplers).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler

from aelab.tuning.space import SpaceError, import_object

SAMPLERS = {
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "qmc": "optuna.samplers.QMCSampler",
    "gp": "optuna.samplers.GPSampler",
}
PRUNERS = {
    "none": "optuna.pruners.NopPruner",
    "median": "optuna.pruners.MedianPruner",
    "percentile": "optuna.pruners.PercentilePruner",
    "hyperband": "optuna.pruners.HyperbandPruner",
    "successive_halving": "optuna.pruners.SuccessiveHalvingPruner",
    "threshold": "optuna.pruners.ThresholdPruner",
    "wilcoxon": "optuna.pruners.WilcoxonPruner",
}


def resolve(spec: Any, registry: Mapping[str, str], what: str) -> tuple[type, dict[str, Any]]:
    """``spec`` (name, ``{name: ..., **kwargs}`` or ``{class_path, init_args}``) -> (class, kwargs).

    Raises:
        SpaceError: naming ``what`` (``sampler``/``pruner``) for an unknown name, an unimportable
            class or keyword arguments the class does not accept.
    """
    if spec is None:
        spec = "none"
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, Mapping) and "class_path" in spec:
        extra = set(spec) - {"class_path", "init_args"}
        if extra:
            raise SpaceError(f"{what}: unknown field(s) {sorted(extra)} next to class_path (use init_args)")
        cls = import_object(spec["class_path"], f"{what}.class_path")
        kwargs = dict(spec.get("init_args") or {})
        _check_kwargs(cls, kwargs, what)
        return cls, kwargs
    elif isinstance(spec, Mapping) and "name" in spec:
        name, kwargs = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    else:
        raise SpaceError(f"{what}: expected a name ({', '.join(registry)}), {{name: ..., <arguments>}} or "
                         f"{{class_path: ..., init_args: ...}}, got {spec!r}")
    key = str(name).lower().replace("-", "_")
    if key not in registry:
        raise SpaceError(f"{what}: unknown name {name!r}; expected one of {', '.join(registry)} or a class_path")
    cls = import_object(registry[key], what)
    _check_kwargs(cls, kwargs, what)
    return cls, kwargs


def _check_kwargs(cls: type, kwargs: dict[str, Any], what: str) -> None:
    try:
        inspect.signature(cls).bind_partial(**kwargs)
    except TypeError as err:
        raise SpaceError(f"{what}: {cls.__name__} does not accept {sorted(kwargs)} ({err})") from None


def make_pruner(spec: Any) -> optuna.pruners.BasePruner:
    """Instantiate the pruner named by ``spec`` (see module docstring).

    Raises:
        SpaceError: for a bad name or arguments, or a class that is not an Optuna pruner.
    """
    cls, kwargs = resolve(spec, PRUNERS, "pruner")
    try:
        pruner = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise SpaceError(f"pruner: {cls.__name__}({kwargs}) failed: {err}") from None
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise SpaceError(f"pruner: {cls.__name__} is not an optuna.pruners.BasePruner")
    return pruner


def trial_seed(seed: int, trial_number: int | None) -> int:
    """A 32-bit seed for one trial, derived from the study seed and the trial number (``None``:
    the seed of the instance used outside trials)."""
    entropy = [int(seed) % 2**63] + ([int(trial_number)] if trial_number is not None else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class PerTrialSeedSampler(BaseSampler):
    """Wraps a sampler class; before each trial a fresh instance is created, seeded with
    :func:`trial_seed` ``(seed, trial.number)`` (if the class takes a ``seed``), and every call of
    that trial is delegated to it. Stateless samplers (TPE, random, QMC, GP) keep their behaviour;
    their history comes from the study, not from the instance.

    Args:
        cls: the sampler class, e.g. ``optuna.samplers.TPESampler``.
        kwargs: its other keyword arguments (``seed`` here replaces the study seed).
        seed: the study seed.
    """

    def __init__(self, cls: type, kwargs: Mapping[str, Any], seed: int) -> None:
        self.cls = cls
        self.kwargs = dict(kwargs)
        self.seed = int(self.kwargs.pop("seed", seed))
        self.takes_seed = "seed" in inspect.signature(cls).parameters
        self._inner = self._make(trial_number=None)

    def _make(self, trial_number: int | None) -> BaseSampler:
        kwargs = dict(self.kwargs)
        if self.takes_seed:
            kwargs["seed"] = trial_seed(self.seed, trial_number)
        return self.cls(**kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"PerTrialSeedSampler({self.cls.__name__}({args}), seed={self.seed})"

    def before_trial(self, study, trial) -> None:
        self._inner = self._make(trial.number)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """No-op: seeds are derived per trial (``study.optimize`` calls this at start)."""


#: samplers whose only state is their random stream: re-created and seeded per trial
PER_TRIAL_SEEDED = ("TPESampler", "RandomSampler", "GPSampler")


def make_sampler(spec: Any, seed: int) -> BaseSampler:
    """The sampler named by ``spec`` (default TPE).

    TPE, random and GP samplers are wrapped in :class:`PerTrialSeedSampler` (seeded per trial from
    ``seed``). Samplers that follow a sequence or an evolving state (QMC, CMA-ES, custom classes)
    are created once with ``seed`` itself (if they take one): QMC continues its sequence from the
    storage's trial count, CMA-ES restores its state from the study.

    Raises:
        SpaceError: for a bad name or arguments, or a class that is not an Optuna sampler.
    """
    cls, kwargs = resolve(spec if spec is not None else "tpe", SAMPLERS, "sampler")
    if not (isinstance(cls, type) and issubclass(cls, BaseSampler)):
        raise SpaceError(f"sampler: {cls!r} is not an optuna.samplers.BaseSampler subclass")
    try:
        if cls.__module__.startswith("optuna.") and cls.__name__ in PER_TRIAL_SEEDED:
            return PerTrialSeedSampler(cls, kwargs, seed)
        if "seed" in inspect.signature(cls).parameters:
            kwargs = {"seed": seed, **kwargs}
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise SpaceError(f"sampler: {cls.__name__}({kwargs}) failed: {err}") from None
