"""Command-line overrides checked against the schema before Hydra composes anything.

An unknown preset, a misspelt key or a value of the wrong type gets one line that names the
problem and the fix (``InputError``); every command that takes overrides uses these checks.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import typing

from hwmodels.calibration import CalibrationError, load_fit
from sim.config.paths import presets
from sim.config.schema import AppConfig

GROUPS = ("hardware", "model", "workload", "runtime", "scheduler", "router", "system", "host")
# Keys that moved: old spelling -> new one (one line and exit 2, never a silent ignore).
MOVED = {"scheduler.kv_block_tokens": "attention.kv_block_tokens"}
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
# Lines of Hydra's messages that are advice about Hydra itself, not about the input.
_HYDRA_NOISE = ("See https://", "Set the environment variable", "Config search path", "provider=",
                "The above exception", "full_key:", "object_type=", "reference_type=")


class InputError(Exception):
    """Bad input found before composition."""


def check_override(arg: str, multirun: bool = True) -> None:
    """Raise InputError for an override that names no preset or key, or has a bad value.

    ``multirun`` is false for a single run, where a comma-separated value (a sweep) is an error.
    """
    if arg.startswith("~") and not arg.startswith("~hydra"):
        raise InputError(f"{arg}: removing a key is not supported; set its value instead (key=value)")
    if arg.startswith("-") or "=" not in arg:
        return
    key, value = arg.split("=", 1)
    moved = MOVED.get(key.lstrip("+"))
    if moved:
        raise InputError(f"{key.lstrip('+')} is now {moved} (one KV block size for every run): use {moved}={value}")
    if key.startswith("+") and not key.lstrip("+").startswith(("hydra", "experiment", "search")):
        key = _added_key(arg, key, value)
    if not multirun and not key.startswith("hydra") and "," in value and not any(ch in value for ch in "[]{}()"):
        raise InputError(f"{key}={value} is a sweep over {len(value.split(','))} values; add -m to run it: "
                         f"llmsim -m {key}={value}")
    if key.lstrip("+") == "experiment":
        known = presets("experiment")
        if not key.startswith("+"):
            raise InputError(f"{arg}: an experiment is added, not overridden; use +experiment={value}")
        for v in value.split(","):
            if v.strip() not in known:
                raise InputError(f"unknown experiment '{v}'{_did_you_mean(v, known)}; known: {', '.join(known)}")
        return
    if key.startswith(("hydra", "+", "~", "++")) or not key:
        return
    if value.startswith("[") and key.split(".")[0] not in ("sweep", "search"):
        raise InputError(f"{key}={value}: a list is not a value of this key; to sweep it use -m "
                         f"{key}={value.strip('[]')}")
    if "range(" in value:
        _check_range(arg, key, value)
    if any(ch in value for ch in "()[]{}$"):
        return  # sweep functions, interpolations: left to Hydra
    values = [v.strip() for v in value.split(",")] if value else [value]
    if key == "calibration":  # a fit to read: one line now rather than a traceback mid-run
        for path in (v for v in values if v):
            try:
                load_fit(path)
            except CalibrationError as err:
                raise InputError(str(err)) from None
        return
    if key in GROUPS:
        known = presets(key)
        for v in values:
            if v not in known:
                raise InputError(f"unknown {key} preset '{v}'{_did_you_mean(v, known)}; known: {', '.join(known)}")
        return
    hint = field_type(key)
    for v in values:
        _check_value(key, v, hint)


def _added_key(arg: str, key: str, value: str) -> str:
    """The key of ``+key=value`` or ``++key=value`` (add; add or override), checked: an entry of a map may be new,
    any other key must exist (``++`` added a misspelt key that the run then ignored), and ``+`` may not add one that
    exists."""
    path = key.lstrip("+")
    top = path.split(".")[0]
    names = [f.name for f in dataclasses.fields(AppConfig)]
    if top not in names:
        raise InputError(f"unknown key '{path}'{_did_you_mean(top, names)}; the config has: {', '.join(names)}")
    if typing.get_origin(_parent_hint(path)) is not dict:
        field_type(path)  # an unknown key: one line
        if not key.startswith("++"):
            raise InputError(f"{arg}: '{path}' is part of the config already; override it with {path}={value}")
    return path


def _check_range(arg: str, key: str, value: str) -> None:
    """Hydra's range() raises a bare ValueError (a step of 0) from deep in its sweeper: one line here instead."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        override = OverridesParser.create().parse_override(arg.lstrip("+"))
        if override.is_sweep_override():
            next(iter(override.sweep_iterator()), None)  # the first value is enough to raise (not the whole sweep)
    except ValueError as err:
        raise InputError(f"{key}={value}: {err}; range(start, stop, step) takes a step other than 0") from None


def hydra_error_line(err: BaseException) -> str:
    """One line from an error of Hydra or OmegaConf (a bad override, a missing preset, a wrong type).

    Hydra's messages run over several lines (the override, the parser's complaint, the options
    there are, the config search path); this keeps the ones about the input, joined by ``; ``,
    and the first line of the OmegaConf error that caused it.
    """
    lines: list[str] = []
    seen: BaseException | None = err
    while seen is not None and len(lines) < 4:
        text = [ln.strip() for ln in str(seen).splitlines() if ln.strip()]
        text = [ln for ln in text if not ln.startswith(_HYDRA_NOISE)]
        options = [ln for ln in text[1:] if not ln.endswith(":")]
        head = text[:1] + ([f"available: {', '.join(options)}"] if text[1:2] and text[1].startswith("Available")
                           else [ln for ln in text[1:2]])
        lines += [ln for ln in head if ln not in lines]
        seen = seen.__cause__
    line = "; ".join(lines) or type(err).__name__
    if "missing EQUAL" in line:
        line += " (an override is key=value)"
    return line


def _unwrap(hint):
    """``X`` for ``Optional[X]`` where X is a config dataclass (``system.scale_out``); else ``hint``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else hint


def _parent_hint(path: str):
    """The type hint of the field holding the last part of a dotted key (None if unknown)."""
    cls = AppConfig
    parts = path.split(".")
    for part in parts[:-1]:
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return None
        hint = _unwrap(hints[part])
        if not dataclasses.is_dataclass(hint):
            return hint
        cls = hint
    return None


def field_type(key: str):
    cls, path = AppConfig, []
    parts = key.split(".")
    for i, part in enumerate(parts):
        path.append(part)
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        if part not in names:
            where = ".".join(path[:-1]) or "the top level"
            if i == 0 and part in ("experiment", "search"):
                return None
            raise InputError(
                f"unknown key '{key}': {where} has no '{part}'{_did_you_mean(part, names)}; "
                f"keys there: {', '.join(names)}"
            )
        hint = _unwrap(hints[part])
        if dataclasses.is_dataclass(hint):
            if i == len(parts) - 1:
                return hint
            cls = hint
            continue
        if typing.get_origin(hint) is dict:
            if i == len(parts) - 2 and part == "matmul_dtype_rate":
                from hwmodels.numerics import KNOWN_DTYPES

                if parts[-1] not in KNOWN_DTYPES:
                    raise InputError(f"unknown number format '{parts[-1]}' in '{key}'; known: "
                                     f"{', '.join(KNOWN_DTYPES)}")
            return None  # a map: its keys are checked by the model code
        if i < len(parts) - 1:
            parent = ".".join(path)
            raise InputError(f"unknown key '{key}': '{parent}' is a plain value with no sub-keys")
        return hint
    return None


def _check_value(key: str, value: str, hint) -> None:
    if hint is None or dataclasses.is_dataclass(hint) or value in ("null", "None"):
        return
    args = typing.get_args(hint)
    if args:  # Optional[X]
        hint = next((a for a in args if a is not type(None)), str)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        names = [m.name for m in hint]
        if value not in names:
            raise InputError(f"{key}={value} is not one of: {', '.join(names)}{_did_you_mean(value, names)}")
    elif hint is bool:
        if value.lower() not in ("true", "false"):
            raise InputError(f"{key}={value}: expected true or false")
    elif hint in (int, float):
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"{key}={value}: expected a number") from None
        if hint is int and not number.is_integer():
            raise InputError(f"{key}={value}: expected a whole number")
        if hint is int and not value.lstrip("+-").replace("_", "").isdigit():  # 1e6: a float to OmegaConf
            plain = f"; write {int(number)}" if abs(number) < 1e12 else ""
            raise InputError(f"{key}={value}: expected a whole number written out in digits ({value} is read as a "
                             f"decimal number{plain})")


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
