"""What a study leaves in ``<output_dir>/<study_name>/``:

- ``best.yaml``: a complete LightningCLI config reproducing the best trial: the recipe, the
  overrides and the best parameters, ``seed_everything`` pinned, and its own TensorBoard logger
  name (``<study_name>_best`` in the recipe's log directory). Run ``aelab fit --config best.yaml``.
- ``trials.csv``: ``study.trials_dataframe()`` (one row per trial: number, value, state, params,
  user attributes such as ``test_mse``, ``epochs``, ``fit_seconds``; durations in seconds).
- ``figures/*.png`` (optuna.visualization.matplotlib, Agg backend): optimisation history,
  parallel coordinates, parameter importances (needs >= 2 complete trials and > 1 parameter),
  intermediate values (the validation metric per epoch, pruned trials included).
- ``trials/trial_NNNN/``: each trial's TensorBoard run and checkpoints (written by the trials).

Files are written to a temporary name and renamed, so concurrent writers never leave half files.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from aelab.tuning.configs import apply_params, with_logger
from aelab.tuning.settings import Plan


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def best_config(study: optuna.Study, plan: Plan) -> tuple[dict, optuna.trial.FrozenTrial]:
    """The LightningCLI config of the best trial, with a logger of its own (not the trial's)."""
    best = study.best_trial
    config = apply_params(plan, best.params)
    logger = (config.get("trainer") or {}).get("logger")
    save_dir = "lightning_logs"
    if isinstance(logger, dict) and isinstance(logger.get("init_args"), dict):
        save_dir = logger["init_args"].get("save_dir", save_dir)
    return with_logger(config, save_dir, f"{plan.study_name}_best", None), best


def _brief(overrides: dict) -> str:
    items = [f"{k}={v}" if isinstance(v, (int, float, str, bool, type(None))) else f"{k}=(see below)"
             for k, v in overrides.items()]
    return ", ".join(items) or "none"


def write_best_yaml(study: optuna.Study, plan: Plan) -> Path | None:
    """Write ``best.yaml`` (see module docstring); ``None`` when no trial is complete yet."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    config, best = best_config(study, plan)
    s = plan.settings
    tests = ", ".join(f"{k} = {v:.6g}" for k, v in sorted(best.user_attrs.items()) if k.startswith("test_"))
    header = [
        f"# Best trial of Optuna study {s.study_name!r} ({s.storage}): trial {best.number}, "
        f"{s.metric} = {best.value:.6g} (validation, the tuned metric)"
        + (f"; {tests} (test set, best checkpoint; not used for tuning)" if tests else ""),
        "# Params: " + ", ".join(f"{k}={v}" for k, v in best.params.items()),
        f"# Recipe: {s.recipe}; overrides: {_brief(s.overrides)}; "
        f"seed_everything pinned to {config['seed_everything']}",
        f"# Reproduce: aelab fit --config {plan.study_dir / 'best.yaml'}",
    ]
    path = plan.study_dir / "best.yaml"

    def write(tmp):
        with open(tmp, "w") as f:
            f.write("\n".join(header) + "\n")
            yaml.safe_dump(config, f, sort_keys=False)

    _atomic_write(path, write)
    return path


def write_trials_csv(study: optuna.Study, plan: Plan) -> Path:
    """Write ``trials.csv`` from ``study.trials_dataframe()``."""
    path = plan.study_dir / "trials.csv"
    import pandas as pd

    df = study.trials_dataframe()
    if "duration" in df:  # all None (only running trials): an object column, hence to_timedelta
        df["duration"] = pd.to_timedelta(df["duration"]).dt.total_seconds()
    _atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    return path


def write_figures(study: optuna.Study, plan: Plan) -> dict[str, Path]:
    """Save the Optuna matplotlib figures that the study supports; says why any is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    n_params = len(plan.params)
    figures = {
        "optimization_history": ovm.plot_optimization_history,
        "parallel_coordinate": ovm.plot_parallel_coordinate,
        "param_importances": ovm.plot_param_importances,
        "intermediate_values": ovm.plot_intermediate_values,
    }
    written = {}
    if not complete:
        print("figures skipped: no complete trial yet", flush=True)
        return written
    for name, plot in figures.items():
        if name == "param_importances" and (len(complete) < 2 or n_params < 2):
            print(f"figure {name} skipped: needs >= 2 complete trials and > 1 parameter "
                  f"({len(complete)} complete, {n_params} parameter(s))", flush=True)
            continue
        path = plan.study_dir / "figures" / f"{name}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = plot(study)
            fig = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            fig.set_size_inches(max(fig.get_figwidth(), 8), max(fig.get_figheight(), 5))
            _atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
            written[name] = path
        except Exception as err:  # noqa: BLE001  (a figure must not lose the study's other outputs)
            print(f"figure {name} skipped: {type(err).__name__}: {err}", flush=True)
        finally:
            plt.close("all")
    return written


def write_outputs(study: optuna.Study, plan: Plan) -> dict[str, Path]:
    """Write best.yaml, trials.csv and the figures; returns ``{name: path}`` of what was written."""
    plan.study_dir.mkdir(parents=True, exist_ok=True)
    out = {"trials.csv": write_trials_csv(study, plan)}
    best = write_best_yaml(study, plan)
    if best is not None:
        out["best.yaml"] = best
    if plan.settings.figures:
        out.update(write_figures(study, plan))
    return out


def print_summary(study: optuna.Study, plan: Plan) -> None:
    """Print the trial counts by state and the best trial (value, test metrics, params, best.yaml)."""
    s = plan.settings
    states = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    counts = ", ".join(f"{n} {k.lower()}" for k, n in sorted(states.items()))
    print(f"study {s.study_name!r}: {counts or 'no trials'}", flush=True)
    try:
        best = study.best_trial
    except ValueError:
        print("no complete trial yet", flush=True)
        return
    tests = ", ".join(f"{k} = {v:.5g}" for k, v in sorted(best.user_attrs.items()) if k.startswith("test_"))
    print(f"best trial {best.number}: {s.metric} = {best.value:.5g}" + (f", {tests}" if tests else ""), flush=True)
    print("  params: " + ", ".join(f"{k}={v}" for k, v in best.params.items()), flush=True)
    print(f"  reproduce: aelab fit --config {plan.study_dir / 'best.yaml'}", flush=True)
