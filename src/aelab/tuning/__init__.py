"""Optuna hyperparameter search around the Lightning Trainer (``aelab tune``).

Modules, in the order a study uses them:

- :mod:`~aelab.tuning.command`: the ``aelab tune`` command line (jsonargparse, ``--config``).
- :mod:`~aelab.tuning.settings`: the tune YAML as :class:`TuneSettings`; validation -> a plan.
- :mod:`~aelab.tuning.space`: search-space entries (int / float / log_float / categorical),
  dotted keys -> recipe paths, sampling.
- :mod:`~aelab.tuning.samplers`: samplers (TPE default, seeded per trial) and pruners by name.
- :mod:`~aelab.tuning.storage`: storages (SQLite default; ``journal:FILE`` for several processes on
  one machine; ``postgresql://user:password@host/dbname`` across machines), resume, dead-trial
  handling (heartbeat).
- :mod:`~aelab.tuning.configs`: a trial's recipe config (values applied, its own logger).
- :mod:`~aelab.tuning.study`: objective (one Trainer per trial + pruning callback, from the recipe
  builder the CLI hands over), workers, trial budget.
- :mod:`~aelab.tuning.outputs`: best.yaml, trials.csv, figures.

Python use::

    from aelab.cli import build
    from aelab.tuning import TuneSettings, run
    study = run(TuneSettings(recipe="configs/cae.yaml", space={...}, n_trials=20), build=build)
"""

from aelab.tuning.command import main
from aelab.tuning.settings import TuneSettings
from aelab.tuning.space import SpaceError


def run(settings: TuneSettings, tune_file=None, build=None):
    """Run or resume a study; see :func:`aelab.tuning.study.run`."""
    from aelab.tuning.study import run as _run

    return _run(settings, tune_file, build)


__all__ = ["SpaceError", "TuneSettings", "main", "run"]
