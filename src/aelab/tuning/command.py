"""``aelab tune``: the command line (jsonargparse) around :func:`aelab.tuning.study.run`.

    aelab tune --config tune/cae.yaml                      # run, or resume, the study
    aelab tune --config tune/cae.yaml --n_trials 30        # top an existing study up to 30 trials
    aelab tune --config tune/cae.yaml --n_jobs 2           # two worker processes on one study
    aelab tune --config tune/cae.yaml --storage journal:tune/studies.log --study_name cae_j
    aelab tune --config tune/cae.yaml --print_config       # show every setting with its default

Every field of the tune YAML (:class:`aelab.tuning.settings.TuneSettings`) is also a flag; flags
given after ``--config`` override the file.
"""

from __future__ import annotations

from dataclasses import fields

from jsonargparse import ActionConfigFile, ArgumentParser

from aelab.tuning.settings import TuneSettings
from aelab.tuning.space import SpaceError


def make_parser() -> ArgumentParser:
    """The ``aelab tune`` argument parser: ``--config`` (a tune YAML) plus one flag per setting."""
    parser = ArgumentParser(
        prog="aelab tune",
        description="Optuna hyperparameter search over a LightningCLI recipe (see tune/cae.yaml).",
    )
    parser.add_argument("--config", action=ActionConfigFile, help="tune YAML file (e.g. tune/cae.yaml)")
    parser.add_class_arguments(TuneSettings, None)
    return parser


def main(argv: list[str] | None = None, build=None) -> None:
    """Entry point of ``aelab tune`` (returns ``None``). ``build`` is the recipe builder the CLI hands
    over (``aelab.cli.build``). Invalid settings exit with status 2 and a message naming the field; a
    worker failure exits with status 1."""
    parser = make_parser()
    cfg = parser.parse_args(argv)
    configs = [c for c in (cfg.get("config") or []) if c is not None]
    tune_file = str(configs[-1].absolute) if configs else None
    settings = TuneSettings(**{f.name: cfg[f.name] for f in fields(TuneSettings)})
    from aelab.tuning.study import run

    try:
        run(settings, tune_file, build)
    except SpaceError as err:
        parser.error(str(err))
    except KeyboardInterrupt:
        print("aelab tune: interrupted; re-run the same command to resume the study", flush=True)
        raise SystemExit(130) from None
    except RuntimeError as err:
        if "worker process" not in str(err):
            raise
        print(f"aelab tune: {err}", flush=True)
        raise SystemExit(1) from None
