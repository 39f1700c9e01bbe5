"""Study storage for ``aelab tune``: open any Optuna storage, create-or-resume a study, and keep
dead workers' trials from blocking it.

Storage URLs:
    ``sqlite:///tune/studies.db`` (default; the directory is created), any other SQLAlchemy URL
    (``postgresql://...``, ``mysql://...``: RDB storages, for several machines), or a journal
    file: ``journal:PATH`` or a plain ``PATH`` ending in ``.log`` (several processes on one
    machine, file locks, no database).

Dead trials: a trial whose process was killed stays RUNNING in the storage. RDB storages run
Optuna's heartbeat (``heartbeat_interval`` seconds between beats; a RUNNING trial whose last beat
is older than ``grace_period`` seconds is failed before the next trial starts). For every storage,
each trial also records its worker (``user_attrs["worker"] = {"host", "pid"}``), and
:func:`fail_dead_trials` marks FAIL the RUNNING trials of this host whose process no longer exists
(and those without a worker record started more than ``grace_period`` seconds ago).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from aelab.tuning.space import SpaceError

WORKER_ATTR = "worker"
JOURNAL_PREFIX = "journal:"
#: trials that use up the trial budget (RUNNING ones belong to live workers once dead ones are failed)
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def journal_path(url: str) -> Path | None:
    """The journal file named by ``url`` (``journal:PATH`` or ``PATH.log``), else ``None``."""
    if url.startswith(JOURNAL_PREFIX):
        return Path(url[len(JOURNAL_PREFIX):].removeprefix("//"))
    if "://" not in url and url.endswith(".log"):
        return Path(url)
    return None


def make_storage(url: str, heartbeat_interval: int = 20, grace_period: int = 120, retries: int = 8) -> BaseStorage:
    """Open (creating if needed) the storage at ``url``; see the module docstring.

    Args:
        url: storage URL or journal path.
        heartbeat_interval: seconds between heartbeats of a running trial (RDB storages).
        grace_period: seconds without a heartbeat after which a RUNNING trial counts as dead.
        retries: attempts (0.5 s apart) when several processes create a fresh database at once.

    Raises:
        SpaceError: for a URL that is neither an RDB URL nor a journal path.
    """
    path = journal_path(url)
    if path is not None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        if str(path) in ("", "."):
            raise SpaceError(f"storage {url!r}: journal storage needs a file path, e.g. 'journal:tune/studies.log'")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise SpaceError(f"storage {url!r}: expected an RDB URL (sqlite:///tune/studies.db, postgresql://...), "
                         "'journal:PATH' or a PATH ending in .log")
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        db = url[len("sqlite:///"):]
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        # wait up to 60 s for another process's write lock instead of failing at once (default 5 s)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(retries):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                                              grace_period=grace_period)
        except (OperationalError, IntegrityError):  # another process is creating the same schema
            if attempt == retries - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def open_study(storage: BaseStorage, study_name: str, direction: str, sampler, pruner) -> optuna.Study:
    """Create the study, or load it if it exists (resume), with this worker's sampler and pruner.

    Raises:
        SpaceError: when an existing study was created with the other direction.
    """
    study = optuna.create_study(storage=storage, study_name=study_name, direction=direction, sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise SpaceError(f"direction: study {study_name!r} exists with direction {study.direction.name.lower()}, "
                         f"not {direction}; use another --study_name")
    return study


def worker_record() -> dict[str, object]:
    """``{"host": hostname, "pid": process id}`` of this process (stored per trial)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _is_dead(trial: optuna.trial.FrozenTrial, host: str, grace_period: float) -> bool:
    worker = trial.user_attrs.get(WORKER_ATTR)
    if isinstance(worker, dict):
        return worker.get("host") == host and not _process_alive(int(worker.get("pid", -1)))
    start = trial.datetime_start
    if start is None:
        return False
    return (datetime.now(start.tzinfo) - start).total_seconds() > grace_period


def fail_dead_trials(study: optuna.Study, grace_period: float = 120) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker process is gone (see module docstring).

    Returns:
        the numbers of the trials marked failed.
    """
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _is_dead(trial, host, grace_period):
            try:
                study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
                failed.append(trial.number)
            except optuna.exceptions.UpdateFinishedTrialError:  # finished or failed meanwhile
                pass
    return failed


def count(study: optuna.Study, states=DONE_STATES, before: int | None = None) -> int:
    """Number of trials in ``states`` (only those numbered below ``before`` if given)."""
    trials = study.get_trials(deepcopy=False, states=states)
    return len(trials) if before is None else sum(t.number < before for t in trials)
