"""The searched parameters (``search.space``) and the ones derived from them (``search.derived``).

A space entry is ``key: {choices: [..]}`` or ``key: {low: a, high: b, step: s, log: false}``;
integer bounds (and step) give an integer parameter. A key that names a config field
(``hardware.num_cores``, ``parallel.tp``) is set in the run config; any other key
(``hbm_GBps_per_stack``) is a free variable that only ``search.derived`` expressions read, e.g.
``hardware.hbm_bandwidth_GBps: hardware.hbm_stacks * hbm_GBps_per_stack``.
"""

from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass
from typing import Any

from sim.studies.search import SearchError

CONFIG_ROOTS = ("hardware", "model", "system", "workload", "parallel", "precision", "attention", "cost", "runtime",
                "speculative", "scheduler", "router", "slo")
SAFE_FUNCS = {"min": min, "max": max, "round": round, "int": int, "float": float, "abs": abs, "ceil": math.ceil,
              "floor": math.floor, "sqrt": math.sqrt}


@dataclass(frozen=True)
class Param:
    key: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(isinstance(v, int) and not isinstance(v, bool)
                                            for v in (self.low, self.high) + ((self.step,) if self.step else ()))

    def suggest(self, trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.is_int:
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def values(self) -> list:
        """Every value (for enumerating a grid); only choices and stepped ranges can be enumerated."""
        if self.choices is not None:
            return list(self.choices)
        if self.step is None and not self.is_int:
            raise SearchError(f"search.space.{self.key} is a continuous range; give it a step to enumerate it")
        step = self.step or 1
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        return [self.low + i * step for i in range(n)]


def is_config_key(key: str) -> bool:
    return key.split(".", 1)[0] in CONFIG_ROOTS and "." in key


def parse_space(space: dict) -> list[Param]:
    """The parameters of ``search.space``; SearchError for an empty space or a bad entry."""
    if not space:
        raise SearchError("search.space is empty: give at least one parameter, e.g. "
                          "search.space: {hardware.num_cores: {low: 64, high: 192, step: 16}}")
    params = []
    for key, spec in space.items():
        where = f"search.space.{key}"
        if not isinstance(spec, dict):
            raise SearchError(f"{where} must be {{choices: [..]}} or {{low: .., high: .., step: ..}} (got {spec!r})")
        unknown = set(spec) - {"choices", "low", "high", "step", "log"}
        if unknown:
            raise SearchError(f"{where}: unknown field(s) {sorted(unknown)}; use choices, or low, high, step, log")
        if "choices" in spec:
            choices = tuple(spec["choices"] or ())
            if not choices:
                raise SearchError(f"{where}.choices is empty: the space has no design; list at least one value")
            params.append(Param(key, choices=choices))
            continue
        if "low" not in spec or "high" not in spec:
            raise SearchError(f"{where} needs low and high (or choices)")
        low, high, step = spec["low"], spec["high"], spec.get("step")
        for name, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise SearchError(f"{where}.{name} must be a finite number (got {value!r})")
        if not low <= high:
            raise SearchError(f"{where}: low={low} > high={high}: the range is empty")
        if step is not None and not step > 0:
            raise SearchError(f"{where}.step must be > 0 (got {step})")
        if spec.get("log") and not low > 0:
            raise SearchError(f"{where}: a log range needs low > 0 (got {low})")
        params.append(Param(key, low=low, high=high, step=step, log=bool(spec.get("log", False))))
    return params


def _name(key: str) -> str:
    return key.replace(".", "__")


def check_derived(derived: dict, params: list[Param]) -> None:
    """SearchError for a derived expression that reads an unknown name or is not plain arithmetic."""
    known = {_name(p.key) for p in params} | {_name(k) for k in derived} | set(SAFE_FUNCS)
    for key, expr in derived.items():
        try:
            tree = ast.parse(_name_expr(str(expr), [p.key for p in params] + list(derived)), mode="eval")
        except SyntaxError as err:
            raise SearchError(f"search.derived.{key}: not an expression: {expr!r} ({err.msg})") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in known:
                raise SearchError(f"search.derived.{key}: '{node.id.replace('__', '.')}' is neither a search.space "
                                  f"key nor a derived key")
            if isinstance(node, (ast.Attribute, ast.Lambda, ast.Subscript)):
                raise SearchError(f"search.derived.{key}: only arithmetic over space keys is allowed ({expr!r})")


def _name_expr(expr: str, keys: list[str]) -> str:
    for key in sorted(keys, key=len, reverse=True):  # longest first: a.b.c before a.b
        expr = expr.replace(key, _name(key))
    return expr


def resolve(values: dict, derived: dict) -> dict:
    """``values`` (space key -> value) plus every derived key, evaluated in order."""
    out = dict(values)
    for key, expr in derived.items():
        scope = {_name(k): v for k, v in out.items()}
        try:
            out[key] = eval(_name_expr(str(expr), list(out)), {"__builtins__": {}, **SAFE_FUNCS}, scope)  # noqa: S307
        except (ArithmeticError, TypeError, ValueError) as err:  # for these values: the trial's reason names the key
            raise type(err)(f"search.derived.{key} = {expr}: {err}") from None
    return out


def config_overrides(values: dict) -> dict:
    """The entries of ``values`` that set a run-config field."""
    return {k: v for k, v in values.items() if is_config_key(k)}


def grid(params: list[Param]) -> list[dict]:
    """Every combination of the parameters' values (for small, enumerable spaces)."""
    keys = [p.key for p in params]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(p.values() for p in params))]
