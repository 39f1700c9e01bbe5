"""Study storage for ``aelab tune``: open any Optuna storage, create-or-resume a study, and keep
dead workers' trials from blocking it.

Storage URLs (``storage:`` in the tune YAML, or ``--storage``):

- ``sqlite:///tune/studies.db`` (default; the directory is created): one machine; several processes
  work, but SQLite serialises their writes (fine for a few workers with trials of minutes).
- ``journal:PATH`` or a plain ``PATH`` ending in ``.log``: a journal file (file locks, no
  database): several processes on one machine.
- ``postgresql://user:password@host/dbname`` (or ``postgresql://user:password@host:port/dbname``;
  any SQLAlchemy URL, ``mysql://...`` too): an RDB server, for workers on several machines and for
  DDP trials. The database must exist (``createdb dbname``); Optuna creates its tables. A plain
  ``postgresql://`` uses whichever driver is installed (``psycopg`` 3 or ``psycopg2``;
  ``postgresql+psycopg2://`` picks one). A server that does not answer is reported as one
  :class:`StorageError` naming the URL (password hidden).

Dead trials: a trial whose process was killed stays RUNNING in the storage. RDB storages (SQLite
and PostgreSQL alike) run Optuna's heartbeat: a thread of the worker writes a beat every
``heartbeat_interval`` seconds, and a RUNNING trial whose last beat is older than ``grace_period``
seconds -- its worker died on whatever machine -- is failed by :func:`fail_dead_trials` (when a
worker starts and before each of its trials), so it neither blocks the trial budget nor stays
RUNNING. For every storage, each trial also records its worker (``user_attrs["worker"] = {"host",
"pid"}``), and :func:`fail_dead_trials` marks FAIL at once the RUNNING trials of this host whose
process no longer exists (and those without a worker record started more than ``grace_period``
seconds ago).
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from datetime import datetime
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from aelab.tuning.space import SpaceError

WORKER_ATTR = "worker"
JOURNAL_PREFIX = "journal:"
#: trials that use up the trial budget (RUNNING ones belong to live workers once dead ones are failed)
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


class StorageError(RuntimeError):
    """The storage cannot be opened (server down, unknown database, missing driver); the message
    names the URL with its password hidden."""


def display_url(url: str) -> str:
    """``url`` with its password hidden (``postgresql://aelab:***@host/db``), for messages."""
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def with_driver(url: str) -> str:
    """A ``postgresql://`` (or ``postgres://``) URL without a driver, given the installed one:
    SQLAlchemy's default for the scheme if importable, else ``psycopg`` 3 or ``psycopg2`` (SQLAlchemy
    2.1 defaults to ``psycopg`` 3, 2.0 to ``psycopg2``). Other URLs unchanged.

    Raises:
        StorageError: when no PostgreSQL driver is installed.
    """
    from importlib.util import find_spec

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url.startswith("postgres://"):  # the scheme of libpq and many hosting services
        url = "postgresql://" + url[len("postgres://"):]
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # reported by check_connection
        return url
    if parsed.drivername != "postgresql":
        return url
    default = parsed.get_dialect().driver
    for driver in dict.fromkeys((default, "psycopg", "psycopg2")):
        if find_spec(driver) is not None:
            if driver == default:
                return url
            return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)
    raise StorageError(f"storage {display_url(url)!r}: no PostgreSQL driver installed "
                       "(pip install psycopg2-binary, or psycopg[binary])")


def check_connection(url: str, shown: str | None = None) -> None:
    """Connect once to the database server of ``url`` (not SQLite); ``shown``: the URL for messages
    (default: ``url`` with its password hidden).

    Raises:
        StorageError: naming the URL and the server's answer (connection refused, authentication
            failed, database does not exist, ...), or a missing driver module.
    """
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, DBAPIError

    shown = shown or display_url(url)
    try:
        # a host that drops packets: give up after 10 s (libpq's default waits for the TCP timeout)
        connect_args = {"connect_timeout": 10} if url.startswith("postgresql") else {}
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, connect_args=connect_args)
    except ArgumentError as err:
        raise StorageError(f"storage {shown!r}: not a valid database URL ({err})") from None
    except ModuleNotFoundError as err:
        raise StorageError(f"storage {shown!r}: database driver {err.name!r} is not installed") from None
    try:
        with engine.connect():
            pass
    except DBAPIError as err:
        reason = " ".join(str(err.orig or err).split())
        if "does not exist" in reason:
            reason += "; create it first (createdb)"
        raise StorageError(f"storage {shown!r}: cannot open the database: {reason}") from None
    finally:
        engine.dispose()


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
        StorageError: when the database server does not answer (see :func:`check_connection`).
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
    else:
        shown = display_url(url)
        url = with_driver(url)
        check_connection(url, shown)
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(retries):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna, and wanted here
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        except (OperationalError, IntegrityError, ProgrammingError):  # another process creates the same schema
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


def _fail(study: optuna.Study, trial_id: int) -> bool:
    try:
        return bool(study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:  # finished or failed meanwhile
        return False


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose heartbeat is older than the storage's grace period (what
    ``optuna.storages.fail_stale_trials`` does, returning the trial numbers). Storages without
    heartbeat: nothing."""
    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return []
    failed = []
    for trial_id in storage._get_stale_trial_ids(study._study_id):
        if _fail(study, trial_id):
            failed.append(storage.get_trial_number_from_id(trial_id))
    return failed


def fail_dead_trials(study: optuna.Study, grace_period: float = 120) -> dict[int, str]:
    """Mark FAIL the RUNNING trials whose worker is gone (see module docstring): first those without a
    heartbeat for ``grace_period`` seconds (RDB storages), then those of this host whose process no
    longer exists.

    Returns:
        ``{trial number: why}`` of the trials marked failed.
    """
    failed = {number: f"no heartbeat for {grace_period} s (its worker died, on this or another machine)"
              for number in fail_stale_trials(study)}
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number not in failed and _is_dead(trial, host, grace_period) \
                and _fail(study, trial._trial_id):
            failed[trial.number] = "its worker process is gone"
    return failed


def count(study: optuna.Study, states=DONE_STATES, before: int | None = None) -> int:
    """Number of trials in ``states`` (only those numbered below ``before`` if given)."""
    trials = study.get_trials(deepcopy=False, states=states)
    return len(trials) if before is None else sum(t.number < before for t in trials)
