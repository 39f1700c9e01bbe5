"""``aelab tune``: the command line (jsonargparse) around :func:`aelab.tuning.study.run`.

    aelab tune --config tune/cae.yaml                      # run, or resume, the study
    aelab tune --config tune/cae.yaml --n_trials 30        # top an existing study up to 30 trials
    aelab tune --config tune/cae.yaml --n_jobs 2           # two worker processes on one study
    aelab tune --config tune/cae.yaml --storage journal:tune/studies.log --study_name cae_j
    aelab tune --config tune/cae.yaml --storage postgresql://user:password@host/dbname  # several machines
    aelab tune --config tune/cae.yaml --print_config       # show every setting with its default

Every field of the tune YAML (:class:`aelab.tuning.settings.TuneSettings`) is also a flag; flags
given after ``--config`` override the file.

Overrides given on the command line are merged key by key into the ``overrides`` of the tune YAML
(a key given on the command line wins; the file's other keys stay), in three spellings::

    aelab tune --config tune/cae.yaml --overrides '{trainer.limit_train_batches: 20}'
    aelab tune --config tune/cae.yaml --overrides.trainer.limit_train_batches 20
    aelab tune --config tune/cae.yaml --overrides.trainer.limit_train_batches=20

Values are read as YAML (``20`` an int, ``1e-4`` a float, ``null``, ``[1, 2]``). jsonargparse alone
would replace the whole ``overrides`` mapping with ``--overrides '{...}'`` and nest a dotted flag
(``{trainer: {limit_train_batches: "20"}}``), so :func:`split_overrides` takes these flags out of
the argument list before parsing and :func:`parse` merges them afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, get_loader

from aelab.tuning.settings import TuneSettings
from aelab.tuning.space import SpaceError
from aelab.tuning.storage import StorageError

OVERRIDES_FLAG = "--overrides"


def make_parser() -> ArgumentParser:
    """The ``aelab tune`` argument parser: ``--config`` (a tune YAML) plus one flag per setting."""
    parser = ArgumentParser(
        prog="aelab tune",
        description="Optuna hyperparameter search over a LightningCLI recipe (see tune/cae.yaml). "
                    "Command-line overrides (--overrides '{KEY: VALUE}' or --overrides.KEY VALUE) are "
                    "merged key by key into those of the tune YAML.",
    )
    parser.add_argument("--config", action=ActionConfigFile, help="tune YAML file (e.g. tune/cae.yaml)")
    parser.add_class_arguments(TuneSettings, None)
    return parser


def _load_value(text: str, flag: str) -> Any:
    try:
        return get_loader("yaml")(text)
    except Exception as err:  # noqa: BLE001 - any YAML error: name the flag
        raise SpaceError(f"{flag}: cannot read {text!r} as YAML ({err})") from None


def split_overrides(argv: list[str]) -> tuple[list[str], dict[str, Any] | None]:
    """Take the overrides flags out of ``argv``.

    ``--overrides MAPPING`` / ``--overrides=MAPPING`` (YAML or JSON flow mapping) and
    ``--overrides.KEY VALUE`` / ``--overrides.KEY=VALUE`` (a YAML value) are merged left to right.

    Returns:
        the other arguments, and the merged overrides (``None`` when no such flag was given).

    Raises:
        SpaceError: for a flag without value, a value that is not YAML, or ``--overrides`` with
            something other than a mapping.
    """
    rest: list[str] = []
    overrides: dict[str, Any] | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        name, eq, value = arg.partition("=")
        if name != OVERRIDES_FLAG and not name.startswith(OVERRIDES_FLAG + "."):
            rest.append(arg)
            continue
        if not eq:
            if i >= len(argv):
                raise SpaceError(f"{name}: expected a value")
            value = argv[i]
            i += 1
        overrides = {} if overrides is None else overrides
        if name == OVERRIDES_FLAG:
            mapping = _load_value(value, name)
            if mapping is None:
                continue
            if not isinstance(mapping, Mapping):
                raise SpaceError(f"{name}: expected a mapping such as '{{trainer.max_epochs: 5}}', got {value!r}")
            overrides.update({str(k): v for k, v in mapping.items()})
        else:
            key = name[len(OVERRIDES_FLAG) + 1:]
            if not key:
                raise SpaceError(f"{name}: name a recipe key, e.g. --overrides.trainer.max_epochs 5")
            overrides[key] = _load_value(value, name)
    return rest, overrides


def _without_print_config(argv: list[str]) -> list[str]:
    """``argv`` without ``--print_config`` / ``--print_config=FLAGS`` (jsonargparse takes flags only after ``=``)."""
    return [arg for arg in argv if arg != "--print_config" and not arg.startswith("--print_config=")]


def parse(argv: list[str] | None, parser: ArgumentParser | None = None) -> tuple[TuneSettings, str | None]:
    """Parse ``aelab tune`` arguments into settings and the tune YAML's path (``None`` without
    ``--config``), command-line overrides merged into the file's (see the module docstring).
    ``--print_config`` prints the merged settings and exits."""
    parser = parser or make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rest, cli_overrides = split_overrides(argv)
    except SpaceError as err:
        parser.error(str(err))
    if cli_overrides is not None:
        # the file's overrides (everything but --print_config, which would print and exit) ...
        file_overrides = parser.parse_args(_without_print_config(rest)).get("overrides") or {}
        merged = {**file_overrides, **cli_overrides}
        # ... merged, then parsed again as one mapping (--print_config, if given, shows the merge)
        flow = yaml.safe_dump(merged, default_flow_style=True, sort_keys=False, width=2**31).strip()
        argv = rest + [OVERRIDES_FLAG, flow]
    cfg = parser.parse_args(argv)
    configs = [c for c in (cfg.get("config") or []) if c is not None]
    tune_file = str(configs[-1].absolute) if configs else None
    settings = TuneSettings(**{f.name: cfg[f.name] for f in fields(TuneSettings)})
    return settings, tune_file


def main(argv: list[str] | None = None, build=None) -> None:
    """Entry point of ``aelab tune`` (returns ``None``). ``build`` is the recipe builder the CLI hands
    over (``aelab.cli.build``). Invalid settings exit with status 2 and a message naming the field; a
    storage that cannot be opened (e.g. no PostgreSQL server at the URL) or a worker failure exits
    with status 1 and one line naming it."""
    parser = make_parser()
    settings, tune_file = parse(argv, parser)
    from aelab.tuning.study import run

    try:
        run(settings, tune_file, build)
    except SpaceError as err:
        parser.error(str(err))
    except StorageError as err:
        print(f"aelab tune: {err}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("aelab tune: interrupted; re-run the same command to resume the study", flush=True)
        raise SystemExit(130) from None
    except RuntimeError as err:
        if "worker process" not in str(err):
            raise
        print(f"aelab tune: {err}", flush=True)
        raise SystemExit(1) from None
