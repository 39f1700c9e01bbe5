"""Search spaces for ``aelab tune``: parse and validate the ``space:`` block of a tune YAML, map
its dotted keys onto a LightningCLI recipe, and sample values with an Optuna trial.

A key names one ``__init__`` argument of the recipe's model, datamodule or Trainer::

    model.lr            -> recipe["model"]["init_args"]["lr"]
    data.batch_size     -> recipe["data"]["init_args"]["batch_size"]
    trainer.max_epochs  -> recipe["trainer"]["max_epochs"]

(``model.init_args.lr`` is accepted too). Each parameter is a mapping with a ``type``:

    {type: int, low: 4, high: 16}                 integers low..high inclusive (optional step, log)
    {type: float, low: 0.0, high: 1.0}            uniform floats (optional step, or log: true)
    {type: log_float, low: 1.0e-4, high: 1.0e-2}  log-uniform floats (same as float with log: true)
    {type: categorical, choices: [none, onecycle]}

Overrides (recipe values set for every trial, not searched) use the same keys and may reach
deeper into the recipe, e.g. ``trainer.logger.init_args.save_dir``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna

PARAM_TYPES = ("int", "float", "log_float", "categorical")
_TYPE_ALIASES = {"log-float": "log_float", "logfloat": "log_float", "loguniform": "log_float"}
_FIELDS = {
    "int": {"type", "low", "high", "step", "log"},
    "float": {"type", "low", "high", "step", "log"},
    "log_float": {"type", "low", "high"},
    "categorical": {"type", "choices"},
}
_SECTIONS_WITH_INIT_ARGS = ("model", "data")


class SpaceError(ValueError):
    """A search-space entry or an override is invalid; the message names the key and the field."""


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter.

    Attributes:
        key: the name as written in the tune YAML (and the Optuna parameter name), e.g. ``"model.lr"``.
        path: where the value goes in the recipe, e.g. ``("model", "init_args", "lr")``.
        type: ``"int"``, ``"float"`` or ``"categorical"`` (``log_float`` becomes ``float`` + ``log``).
        low, high: inclusive bounds (numeric types).
        step: grid step (numeric types, not with ``log``); ``None`` = continuous (float) or 1 (int).
        log: sample on a log scale (requires ``low > 0``; ``low >= 1`` for int).
        choices: the values of a categorical parameter (None, bool, int, float or str).
    """

    key: str
    path: tuple[str, ...]
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw this parameter's value for ``trial`` (recorded in the study under :attr:`key`)."""
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        if self.type == "float":
            return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)
        return trial.suggest_categorical(self.key, list(self.choices))

    def describe(self) -> str:
        """Short human-readable form, e.g. ``model.lr ~ log-float[0.0001, 0.01]``."""
        if self.type == "categorical":
            return f"{self.key} ~ categorical{list(self.choices)}"
        kind = ("log-" if self.log else "") + self.type
        step = f" step {self.step}" if self.step is not None else ""
        return f"{self.key} ~ {kind}[{self.low}, {self.high}]{step}"


# -- keys -> recipe paths ------------------------------------------------------------------------
def config_path(key: str) -> tuple[str, ...]:
    """Dotted key -> path into a LightningCLI config dict (``model.lr`` -> model/init_args/lr).

    Raises:
        SpaceError: for an empty key or an empty component (``"model..lr"``).
    """
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise SpaceError(f"invalid key {key!r}: expected dotted names such as 'model.lr' or 'trainer.max_epochs'")
    parts = key.split(".")
    if parts[0] in _SECTIONS_WITH_INIT_ARGS and len(parts) >= 2 and parts[1] not in ("init_args", "class_path"):
        parts.insert(1, "init_args")
    return tuple(parts)


def init_arguments(cls: type) -> set[str]:
    """Names of ``cls.__init__`` arguments, following ``**kwargs`` up the class hierarchy."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def import_object(dotted: str, what: str) -> Any:
    """Import ``package.module.Name``; ``what`` names the field in the error message."""
    module_name, _, name = str(dotted).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise SpaceError(f"{what}: cannot import {dotted!r} ({err})") from None


def _section_class(recipe: Mapping, section: str) -> type:
    if section == "trainer":
        from lightning.pytorch import Trainer

        return Trainer
    spec = recipe.get(section)
    class_path = spec.get("class_path") if isinstance(spec, Mapping) else spec
    if not isinstance(class_path, str):
        raise SpaceError(f"the recipe has no {section}.class_path, so keys '{section}.*' cannot be checked")
    return import_object(class_path, f"recipe {section}.class_path")


def check_key(key: str, recipe: Mapping, what: str = "space") -> tuple[str, ...]:
    """Validate that ``key`` names an argument of the recipe and return its :func:`config_path`.

    ``model.*`` / ``data.*`` keys must be ``__init__`` arguments of the recipe's model / datamodule
    class, ``trainer.*`` keys arguments of ``lightning.pytorch.Trainer``; a top-level key must exist
    in the recipe (or be ``seed_everything``). Only the first argument level is checked, so
    ``trainer.logger.init_args.name`` is accepted where ``trainer.logger`` is.

    Raises:
        SpaceError: naming ``key`` (and close matches) when the argument does not exist.
    """
    path = config_path(key)
    section = path[0]
    if section in ("model", "data", "trainer"):
        arg_index = 2 if section in _SECTIONS_WITH_INIT_ARGS else 1
        if section in _SECTIONS_WITH_INIT_ARGS and path[1] == "class_path":
            return path
        if len(path) <= arg_index:
            raise SpaceError(f"{what} key {key!r}: name an argument, e.g. '{section}.<argument>'")
        cls = _section_class(recipe, section)
        known = init_arguments(cls)
        arg = path[arg_index]
        if arg not in known:
            close = difflib.get_close_matches(arg, sorted(known), n=3)
            hint = f"; did you mean {', '.join(f'{section}.{c}' for c in close)}?" if close else ""
            raise SpaceError(
                f"{what} key {key!r}: {cls.__name__} has no __init__ argument {arg!r}{hint} "
                f"(known: {', '.join(sorted(known))})"
            )
        return path
    if len(path) == 1 and (section in recipe or section == "seed_everything"):
        return path
    raise SpaceError(
        f"{what} key {key!r}: not in the recipe; expected 'model.<arg>', 'data.<arg>', 'trainer.<arg>' "
        f"or a top-level recipe key ({', '.join(sorted(map(str, recipe)))})"
    )


# -- parameter specs -------------------------------------------------------------------------------
def _number(key: str, field: str, value: Any, integer: bool = False) -> float | int:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpaceError(f"space[{key!r}].{field}: expected a number, got {value!r}")
    if integer:
        if float(value) != int(value):
            raise SpaceError(f"space[{key!r}].{field}: expected an integer for type int, got {value!r}")
        return int(value)
    return float(value)


def parse_param(key: str, spec: Any, recipe: Mapping) -> Param:
    """Validate one ``space`` entry and return it as a :class:`Param`.

    Raises:
        SpaceError: naming the key and field: unknown key or type, unknown or missing fields,
            ``low > high``, ``log`` with ``low <= 0`` (``< 1`` for int), ``step`` with ``log``,
            empty or non-primitive ``choices``.
    """
    path = check_key(key, recipe, "space")
    if not isinstance(spec, Mapping):
        raise SpaceError(f"space[{key!r}]: expected a mapping such as {{type: float, low: 0.0001, high: 0.01, "
                         f"log: true}}, got {spec!r}")
    if "type" not in spec:
        raise SpaceError(f"space[{key!r}]: missing 'type' (one of {', '.join(PARAM_TYPES)})")
    kind = _TYPE_ALIASES.get(str(spec["type"]).lower(), str(spec["type"]).lower())
    if kind not in PARAM_TYPES:
        raise SpaceError(f"space[{key!r}].type: unknown type {spec['type']!r}; expected one of {', '.join(PARAM_TYPES)}")
    unknown = set(spec) - _FIELDS[kind]
    if unknown:
        raise SpaceError(f"space[{key!r}]: unknown field(s) {sorted(unknown)} for type {kind}; "
                         f"allowed: {sorted(_FIELDS[kind])}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise SpaceError(f"space[{key!r}].choices: expected a non-empty list, got {choices!r}")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise SpaceError(f"space[{key!r}].choices: {c!r} is not None, bool, int, float or str")
        if len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"space[{key!r}].choices: duplicates in {list(choices)}")
        return Param(key, path, "categorical", choices=tuple(choices))
    for field in ("low", "high"):
        if field not in spec:
            raise SpaceError(f"space[{key!r}]: missing {field!r} for type {kind}")
    integer = kind == "int"
    low, high = _number(key, "low", spec["low"], integer), _number(key, "high", spec["high"], integer)
    log = kind == "log_float" or bool(spec.get("log", False))
    step = spec.get("step")
    if low > high:
        raise SpaceError(f"space[{key!r}]: low ({low}) > high ({high})")
    if log and low <= 0:
        raise SpaceError(f"space[{key!r}]: a log scale needs low > 0, got low = {low}")
    if log and integer and low < 1:
        raise SpaceError(f"space[{key!r}]: a log-scaled int needs low >= 1, got low = {low}")
    if step is not None:
        step = _number(key, "step", step, integer)
        if step <= 0:
            raise SpaceError(f"space[{key!r}].step: must be > 0, got {step}")
        if log:
            raise SpaceError(f"space[{key!r}]: step and log cannot be combined")
    return Param(key, path, "int" if integer else "float", low=low, high=high, step=step, log=log)


def parse_space(space: Mapping[str, Any], recipe: Mapping) -> list[Param]:
    """Validate a whole ``space`` mapping against ``recipe`` (a loaded LightningCLI config dict).

    Raises:
        SpaceError: for an empty space, any invalid entry (see :func:`parse_param`) or two keys
            naming the same recipe value (``model.lr`` and ``model.init_args.lr``).
    """
    if not isinstance(space, Mapping) or not space:
        raise SpaceError("space: expected a non-empty mapping of 'section.argument' -> parameter spec")
    params = [parse_param(key, spec, recipe) for key, spec in space.items()]
    seen: dict[tuple[str, ...], str] = {}
    for p in params:
        if p.path in seen:
            raise SpaceError(f"space keys {seen[p.path]!r} and {p.key!r} set the same recipe value")
        seen[p.path] = p.key
    return params


def check_overrides(
    overrides: Mapping[str, Any], recipe: Mapping, params: list[Param]
) -> dict[tuple[str, ...], Any]:
    """Validate ``overrides`` (``key -> value``) and return ``path -> value``.

    Raises:
        SpaceError: for an unknown key (see :func:`check_key`) or a key that is also searched.
    """
    searched = {p.path: p.key for p in params}
    out = {}
    for key, value in (overrides or {}).items():
        path = check_key(key, recipe, "overrides")
        if path in searched:
            raise SpaceError(f"overrides key {key!r} is also searched as {searched[path]!r}; keep one")
        out[path] = value
    return out


def set_path(config: dict, path: tuple[str, ...], value: Any) -> None:
    """``config[path[0]][path[1]]... = value``, creating intermediate mappings."""
    node = config
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if isinstance(child, str) and path[i + 1] == "init_args":  # `model: aelab.models.CAE` shorthand
            child = node[part] = {"class_path": child}
        elif not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value
