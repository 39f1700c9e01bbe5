"""The Optuna study around the Lightning Trainer: objective, workers, resume.

One trial = the recipe + overrides + sampled values, built by ``aelab.cli.build(config, run=False)``
into model, datamodule and Trainer, plus ``PyTorchLightningPruningCallback(trial, monitor=metric)``;
``trainer.fit``; the objective value is the best validation ``metric`` over the epochs (the
ModelCheckpoint's best score when it monitors the same metric, otherwise the last epoch's value).
A complete trial then tests its best checkpoint and stores ``test_*`` metrics (e.g. ``test_mse``)
as user attributes -- reported only, never optimised. Each trial logs to TensorBoard under
``<study_dir>/trials/trial_NNNN`` with its parameters as hparams.

Trial budget: ``n_trials`` counts finished (complete + pruned) trials over every run and worker.
Before each trial a worker fails dead trials (``aelab.tuning.storage``) and stops once finished +
running trials reach ``n_trials`` (``optuna.study.MaxTrialsCallback`` over those states); a trial
that still finds the budget taken when it starts (two workers asking at the same instant) is
marked FAIL with ``user_attrs["surplus"] = True`` and never trains. Re-running the same command
loads the study and runs only the missing trials.

Workers: ``--n_jobs N`` starts N ``python -m aelab tune`` processes on the study, sharing the CPU
cores (:func:`worker_env`); on several machines, start the same command on each with a PostgreSQL
``storage`` (see :mod:`aelab.tuning.storage`). The study header printed first shows the effective
settings, overrides included.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.study import MaxTrialsCallback

from aelab.tuning.configs import trial_config
from aelab.tuning.samplers import make_pruner, make_sampler
from aelab.tuning.settings import Plan, TuneSettings, prepare
from aelab.tuning.space import SpaceError
from aelab.tuning.storage import (
    BUDGET_STATES,
    DONE_STATES,
    WORKER_ATTR,
    count,
    display_url,
    fail_dead_trials,
    make_storage,
    open_study,
    worker_record,
)

class SurplusTrial(Exception):
    """The trial budget was already taken by other workers when this trial started."""


# -- one trial -------------------------------------------------------------------------------------
def _epochs_run(trainer) -> int:
    """Training epochs started (= run) by ``trainer.fit``, pruned ones included."""
    try:
        return int(trainer.fit_loop.epoch_progress.current.ready)
    except AttributeError:  # pragma: no cover - other Lightning versions
        return int(trainer.current_epoch)


def _objective_value(trainer, metric: str) -> float:
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and getattr(ckpt, "monitor", None) == metric and ckpt.best_model_score is not None:
        return float(ckpt.best_model_score)
    if metric not in trainer.callback_metrics:
        raise KeyError(f"metric {metric!r} was not logged; logged metrics: {sorted(trainer.callback_metrics)}")
    return float(trainer.callback_metrics[metric])


def _log_hparams(trainer, number: int, values: dict[str, Any], metrics: dict[str, float]) -> None:
    """TensorBoard HParams entry of a trial: its number and sampled values, with its metrics."""
    logger = trainer.logger
    if logger is None:
        return
    hparams = {"trial": number}
    hparams.update({k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in values.items()})
    logger.log_hyperparams(hparams, {f"hp/{k}": v for k, v in metrics.items() if math.isfinite(v)})
    logger.finalize("success")


class Objective:
    """Callable objective: trains one trial and returns its validation metric (see module doc).

    Args:
        plan: the validated study plan.
        build: the recipe builder, ``build(config_dict, run=False, trainer_defaults=...)`` -> an object with
            ``trainer``, ``model`` and ``datamodule`` (``aelab.cli.build``, handed over by the CLI).
    """

    def __init__(self, plan: Plan, build) -> None:
        self.plan = plan
        self.build = build

    def __call__(self, trial: optuna.Trial) -> float:
        from optuna_integration import PyTorchLightningPruningCallback  # a lightning.pytorch Callback

        s = self.plan.settings
        study = trial.study
        trial.set_user_attr(WORKER_ATTR, worker_record())
        if s.n_trials is not None and count(study, BUDGET_STATES, before=trial.number) >= s.n_trials:
            trial.set_user_attr("surplus", True)
            study.stop()
            raise SurplusTrial(f"trial {trial.number}: the {s.n_trials}-trial budget is already taken")

        values = {p.key: p.suggest(trial) for p in self.plan.params}
        config = trial_config(self.plan, values, trial.number)
        pruning = PyTorchLightningPruningCallback(trial, monitor=s.metric)
        try:
            cli = self.build(config, run=False, trainer_defaults={"callbacks": [pruning]})
        except SystemExit as err:  # jsonargparse rejected the config; its message is on stderr
            raise SpaceError(f"trial {trial.number}: LightningCLI rejected the recipe with overrides and "
                             f"values {values} (see the error above)") from err
        trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
        start = time.perf_counter()
        try:
            trainer.fit(model, datamodule=datamodule)
            pruning.check_pruned()  # only acts under DDP
        except SystemExit as err:  # Lightning turns Ctrl-C into exit(1): let Optuna mark the trial FAIL
            if trainer.interrupted:
                raise KeyboardInterrupt from err
            raise
        except optuna.TrialPruned:
            last = trial.study._storage.get_trial(trial._trial_id).intermediate_values
            _log_hparams(trainer, trial.number, values, {s.metric: float(last[max(last)])} if last else {})
            raise
        finally:
            trial.set_user_attr("epochs", _epochs_run(trainer))
            trial.set_user_attr("fit_seconds", round(time.perf_counter() - start, 2))
        value = _objective_value(trainer, s.metric)
        metrics = {s.metric: value}
        if s.test_trials and math.isfinite(value):
            ckpt = trainer.checkpoint_callback
            ckpt_path = "best" if ckpt is not None and getattr(ckpt, "best_model_path", "") else None
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
            for key, metric in trainer.callback_metrics.items():
                if key.startswith("test_"):
                    trial.set_user_attr(key, float(metric))
                    metrics[key] = float(metric)
        _log_hparams(trainer, trial.number, values, metrics)
        return value


# -- progress --------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ProgressPrinter:
    """Optuna callback: one line per finished trial (number, state, value, test metrics, epochs,
    params, best so far, finished/total), printed with ``flush=True``."""

    def __init__(self, plan: Plan, prefix: str = "") -> None:
        self.plan = plan
        self.prefix = prefix

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        s = self.plan.settings
        if trial.user_attrs.get("surplus"):
            print(f"{self.prefix}trial {trial.number} not run: the trial budget was taken by other workers",
                  flush=True)
            return
        parts = [f"{self.prefix}trial {trial.number:3d} {trial.state.name:8s}"]
        if trial.value is not None:
            parts.append(f"{s.metric}={trial.value:.5g}")
        elif trial.intermediate_values:
            last = max(trial.intermediate_values)
            parts.append(f"{s.metric}@epoch{last}={trial.intermediate_values[last]:.5g}")
        parts += [f"{k}={v:.5g}" for k, v in sorted(trial.user_attrs.items()) if k.startswith("test_")]
        if "epochs" in trial.user_attrs:
            parts.append(f"epochs={trial.user_attrs['epochs']}")
        if trial.duration is not None:
            parts.append(f"({trial.duration.total_seconds():.0f} s)")
        parts.append("params: " + ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items()))
        done = count(study, DONE_STATES)
        total = f"/{s.n_trials}" if s.n_trials is not None else ""
        try:
            best = study.best_trial
            parts.append(f"| best: trial {best.number} {best.value:.5g} | {done}{total} finished")
        except ValueError:
            parts.append(f"| {done}{total} finished")
        print(" ".join(parts), flush=True)


class FailDeadTrials:
    """Optuna callback: before the next trial, fail the trials of dead workers (so they neither
    block the budget nor stay RUNNING)."""

    def __init__(self, grace_period: float, prefix: str = "") -> None:
        self.grace_period = grace_period
        self.prefix = prefix

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        report_dead(fail_dead_trials(study, self.grace_period), self.prefix)


def report_dead(failed: dict[int, str], prefix: str = "") -> None:
    """Print one line per trial failed by :func:`aelab.tuning.storage.fail_dead_trials`."""
    for number, why in sorted(failed.items()):
        print(f"{prefix}trial {number} marked FAIL: {why}", flush=True)


# -- workers ---------------------------------------------------------------------------------------
def _quiet() -> None:
    """Silence per-trial chatter (Lightning's device info, Optuna's own per-trial log lines)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    warnings.filterwarnings("ignore", message=".*treespec.*")


def load_study(plan: Plan) -> optuna.Study:
    """Open the plan's storage and create or load (resume) its study with a fresh sampler/pruner."""
    s = plan.settings
    storage = make_storage(s.storage, s.heartbeat_interval, s.grace_period)
    return open_study(storage, s.study_name, s.direction, make_sampler(s.sampler, s.seed), make_pruner(s.pruner))


def run_worker(plan: Plan, build) -> optuna.Study:
    """Run trials of the plan's study in this process until the budget or the timeout is reached."""
    _quiet()
    s = plan.settings
    study = load_study(plan)
    prefix = f"[worker {s.worker_index}] " if s.worker_index is not None else ""
    report_dead(fail_dead_trials(study, s.grace_period), prefix)
    remaining = None
    if s.n_trials is not None:
        remaining = s.n_trials - count(study, BUDGET_STATES)
        if remaining <= 0:
            print(f"{prefix}study {s.study_name!r} already has its {s.n_trials} trials "
                  f"({count(study, DONE_STATES)} finished); nothing to run", flush=True)
            return study
    callbacks = [ProgressPrinter(plan, prefix), FailDeadTrials(s.grace_period, prefix)]
    if s.n_trials is not None:
        callbacks.append(MaxTrialsCallback(s.n_trials, states=BUDGET_STATES))
    # MaxTrialsCallback stops at the exact budget; the cap (twice the missing trials) only bounds a run
    # whose trials keep failing (a diverging loss raises FloatingPointError: FAIL, replaced by a new trial)
    study.optimize(Objective(plan, build), n_trials=2 * remaining + 1 if remaining is not None else None,
                   timeout=s.timeout, callbacks=callbacks, catch=(SurplusTrial, FloatingPointError),
                   gc_after_trial=True)
    return study


def worker_env(n_jobs: int) -> dict[str, str]:
    """The environment of a worker process: this one's, with the CPU threads shared among the
    ``n_jobs`` workers (``OMP_NUM_THREADS`` = cores // n_jobs, unless already set): n workers each
    running one thread per core oversubscribe the CPU, and PyTorch's spinning threads then make a
    training step many times slower."""
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        env["OMP_NUM_THREADS"] = str(max(1, cores // n_jobs))
    return env


def _spawn_workers(plan: Plan) -> list[int]:
    """Start ``n_jobs`` ``python -m aelab tune`` worker processes on the same study (CPU threads shared,
    see :func:`worker_env`); wait for them."""
    s = plan.settings
    plan.study_dir.mkdir(parents=True, exist_ok=True)
    fields = {k: v for k, v in vars(s).items() if k not in ("n_jobs", "worker_index")}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=".workers_", dir=plan.study_dir,
                                     delete=False) as f:
        yaml.safe_dump(fields, f, sort_keys=False)
        worker_config = f.name
    env = worker_env(s.n_jobs)
    try:
        procs = [
            subprocess.Popen([sys.executable, "-m", "aelab", "tune", "--config", worker_config,
                              "--n_jobs", "1", "--worker_index", str(i)], env=env)
            for i in range(s.n_jobs)
        ]
        try:
            return [p.wait() for p in procs]
        except KeyboardInterrupt:
            for p in procs:
                p.wait()
            raise
    finally:
        os.unlink(worker_config)


def run(settings: TuneSettings, tune_file: str | Path | None = None, build=None) -> optuna.Study:
    """Run (or resume) a study: validate, start ``n_jobs`` workers (or run in this process), then
    write the study outputs (``aelab.tuning.outputs``) unless this process is itself a worker.
    ``build`` is the recipe builder, ``aelab.cli.build`` (handed over by the command line; the tuning
    layer never imports the CLI).

    Raises:
        TypeError: without ``build``.
        aelab.tuning.space.SpaceError: for invalid settings (message names the field).
        RuntimeError: when a worker process exits with an error (after the outputs are written).
    """
    from aelab.tuning.outputs import print_summary, write_outputs

    if build is None:
        raise TypeError("aelab.tuning.run needs the recipe builder: run(settings, build=aelab.cli.build)")
    plan = prepare(settings, tune_file)
    s = plan.settings
    if s.worker_index is None:
        overrides = ", ".join(f"{k}={_fmt(v)}" for k, v in (s.overrides or {}).items()) or "none"
        print(f"aelab tune: study {s.study_name!r} in {display_url(s.storage)}, {s.n_jobs} worker(s), "
              f"{s.n_trials or 'unlimited'} trials, timeout {s.timeout or 'none'}; outputs in {plan.study_dir}\n"
              f"  recipe {s.recipe}; {s.direction} {s.metric}; sampler {s.sampler}; pruner {s.pruner}\n"
              f"  overrides: {overrides}\n  "
              + "\n  ".join(p.describe() for p in plan.params), flush=True)
    failed_workers: list[int] = []
    if s.n_jobs > 1:
        _quiet()
        load_study(plan)  # create storage schema and study once, before the workers race for it
        codes = _spawn_workers(plan)
        failed_workers = [i for i, code in enumerate(codes) if code != 0]
        study = load_study(plan)
    else:
        try:
            study = run_worker(plan, build)
        except KeyboardInterrupt:
            print("interrupted; writing the outputs of the finished trials", flush=True)
            study = load_study(plan)
            if s.worker_index is None:
                write_outputs(study, plan)
            raise
    if s.worker_index is None:
        write_outputs(study, plan)
        print_summary(study, plan)
    if failed_workers:
        raise RuntimeError(f"worker process(es) {failed_workers} failed; see their output above")
    return study
