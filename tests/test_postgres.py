"""`aelab tune` on a PostgreSQL server: the storage for workers on several machines.

The server comes from ``AELAB_TEST_POSTGRES`` (default ``postgresql://aelab:aelab@localhost/postgres``),
a role that may create databases; .ci/run starts one. These tests start no server: without one
answering they are skipped (all but the unreachable-server test). Each test creates its own
database (random name) and drops it at the end. Studies are the tiny ones of tests/test_tuning.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from aelab.tuning.storage import display_url, make_storage, with_driver
from test_tuning import finished, one_thread, one_thread_env, tune, tune_yaml  # noqa: F401 (one_thread: autouse fixture)

PG_URL = os.environ.get("AELAB_TEST_POSTGRES", "postgresql://aelab:aelab@localhost/postgres")


def _admin_engine():
    import sqlalchemy

    return sqlalchemy.create_engine(with_driver(PG_URL), isolation_level="AUTOCOMMIT",
                                    poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": 5})


def _server_problem() -> str | None:
    """Why no test database can be made at PG_URL (``None``: the server answers)."""
    try:
        engine = _admin_engine()
        with engine.connect():
            pass
        engine.dispose()
    except Exception as err:  # noqa: BLE001 - driver missing, server down, bad password: skip with the reason
        return " ".join(str(getattr(err, "orig", None) or err).split())[:300]
    return None


@pytest.fixture
def pg_url():
    """The URL of a fresh database on the test server, dropped afterwards (connections closed)."""
    problem = _server_problem()
    if problem is not None:
        pytest.skip(f"no PostgreSQL server at {display_url(PG_URL)} ({problem}); start one (.ci/run does) or set "
                    "AELAB_TEST_POSTGRES=postgresql://user:password@host/dbname (a role that may CREATE DATABASE)")
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"aelab_test_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()


def _start_tune(config: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aelab", "tune", "--config", str(config)], cwd=cwd,
                            env=one_thread_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_during_trial(config: Path, cwd: Path, storage, study_name: str, number: int):
    """Start ``aelab tune``, wait until trial ``number`` runs, freeze the worker (SIGSTOP), and kill it
    (SIGKILL). Returns ``(trial, pid)``, or ``None`` when the trial had finished before the worker froze (a
    tiny trial on a busy machine can end between the poll that saw it running and the signal)."""
    proc = _start_tune(config, cwd)
    victim, state = None, None
    try:
        deadline = time.monotonic() + 240
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                study = optuna.load_study(study_name=study_name, storage=storage)
            except KeyError:  # not created yet
                continue
            running = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "worker" in t.user_attrs]
            victim = next((t for t in running if t.number == number), None)
        assert victim is not None, f"trial {number} never seen running; worker output:\n{proc.communicate()[0][-3000:]}"
        proc.send_signal(signal.SIGSTOP)  # frozen: the trial's state can no longer change under us
        state = storage.get_trial(victim._trial_id).state
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return (victim, proc.pid) if state == TrialState.RUNNING else None


def _event_file_pids(trial_dir: Path) -> set[int]:
    """Process ids in the names of a trial's TensorBoard files (``events.out.tfevents.T.HOST.PID.N``)."""
    return {int(p.name.split(".")[-2]) for p in trial_dir.glob("events.out.tfevents.*")}


def test_unreachable_server_is_one_clear_error(tmp_path, fake_data_dir, capsys):
    """No server at the URL: exit 1 with one line naming the URL (password hidden), no traceback."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://aelab:secret@127.0.0.1:{port}/studies"
    config = tune_yaml(tmp_path, fake_data_dir, storage=url, study_name="down")
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        tune(["--config", str(config)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"aelab tune: storage 'postgresql://aelab:***@127.0.0.1:{port}/studies': "), err
    assert "secret" not in err and len(err.splitlines()) == 1
    assert time.perf_counter() - start < 10  # no retry loop on a refused connection


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(pg_url, tmp_path, fake_data_dir):
    """Two separate `aelab tune` commands (as on two machines) start together on a fresh database (both
    create Optuna's tables): exactly n_trials finished, none left RUNNING, every trial trained once by
    the worker recorded for it, no parameter set twice, both workers used."""
    config = tune_yaml(tmp_path, fake_data_dir, name="pg.yaml", max_epochs=1, n_trials=4, storage=pg_url,
                       study_name="pg", test_trials=False, figures=False)
    procs = [_start_tune(config, tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    study = optuna.load_study(study_name="pg", storage=make_storage(pg_url))
    done = finished(study)
    assert len(done) == 4, [(t.number, t.state, t.user_attrs) for t in study.trials]
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    others = [t for t in study.trials if t.state not in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert all(t.user_attrs.get("surplus") for t in others)  # only trials that found the budget taken
    trials_dir = tmp_path / "studies" / "pg" / "trials"
    assert sorted(p.name for p in trials_dir.iterdir()) == [f"trial_{t.number:04d}" for t in done]
    for t in done:  # trained once, by its recorded worker
        assert _event_file_pids(trials_dir / f"trial_{t.number:04d}") == {t.user_attrs["worker"]["pid"]}
    assert len({tuple(sorted(t.params.items())) for t in done}) == 4
    assert {t.user_attrs["worker"]["pid"] for t in done} == {p.pid for p in procs}
    assert (tmp_path / "studies" / "pg" / "best.yaml").exists()


@pytest.mark.slow
def test_killed_worker_fails_by_heartbeat_and_the_study_resumes(pg_url, tmp_path, fake_data_dir, capsys):
    """A worker killed (SIGKILL) in the last trial of the budget, on "another machine" (its trial's
    worker record names another host, so only the heartbeat can tell it is dead): once
    `grace_period` has passed without a beat, re-running the study fails that trial and tops the
    study up to n_trials."""
    storage = make_storage(pg_url, heartbeat_interval=1, grace_period=1)
    killed = None
    for attempt in range(3):  # a fresh study when trial 1 ended before the worker could be frozen
        study_name, folder = f"kill{attempt}", tmp_path / f"attempt{attempt}"
        folder.mkdir()
        config = tune_yaml(folder, fake_data_dir, name="pg.yaml", max_epochs=1, n_trials=2, storage=pg_url,
                           study_name=study_name, test_trials=False, figures=False, heartbeat_interval=1,
                           grace_period=1)
        killed = _kill_during_trial(config, folder, storage, study_name, number=1)
        if killed is not None:
            break
    assert killed is not None, "trial 1 finished before the worker could be frozen, in 3 fresh studies"
    victim, pid = killed
    storage.set_trial_user_attr(victim._trial_id, "worker", {"host": "another-machine", "pid": pid})
    study = optuna.load_study(study_name=study_name, storage=storage)
    assert study.trials[1].state == TrialState.RUNNING  # nobody has noticed yet
    time.sleep(2)  # > grace_period since the last beat

    tune(["--config", str(config)])
    out = capsys.readouterr().out
    assert "trial 1 marked FAIL: no heartbeat" in out
    study = optuna.load_study(study_name=study_name, storage=storage)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE], states
    assert len(finished(study)) == 2
    assert study.trials[2].user_attrs["worker"]["pid"] == os.getpid()
    tune(["--config", str(config)])
    assert "already has its 2 trials" in capsys.readouterr().out
