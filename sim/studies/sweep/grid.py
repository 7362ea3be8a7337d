"""``llmsim-grid``: a fine numeric grid swept inside one process, no Hydra job per point.

Hydra's multirun composes and launches a job per point (about 0.1 s each, plus the point's
files); that suits tens to a few hundred points, each with its own folder and files. For a
fine grid (thousands of points of the analytic fidelity) this command composes the config
once, changes the swept fields in place for each point and keeps only the metrics: one row
per point in ``report/points.parquet``, the same table and charts ``llmsim-report`` makes.
Only one point (the first that finishes) is written in full, in ``example_point/``, for the
roofline and the timeline.

Axes use the command line of ``llmsim -m`` (``key=a,b,c``, ``key=range(start,stop,step)``), a
recipe's ``hydra.sweeper.params`` (``+experiment=<name>``), or two grids Hydra lacks:
``key=linspace(start,stop,num)`` and ``key=geomspace(start,stop,num)`` (numpy's, ends included).

    llmsim-grid +experiment=bandwidth_vs_compute 'hardware.hbm_bandwidth_GBps=geomspace(250,8000,40)'
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sim.batch.run import simulate
from sim.config.compose import compose_dict, to_run_config, with_resolved_model, without_hydra
from sim.metrics.summary import breakdown_by_kind, ops_columns, summarize
from sim.output.files import atomic_write, code_version, remove_stale_temps, write_run
from sim.studies.sweep import FAILURES, ReportError
from sim.studies.sweep.callbacks import drop_stale_report
from sim.studies.sweep.report import EXAMPLE_POINT, GRID_FILE
from sim.studies.sweep.table import failed_bound, make_table, summary_row, write_table
from sim.studies.sweep.vector_grid import point_at, run_vectorised

SPACES = re.compile(r"^(linspace|geomspace)\((.*)\)$")


def is_group(key: str) -> bool:
    """Whether ``key`` names a config group (a folder of presets in conf/), not a field."""
    from sim.config.paths import CONF_DIR

    return "." not in key and (CONF_DIR / key).is_dir()


def axis_values(key: str, text: str) -> list | None:
    """The values of ``key=text`` if it is a sweep (several values), else None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    match = SPACES.match(text.replace(" ", ""))
    if match:
        fn, inside = match.groups()
        parts = inside.split(",")
        if len(parts) != 3:
            raise ReportError(f"{key}={text}: {fn}(start, stop, num) takes three numbers (got {len(parts)})")
        start, stop, num = parts
        try:
            first, last, count = float(start), float(stop), int(num)
        except ValueError:
            raise ReportError(f"{key}={text}: {fn}(start, stop, num) needs numbers and a whole count") from None
        if not (math.isfinite(first) and math.isfinite(last)):
            raise ReportError(f"{key}={text}: {fn}(start, stop, num) needs finite ends")
        if count < 1 or (fn == "geomspace" and (first <= 0 or last <= 0)):
            raise ReportError(f"{key}={text}: {fn} needs num >= "
                              f"1" + (" and positive ends" if fn == "geomspace" else ""))
        values = [float(f"{v:.6g}") for v in getattr(np, fn)(first, last, count)]
        if _is_int_field(key):  # whole-number fields (cores, batch, tp) take rounded, distinct values
            rounded = list(dict.fromkeys(int(round(v)) for v in values))
            if rounded != values:
                print(f"llmsim-grid: note: {key} takes whole numbers: {text} runs {rounded}", file=sys.stderr)
            values = rounded
        return values
    override = OverridesParser.create().parse_override(f"{key}={text}")
    if not override.is_sweep_override():
        return None
    if not override.is_discrete_sweep():
        raise ReportError(f"{key}={text}: only lists, range(), linspace() and geomspace() can be swept here")
    try:
        values = list(override.sweep_iterator())
    except ValueError as err:  # range() with a step of 0
        raise ReportError(f"{key}={text}: {err}") from None
    if not values:
        raise ReportError(f"{key}={text} sweeps no values: range(start, stop, step) needs start < stop for a "
                          "step > 0 (start > stop for a step < 0)")
    return values


def _is_int_field(key: str) -> bool:

    from sim.config.overrides import field_type

    try:
        return field_type(key) is int
    except Exception:  # noqa: BLE001 - an unknown key is reported by check_override
        return False


def split_arguments(arguments: list[str]) -> tuple[list[str], dict[str, list]]:
    """(fixed overrides, {swept key: values}) from ``llmsim``-style arguments."""
    fixed, axes = [], {}
    for arg in arguments:
        key, _, text = arg.partition("=")
        values = axis_values(key.lstrip("+"), text) if "=" in arg and not key.startswith(("hydra", "+", "~")) else None
        if values is None:
            fixed.append(arg)
        else:
            axes[key] = values
    return fixed, axes


def grid_points(axes: dict[str, list]) -> list[dict]:
    """Every combination of the axes' values, the first axis slowest (as Hydra orders a sweep)."""
    keys = list(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(axes[k] for k in keys))]


def run_point(base: DictConfig, point: dict, groups: dict) -> tuple[dict, object, DictConfig]:
    """Simulate one point; (row of the table, RunResult or None, its config)."""
    group_key = tuple((k, point[k]) for k in point if is_group(k))
    dcfg = copy.deepcopy(groups.get(group_key, base))
    row = {**point, "status": "ok"}
    try:
        for key, value in point.items():
            if not is_group(key):
                OmegaConf.update(dcfg, key, value, merge=False)
        result = simulate(to_run_config(dcfg))
    except (*FAILURES, OmegaConfBaseException) as err:
        reason = str(err).splitlines()[0]
        return {**row, "status": "failed", "reason": reason, "bound": failed_bound(reason)}, None, dcfg
    except Exception as err:  # noqa: BLE001 - as in a multirun: a bug fails its point, not the sweep
        return {**row, "status": "failed", "reason": f"internal error: {type(err).__name__}: {err}",
                "bound": "invalid"}, None, dcfg
    summary = summarize(result)
    summary["breakdown"] = breakdown_by_kind(result)
    return {**row, **summary_row(summary)}, result, dcfg


def _chunk(base, points, groups):
    return [run_point(base, p, groups)[0] for p in points]


def run_grid(fixed: list[str], axes: dict[str, list], out: Path | None = None, jobs: int = 1,
             progress: bool | None = None):
    """Simulate every point of ``axes`` over the config of ``fixed``; return the table.

    With ``out``, also write ``grid.json``, ``report/points.parquet|csv`` and ``example_point/``.
    ``jobs`` > 1 splits the points over that many processes (joblib).
    """
    if out is not None:  # a grid killed mid-write into this folder before; an earlier grid's report and charts
        for folder in (out, out / "report", out / EXAMPLE_POINT):
            remove_stale_temps(folder)
        drop_stale_report(out)
    base_h = compose_dict(fixed, with_hydra=True)
    params = OmegaConf.select(base_h, "hydra.sweeper.params") or {}
    pinned = {item.split("=", 1)[0].lstrip("+~") for item in fixed if "=" in item}  # a plain value beats an axis
    recipe = {k: axis_values(k, str(v)) or [v] for k, v in params.items() if k not in pinned}
    axes = {**recipe, **axes}
    base = without_hydra(base_h)
    group_axes = [k for k in axes if is_group(k)]
    groups = {}
    for combo in itertools.product(*(axes[k] for k in group_axes)) if group_axes else []:
        extra = [f"{k}={v}" for k, v in zip(group_axes, combo, strict=True)]
        composed = compose_dict(fixed + extra)
        groups[tuple(zip(group_axes, combo, strict=True))] = composed
    started = time.perf_counter()
    table = run_vectorised(base, axes, groups, list(axes))
    if table is None:  # a grid the batch path cannot build in place: a config per point, as before
        points = grid_points(axes)
        rows = _run_all(base, points, groups, jobs, progress)
        table = make_table([{"point": i, **r} for i, r in enumerate(rows)], list(axes))
        des = getattr(base.get("fidelity"), "value", None) == "des"
        why = "discrete-event fidelity" if des else "built and run point by point"
        table.attrs.update({"vectorised": 0, "fallbacks": {why: len(points)}})
    wall = time.perf_counter() - started
    if out is not None:
        _write(out, base, table, axes, fixed, groups, wall)
    return table


def _run_all(base, points, groups, jobs: int, progress: bool | None) -> list[dict]:
    from tqdm import tqdm

    show = progress if progress is not None else sys.stderr.isatty()
    if jobs <= 1:
        return [run_point(base, p, groups)[0] for p in tqdm(points, unit="point", disable=not show, file=sys.stderr)]
    from joblib import Parallel, delayed

    size = max(1, min(50, len(points) // (jobs * 4) or 1))
    chunks = [points[i:i + size] for i in range(0, len(points), size)]
    done = Parallel(n_jobs=jobs, return_as="generator")(delayed(_chunk)(base, c, groups) for c in chunks)
    rows: list[dict] = []
    for part in tqdm(done, total=len(chunks), unit="chunk", disable=not show, file=sys.stderr):
        rows.extend(part)
    return rows


def _write(out: Path, base: DictConfig, table, axes: dict, fixed: list[str], groups: dict, wall: float) -> None:
    ok = table.index[table["status"] == "ok"]
    if len(ok):
        # the point as the axes give it, by its number (the table holds a null of a column of strings as NaN)
        _, result, dcfg = run_point(base, point_at(axes, list(axes), int(table.loc[ok[0], "point"])), groups)
        if result is not None:
            write_run(out / EXAMPLE_POINT, summarize(result), breakdown_by_kind(result), ops_columns(result),
                      OmegaConf.to_yaml(with_resolved_model(dcfg), resolve=True), result.cfg.seed)
    write_table(table, out / "report")
    body = {"name": base.name, "overrides": fixed, "params": list(axes),
            "axes": {k: [str(v) for v in vals] for k, vals in axes.items()}, "points": len(table),
            "failed": int((table["status"] != "ok").sum()), "wall_s": wall, "code_version": code_version(),
            "vectorised": table.attrs.get("vectorised", 0), "scalar_fallbacks": table.attrs.get("fallbacks", {}),
            "sweep": OmegaConf.to_container(base.sweep)}
    atomic_write(out / GRID_FILE, lambda p: p.write_text(json.dumps(body, indent=2) + "\n"))
