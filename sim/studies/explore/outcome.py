"""Simulating an explorer state the way the ``llmsim`` command does, bad input turned into words.

The presets are composed once per choice (Hydra's compose costs about 0.3 s) and cached; a change
of a slider or box then updates the composed tree in place and simulates it, as ``llmsim-grid``
does. The numbers are those ``llmsim <overrides>`` prints for the same overrides: the same
composition, calibration fill-in, typed config and simulation (a test holds them equal).
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass, field

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hwmodels.chip import HardwareError
from sim.config.compose import compose_dict, to_run_config
from sim.config.errors import RunError
from sim.config.overrides import InputError, check_override
from sim.studies.explore.controls import (
    BY_KEY,
    CONTROLS,
    DEFAULT_PRESETS,
    EXPLORER_DEFAULTS,
    PRESET_GROUPS,
    applies,
    group_overrides,
    parse_number,
    preset_choices,
    serving,
    value_overrides,
)
from sim.studies.kinds import workload as workload_kind
from workloads.model import ModelError

FAILURES = (HardwareError, ModelError, RunError, InputError, OmegaConfBaseException, ValueError)
GENERAL = "general"  # errors that name no single control


@dataclass
class Outcome:
    """What one state gives: its overrides, the run's summary and tables, or the errors per control."""

    overrides: list[str]
    kind: str = "single_batch"
    summary: dict | None = None
    breakdown: list[dict] = field(default_factory=list)
    result: object = None
    errors: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.summary is not None

    @property
    def records(self) -> list:
        """The op records of a single batch (empty for a serving run or a failed one)."""
        return self.result.timeline.records if self.ok and not serving(self.kind) else []

    def ops_table(self) -> pd.DataFrame | None:
        """The per-op table the run's ``ops.csv`` holds (single batch only)."""
        if not self.records:
            return None
        from sim.metrics.summary import ops_columns

        return pd.DataFrame(ops_columns(self.result))


@functools.lru_cache(maxsize=32)
def _composed(groups: tuple[str, ...]) -> DictConfig:
    return compose_dict(list(groups))


def composed(chosen: dict[str, str]) -> DictConfig:
    """A private copy of the config the presets of ``chosen`` compose to (cached composition)."""
    return copy.deepcopy(_composed(tuple(group_overrides(chosen))))


def preset_values(chosen: dict[str, str]) -> dict:
    """Every control's value as the presets of ``chosen`` set it (the explorer's own defaults on top)."""
    dcfg = _composed(tuple(group_overrides(chosen)))
    values = {c.key: OmegaConf.select(dcfg, c.key) for c in CONTROLS}
    values = {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()}
    return {**values, **EXPLORER_DEFAULTS}


def default_state() -> dict:
    """The state the explorer opens with: the teaching NPU, Llama-2-7B, one batch."""
    chosen = dict(DEFAULT_PRESETS)
    return {"presets": chosen, "values": preset_values(chosen)}


def unknown_preset(chosen: dict[str, str]) -> str | None:
    """What is wrong with a preset that no picker offers (a request made by hand), or None: checked before the
    presets are composed, so that it is one line, not Hydra's list of every option and its search path."""
    for group in PRESET_GROUPS:
        value, known = chosen.get(group), preset_choices(group)
        if value and value not in known:
            return f"unknown {group} preset {value!r}; choose one of {', '.join(known)}"
    return None


def checked_values(state: dict) -> tuple[dict, dict[str, str]]:
    """(the state's values as numbers, {control key: what is wrong}) for the controls its run reads."""
    values, errors = {}, {}
    kind = state["presets"]["workload"]
    for key, raw in state["values"].items():
        control = BY_KEY.get(key)
        if control is None or not applies(control, kind):
            continue
        if control.kind == "choice":
            if raw not in control.choices:
                errors[key] = f"{control.label}: choose one of {', '.join(control.choices)}"
            else:
                values[key] = raw
            continue
        try:
            values[key] = parse_number(control, raw)
        except ValueError as err:
            errors[key] = str(err)
    return values, errors


def overrides_of(state: dict) -> list[str]:
    """The ``llmsim`` overrides that reproduce ``state`` (presets, then the values that differ)."""
    chosen = state["presets"]
    values, _ = checked_values(state)
    base = {c.key: OmegaConf.select(_composed(tuple(group_overrides(chosen))), c.key) for c in CONTROLS}
    base = {k: (v.value if hasattr(v, "value") else v) for k, v in base.items()}
    return group_overrides(chosen) + value_overrides(values, base, chosen["workload"])


def evaluate(state: dict, tables: bool = True) -> Outcome:
    """Simulate ``state``; an Outcome with the summary, or with the errors next to their controls.

    ``tables`` adds the breakdown by operator (the charts need it, a map point not).
    """
    started = time.perf_counter()
    chosen = state.get("presets", {})
    missing = [g for g in PRESET_GROUPS if not chosen.get(g)]
    if missing:
        return Outcome([], errors={GENERAL: f"choose a {', '.join(missing)} preset"})
    if unknown := unknown_preset(chosen):
        return Outcome([], errors={GENERAL: unknown})
    values, errors = checked_values(state)
    if errors:
        return Outcome([], chosen["workload"], errors=errors)
    out = Outcome(overrides_of(state), chosen["workload"])
    try:
        for override in out.overrides:
            check_override(override, multirun=False)
        dcfg = composed(chosen)
        for key, value in values.items():
            OmegaConf.update(dcfg, key, value, merge=False)
        cfg = to_run_config(dcfg)
        entry = workload_kind(cfg.workload.kind)
        out.result = entry.simulate(cfg)
        out.summary = entry.summarize(out.result).as_dict()
    except FAILURES as err:
        out.errors = {_blame(str(err)): one_line(err)}
        return out
    if tables and not serving(out.kind):
        from sim.metrics.summary import breakdown_by_kind

        out.breakdown = breakdown_by_kind(out.result)
    out.wall_s = time.perf_counter() - started
    return out


def one_line(err: BaseException) -> str:
    """An error as the one line the commands print (Hydra and OmegaConf add context lines)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _blame(message: str) -> str:
    """The control an error message names (its full key, else its last word), or GENERAL."""
    for c in CONTROLS:
        if c.key in message:
            return c.key
    for c in CONTROLS:
        if c.key.split(".")[-1] in message:
            return c.key
    return GENERAL
