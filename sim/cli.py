"""The ``llmsim`` command: a Hydra app over conf/.

Before Hydra composes anything, the command-line overrides are checked against the schema so
that an unknown preset, a misspelt key or a value of the wrong type gets one line that names
the problem and the fix. Errors the model code finds (a tensor-parallel degree that does not
divide the heads, a model that does not fit) also end in one line and exit status 2; inside a
multirun the failed point is recorded in its folder as ``failed.json`` and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import json
import sys
import typing
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from hwmodels.chip import HardwareError
from sim.config import RunConfig, RunError, WorkloadKind, register_configs
from sim.metrics import breakdown_by_kind, ops_columns, summarize
from sim.outputs import atomic_write, write_run
from sim.report import render
from sim.run import simulate
from sim.serving.job import serve_job
from sim.sweep.points import finished_dir, mark_finished, point_key, reuse
from sim.trace import write_trace
from workloads.model import ModelError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ("hardware", "model", "workload", "runtime", "scheduler")
EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad input found before composition."""


def presets(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def main() -> None:
    """Console entry point."""
    register_configs()
    args = sys.argv[1:]
    multirun = any(a in ("-m", "--multirun") or a.startswith("+experiment=") for a in args)
    try:
        for arg in args:
            check_override(arg, multirun)
    except InputError as err:
        print(f"llmsim: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    _hydra_main()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(dcfg: DictConfig) -> dict | None:
    return run_job(dcfg)


def run_job(dcfg: DictConfig) -> dict | None:
    """Simulate one composed config, print its summary and write its files."""
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    key = point_key(dcfg) if multirun and dcfg.output.write_files else None
    if key and not dcfg.sweep.rerun:  # finished in an earlier sweep beside this one: reuse it
        source = finished_dir(key, Path(hc.sweep.dir), out_dir, trace=dcfg.output.trace)
        if source is not None:
            print(f"llmsim: point {hc.job.num} finished before ({source}); reused it (sweep.rerun=true to re-simulate)")
            return reuse(source, out_dir)
    try:
        cfg: RunConfig = OmegaConf.to_object(dcfg)
        if cfg.workload.kind is WorkloadKind.serving:  # a stream of requests through a scheduler (sim/serving/)
            done = (lambda: mark_finished(key, Path(hc.sweep.dir), out_dir)) if key else None
            return serve_job(cfg, dcfg, out_dir, done)
        result = simulate(cfg)
    except (HardwareError, ModelError, RunError) as err:
        return _fail(hc.mode, out_dir, str(err))
    except Exception as err:  # noqa: BLE001 - in a sweep, a bug fails its point, not the sweep
        if not multirun:
            raise
        return _fail(hc.mode, out_dir, f"internal error: {type(err).__name__}: {err}")
    summary = summarize(result)
    breakdown = breakdown_by_kind(result)
    if cfg.output.write_files:
        config_yaml = OmegaConf.to_yaml(dcfg, resolve=True)
        ops = ops_columns(result)
        write_run(out_dir, summary, breakdown, ops, config_yaml, cfg.seed)
        if cfg.output.trace:
            write_trace(ops, out_dir / "trace.json", title=f"{cfg.model.name} on {cfg.hardware.name}")
        if key:
            mark_finished(key, Path(hc.sweep.dir), out_dir)
    if cfg.output.print_summary:
        print(render(summary, breakdown))
        if cfg.output.write_files:
            trace = ", trace.json" if cfg.output.trace else ""
            print(f"  outputs                 {out_dir}/ (summary.json, ops.parquet, ops.csv, config.yaml{trace})")
    return summary


def _fail(mode: RunMode, out_dir: Path, reason: str) -> None:
    print(f"llmsim: error: {reason}", file=sys.stderr)
    if mode == RunMode.MULTIRUN:
        atomic_write(out_dir / "failed.json", lambda p: p.write_text(json.dumps({"reason": reason}) + "\n"))
        return None
    sys.exit(EXIT_BAD_INPUT)


# Override checks ----------------------------------------------------------------------------
def check_override(arg: str, multirun: bool = True) -> None:
    """Raise InputError for an override that names no preset or key, or has a bad value.

    ``multirun`` is false for a single run, where a comma-separated value (a sweep) is an error.
    """
    if arg.startswith("~") and not arg.startswith("~hydra"):
        raise InputError(f"{arg}: removing a key is not supported; set its value instead (key=value)")
    if arg.startswith("-") or "=" not in arg:
        return
    key, value = arg.split("=", 1)
    if key.startswith("+") and not key.startswith(("++", "+hydra", "+experiment", "+search")):
        path = key.lstrip("+")
        top = path.split(".")[0]
        names = [f.name for f in dataclasses.fields(RunConfig)]
        if top not in names:
            raise InputError(f"unknown key '{path}'{_did_you_mean(top, names)}; the config has: {', '.join(names)}")
        if typing.get_origin(_parent_hint(path)) is not dict:
            raise InputError(f"{arg}: '{path}' is part of the config already; override it with {path}={value}")
        key = path
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
        raise InputError(f"{key}={value}: a list is not a value of this key; to sweep it use -m {key}={value.strip('[]')}")
    if any(ch in value for ch in "()[]{}$"):
        return  # sweep functions, interpolations: left to Hydra
    values = [v.strip() for v in value.split(",")] if value else [value]
    if key in GROUPS:
        known = presets(key)
        for v in values:
            if v not in known:
                raise InputError(f"unknown {key} preset '{v}'{_did_you_mean(v, known)}; known: {', '.join(known)}")
        return
    field_type = _field_type(key)
    for v in values:
        _check_value(key, v, field_type)


def _parent_hint(path: str):
    """The type hint of the field holding the last part of a dotted key (None if unknown)."""
    cls = RunConfig
    parts = path.split(".")
    for part in parts[:-1]:
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return None
        hint = hints[part]
        if not dataclasses.is_dataclass(hint):
            return hint
        cls = hint
    return None


def _field_type(key: str):
    cls, path = RunConfig, []
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
        hint = hints[part]
        if dataclasses.is_dataclass(hint):
            if i == len(parts) - 1:
                return hint
            cls = hint
            continue
        if typing.get_origin(hint) is dict:
            if i == len(parts) - 2 and part == "matmul_dtype_rate":
                from hwmodels.numerics import KNOWN_DTYPES

                if parts[-1] not in KNOWN_DTYPES:
                    raise InputError(f"unknown number format '{parts[-1]}' in '{key}'; known: {', '.join(KNOWN_DTYPES)}")
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


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
