"""`aelab tune`: search-space validation, a tiny study end to end, resume, several processes.

Every study here trains a 4-channel CAE for 1-2 epochs of 2 batches on the synthetic data of the
`fake_data_dir` fixture (about a second per trial), one CPU thread per process: for so small a model,
more threads only add synchronisation (and on a busy machine make each step many times slower).
PostgreSQL studies: tests/test_postgres.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
import yaml
from optuna.trial import TrialState

from aelab import tuning
from aelab.cli import build
from aelab.cli import main as aelab_main
from aelab.tuning.samplers import make_sampler
from aelab.tuning.settings import TuneSettings, load_yaml, prepare
from aelab.tuning.space import SpaceError, parse_space
from aelab.tuning.storage import make_storage

ROOT = Path(__file__).resolve().parents[1]
RECIPE = load_yaml(ROOT / "configs" / "cae.yaml")
SPACE = {
    "model.latent_dim": {"type": "int", "low": 2, "high": 6},
    "model.lr": {"type": "log_float", "low": 1e-4, "high": 1e-2},
    "model.scheduler": {"type": "categorical", "choices": ["none", "onecycle"]},
}


def tune(argv: list[str]) -> None:
    """``aelab tune ARGV`` in this process, with the CLI's recipe builder (as the command hands it over)."""
    tuning.main(argv, build)


class PruneTrialOne(optuna.pruners.BasePruner):
    """Prunes trial 1 at its first report, no other."""

    def prune(self, study, trial) -> bool:
        return trial.number == 1


def tiny_recipe(tmp_path: Path, data_dir: Path, max_epochs: int = 2) -> Path:
    """configs/cae.yaml with a tiny model, synthetic data, 2 batches per epoch, logs in tmp_path."""
    config = yaml.safe_load((ROOT / "configs" / "cae.yaml").read_text())
    config["trainer"].update(max_epochs=max_epochs, limit_train_batches=2, limit_val_batches=2, limit_test_batches=2,
                             enable_progress_bar=False, enable_model_summary=False)
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    config["model"]["init_args"].update(channels=4, latent_dim=4, hidden_dim=16)
    config["data"]["init_args"].update(data_dir=str(data_dir), download=False, verify=False, batch_size=32,
                                        val_size=60)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def tune_yaml(tmp_path: Path, data_dir: Path, name: str = "tune.yaml", max_epochs: int = 2, **settings) -> Path:
    recipe = tiny_recipe(tmp_path, data_dir, max_epochs)
    tune = {"recipe": str(recipe), "space": SPACE, "n_trials": 3, "storage": f"sqlite:///{tmp_path}/studies.db",
            "output_dir": str(tmp_path / "studies"), "pruner": "none", **settings}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tune))
    return path


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))


def one_thread_env() -> dict[str, str]:
    """The environment for a `python -m aelab tune` process started by a test (see module docstring)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def one_thread():
    """In-process trials on one CPU thread (see module docstring); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- search space ------------------------------------------------------------------------------------
def test_space_parsing_maps_keys_and_samples_in_range():
    params = {p.key: p for p in parse_space({**SPACE, "trainer.max_epochs": {"type": "int", "low": 1, "high": 3},
                                             "data.batch_size": {"type": "categorical", "choices": [64, 128]},
                                             "model.weight_decay": {"type": "float", "low": 0, "high": 1e-3,
                                                                    "step": 1e-4}}, RECIPE)}
    assert params["model.lr"].path == ("model", "init_args", "lr") and params["model.lr"].log
    assert params["model.lr"].type == "float" and params["model.latent_dim"].type == "int"
    assert params["trainer.max_epochs"].path == ("trainer", "max_epochs")
    assert params["data.batch_size"].path == ("data", "init_args", "batch_size")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        values = {k: p.suggest(study.ask()) for k, p in params.items()}
        assert 2 <= values["model.latent_dim"] <= 6 and isinstance(values["model.latent_dim"], int)
        assert 1e-4 <= values["model.lr"] <= 1e-2
        assert values["model.scheduler"] in ("none", "onecycle") and values["data.batch_size"] in (64, 128)


@pytest.mark.parametrize("space, message", [
    ({"model.latnet_dim": {"type": "int", "low": 2, "high": 8}}, "model.latnet_dim"),
    ({"optimizer.lr": {"type": "float", "low": 0.1, "high": 1}}, "optimizer.lr"),
    ({"trainer.max_epoch": {"type": "int", "low": 1, "high": 3}}, "trainer.max_epoch"),
    ({"model.lr": {"type": "float", "low": 0.1, "high": 0.01}}, "low (0.1) > high (0.01)"),
    ({"model.lr": {"type": "lognormal", "low": 0.1, "high": 1}}, "unknown type 'lognormal'"),
    ({"model.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "log scale needs low > 0"),
    ({"model.lr": {"type": "log_float", "low": -1, "high": 1}}, "log scale needs low > 0"),
    ({"model.lr": {"type": "float", "low": 0.1}}, "missing 'high'"),
    ({"model.lr": {"type": "float", "low": 0.1, "hihg": 1}}, "hihg"),
    ({"model.scheduler": {"type": "categorical", "choices": []}}, "choices"),
    ({"model.lr": 0.01}, "expected a mapping"),
])
def test_bad_space_is_reported_with_key_and_field(space, message):
    with pytest.raises(SpaceError) as err:
        parse_space(space, RECIPE)
    assert message in str(err.value)
    assert next(iter(space)) in str(err.value)


@pytest.mark.parametrize("change, message", [
    ({"overrides": {"trainer.max_epohcs": 3}}, "trainer.max_epohcs"),
    ({"overrides": {"model.lr": 0.1}}, "also searched"),
    ({"sampler": "annealing"}, "sampler: unknown name 'annealing'"),
    ({"pruner": {"name": "median", "n_warmup": 3}}, "pruner: MedianPruner does not accept"),
    ({"storage": "tune/studies.db"}, "storage 'tune/studies.db'"),
    ({"n_trials": None}, "n_trials / timeout"),
    ({"recipe": "configs/nope.yaml"}, "recipe 'configs/nope.yaml': file not found"),
    ({"metric": "test_mse"}, "never on test data"),
])
def test_bad_settings_are_reported(change, message):
    settings = TuneSettings(**{"recipe": str(ROOT / "configs" / "cae.yaml"), "space": SPACE, "n_trials": 2, **change})
    with pytest.raises(SpaceError) as err:
        prepare(settings)
    assert message in str(err.value)


def test_cli_rejects_bad_tune_yaml(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"recipe": str(ROOT / "configs" / "cae.yaml"), "n_trials": 2,
                                    "space": {"model.latnet_dim": {"type": "int", "low": 2, "high": 8}}}))
    with pytest.raises(SystemExit) as exit_info:
        tune(["--config", str(path)])
    assert exit_info.value.code == 2
    assert "model.latnet_dim" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({"recipe": "configs/cae.yaml", "n_trails": 2, "space": SPACE}))
    with pytest.raises(SystemExit):
        tune(["--config", str(path)])
    assert "n_trails" in capsys.readouterr().err


def print_config(argv: list[str], capsys) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        tune([*argv, "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("flags", [
    ["--overrides", "{trainer.limit_train_batches: 20, trainer.max_epochs: 3}"],
    ["--overrides.trainer.limit_train_batches", "20", "--overrides.trainer.max_epochs", "3"],
    ["--overrides.trainer.limit_train_batches=20", "--overrides.trainer.max_epochs=3"],
    ["--overrides.trainer.limit_train_batches", "20", "--overrides", "{trainer.max_epochs: 3}"],
])
def test_command_line_overrides_merge_into_the_files(tmp_path, flags, capsys):
    """`--overrides '{...}'` / `--overrides.KEY VALUE` add to the tune YAML's overrides key by key
    (YAML values: 20 an int, 1e-4 a float), the command line winning for a key in both."""
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump({"recipe": str(ROOT / "configs" / "cae.yaml"), "space": SPACE, "n_trials": 2,
                                    "overrides": {"trainer.max_epochs": 7, "model.weight_decay": 1e-5}}))
    config = print_config(["--config", str(path), *flags], capsys)
    assert config["overrides"] == {"trainer.max_epochs": 3, "model.weight_decay": 1e-5,
                                   "trainer.limit_train_batches": 20}
    config = print_config(["--config", str(path), "--overrides.model.weight_decay", "1e-4"], capsys)
    assert config["overrides"] == {"trainer.max_epochs": 7, "model.weight_decay": 1e-4}
    assert isinstance(config["overrides"]["model.weight_decay"], float)
    assert print_config(["--config", str(path)], capsys)["overrides"]["trainer.max_epochs"] == 7  # no flag: the file's
    with pytest.raises(SystemExit) as exit_info:
        tune(["--config", str(path), "--overrides", "[1, 2]"])
    assert exit_info.value.code == 2 and "--overrides: expected a mapping" in capsys.readouterr().err


def test_sampler_is_seeded_per_trial_not_per_process():
    """Same seed -> same parameters trial by trial; a resumed study does not repeat trials 0, 1."""
    def params(study, n):
        for _ in range(n):
            study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        return [t.params["x"] for t in study.trials]

    storage = optuna.storages.InMemoryStorage()
    a = params(optuna.create_study(storage=storage, study_name="a", sampler=make_sampler("tpe", 3)), 2)
    b = params(optuna.create_study(sampler=make_sampler("tpe", 3)), 2)
    assert a == b
    resumed = optuna.load_study(storage=storage, study_name="a", sampler=make_sampler("tpe", 3))
    c = params(resumed, 2)
    assert c[:2] == a and len(set(c)) == 4


# -- studies -----------------------------------------------------------------------------------------
def test_tiny_study_prunes_and_writes_reproducible_best_yaml(tmp_path, fake_data_dir, capsys):
    pruner = {"class_path": f"{__name__}.PruneTrialOne"}
    config = tune_yaml(tmp_path, fake_data_dir, pruner=pruner, study_name="tiny")
    tune(["--config", str(config)])
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/studies.db")
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert "trial   1 PRUNED" in out and "trial   2 COMPLETE" in out and "best trial" in out
    pruned = study.trials[1]
    assert pruned.user_attrs["epochs"] == 1 and study.trials[0].user_attrs["epochs"] == 2
    best = study.best_trial
    assert 0 < best.user_attrs["test_mse"] < 1  # test metrics recorded, objective is val_loss
    study_dir = tmp_path / "studies" / "tiny"
    assert {p.name for p in (study_dir / "trials").iterdir()} == {"trial_0000", "trial_0001", "trial_0002"}
    df = pd.read_csv(study_dir / "trials.csv")
    assert len(df) == 3 and "params_model.lr" in df and "user_attrs_test_mse" in df
    for name in ("optimization_history", "parallel_coordinate", "param_importances", "intermediate_values"):
        assert (study_dir / "figures" / f"{name}.png").stat().st_size > 1000, name

    best_yaml = study_dir / "best.yaml"
    config = yaml.safe_load(best_yaml.read_text())
    assert config["model"]["init_args"]["lr"] == best.params["model.lr"]
    assert config["model"]["init_args"]["latent_dim"] == best.params["model.latent_dim"]
    assert config["seed_everything"] == 42
    assert config["trainer"]["logger"]["init_args"]["name"] == "tiny_best"
    aelab_main(["fit", "--config", str(best_yaml)])
    assert "test_mse = " in capsys.readouterr().out
    assert (tmp_path / "logs" / "tiny_best" / "version_0").is_dir()


def test_command_line_overrides_reach_the_trials_and_the_header(tmp_path, fake_data_dir, capsys):
    """The file's `trainer.max_epochs: 1` survives `--overrides '{trainer.limit_val_batches: 1}'` (the
    recipe says 2 epochs, 2 validation batches); the header shows the effective overrides."""
    config = tune_yaml(tmp_path, fake_data_dir, max_epochs=2, n_trials=1, study_name="ovr", test_trials=False,
                       figures=False, overrides={"trainer.max_epochs": 1})
    tune(["--config", str(config), "--overrides", "{trainer.limit_val_batches: 1}"])
    out = capsys.readouterr().out
    assert "overrides: trainer.max_epochs=1, trainer.limit_val_batches=1\n" in out
    study = optuna.load_study(study_name="ovr", storage=f"sqlite:///{tmp_path}/studies.db")
    assert [t.user_attrs["epochs"] for t in finished(study)] == [1]
    best = yaml.safe_load((tmp_path / "studies" / "ovr" / "best.yaml").read_text())
    assert best["trainer"]["max_epochs"] == 1 and best["trainer"]["limit_val_batches"] == 1


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_aelab_help_lists_tune(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        aelab_main([flag])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "fit" in out and "export" in out
    lines = [line.split() for line in out.splitlines()]
    assert any(words[:2] == ["tune", "Optuna"] for words in lines), out[-600:]


def test_resume_tops_up_to_n_trials_and_fails_dead_trials(tmp_path, fake_data_dir, capsys):
    storage = f"journal:{tmp_path}/studies.log"
    config = tune_yaml(tmp_path, fake_data_dir, max_epochs=1, storage=storage, study_name="resume",
                       test_trials=False, figures=False)
    tune(["--config", str(config), "--n_trials", "2"])
    study = optuna.load_study(study_name="resume", storage=make_storage(storage))
    first = [t.params for t in study.trials]
    # a trial whose process was killed: RUNNING, recorded with a pid that no longer exists
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = study.ask()
    orphan.set_user_attr("worker", {"host": os.uname().nodename, "pid": dead.pid})

    tune(["--config", str(config), "--n_trials", "4"])
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="resume", storage=make_storage(storage))
    assert f"trial {orphan.number} marked FAIL" in out
    assert study.trials[orphan.number].state == TrialState.FAIL
    assert len(finished(study)) == 4 and len(study.trials) == 5
    new = [t.params for t in finished(study)[2:]]
    assert all(p not in first for p in new)  # not the first trials' parameters again

    tune(["--config", str(config), "--n_trials", "4"])
    assert "already has its 4 trials" in capsys.readouterr().out
    assert len(optuna.load_study(study_name="resume", storage=make_storage(storage)).trials) == 5


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_trial_without_heartbeat_is_failed_and_replaced(tmp_path, fake_data_dir, capsys):
    """SQLite (an RDB storage, like PostgreSQL in tests/test_postgres.py): a RUNNING trial of a worker
    on another machine whose heartbeat stopped `grace_period` seconds ago is failed when the study is
    re-run, and the study topped up -- even when that trial held the last slot of the budget."""
    config = tune_yaml(tmp_path, fake_data_dir, max_epochs=1, n_trials=1, study_name="beat", test_trials=False,
                       figures=False, heartbeat_interval=1, grace_period=1)
    storage = make_storage(f"sqlite:///{tmp_path}/studies.db", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="beat", storage=storage)
    orphan = study.ask()
    orphan.set_user_attr("worker", {"host": "another-machine", "pid": 1})
    storage.record_heartbeat(orphan._trial_id)
    time.sleep(2.5)  # > grace_period (SQLite's clock has whole seconds)

    tune(["--config", str(config)])
    assert "trial 0 marked FAIL: no heartbeat" in capsys.readouterr().out
    study = optuna.load_study(study_name="beat", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]


def test_budget_held_by_a_running_trial_writes_outputs(tmp_path, fake_data_dir, capsys):
    """A second command while the only trial of the budget runs elsewhere: nothing to run, and the
    outputs (trials.csv with no duration yet) are still written."""
    config = tune_yaml(tmp_path, fake_data_dir, n_trials=1, study_name="busy", figures=False)
    study = optuna.create_study(study_name="busy", storage=f"sqlite:///{tmp_path}/studies.db")
    study.ask().set_user_attr("worker", {"host": os.uname().nodename, "pid": os.getpid()})  # alive
    tune(["--config", str(config)])
    assert "already has its 1 trials" in capsys.readouterr().out
    df = pd.read_csv(tmp_path / "studies" / "busy" / "trials.csv")
    assert list(df["state"]) == ["RUNNING"] and df["duration"].isna().all()


@pytest.mark.slow
def test_several_processes_share_one_study(tmp_path, fake_data_dir):
    """SQLite: two separate `python -m aelab tune` commands; journal file: `--n_jobs 2` (two worker
    processes started by this process). All four workers run at the same time."""
    env = one_thread_env()  # the --n_jobs workers share the cores by themselves (aelab.tuning.study.worker_env)
    common = dict(max_epochs=1, n_trials=4, test_trials=False, figures=False)
    sqlite = tune_yaml(tmp_path, fake_data_dir, name="sqlite.yaml", study_name="s", **common)
    journal = tune_yaml(tmp_path, fake_data_dir, name="journal.yaml", study_name="j",
                        storage=f"{tmp_path}/studies.log", **common)
    procs = [subprocess.Popen([sys.executable, "-m", "aelab", "tune", "--config", str(sqlite)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        tune(["--config", str(journal), "--n_jobs", "2"])
    finally:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    for name, storage in (("j", make_storage(f"{tmp_path}/studies.log")), ("s", f"sqlite:///{tmp_path}/studies.db")):
        study = optuna.load_study(study_name=name, storage=storage)
        done = finished(study)
        assert len(done) == 4, [(t.number, t.state) for t in study.trials]
        assert all(t.state != TrialState.RUNNING for t in study.trials)
        assert len({t.number for t in done}) == 4
        assert (tmp_path / "studies" / name / "best.yaml").exists()
    journal_workers = {t.user_attrs["worker"]["pid"] for t in finished(optuna.load_study(
        study_name="j", storage=make_storage(f"{tmp_path}/studies.log")))}
    assert len(journal_workers) == 2 and os.getpid() not in journal_workers


def test_run_needs_the_recipe_builder():
    """The tuning layer never imports the CLI: Python callers hand over ``aelab.cli.build``."""
    with pytest.raises(TypeError, match="recipe builder"):
        tuning.run(TuneSettings(recipe=str(ROOT / "configs" / "cae.yaml"), space=SPACE, n_trials=1))
