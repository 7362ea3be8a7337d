"""The tidy table of a sweep: one row per point, every swept parameter and every metric.

A point is a folder of the sweep (Hydra's ``<sweep dir>/<n>/``). Its parameters come from the
overrides Hydra recorded (``.hydra/overrides.yaml``), its metrics from ``summary.json``
flattened to dotted names (``time_by_bound_s.memory``, ``utilisation.hbm_bandwidth``), so a key
added to the summary later becomes a column with no change here. A point that failed has
``status = failed`` and its ``reason``. Extra columns:

* ``time_by_op_s.<kind>``: seconds by operator type (prefill and decode together);
* ``bound``: the dominant bound, the one with the most time in ``time_by_bound_s``; a point
  that failed because the model does not fit is ``capacity``-bound; other failures ``invalid``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from sim.output.files import atomic_write, read_json_object
from sim.studies.sweep import ReportError
from sim.studies.sweep.points import held_point, sweep_id

BOUNDS = ("compute", "memory", "interconnect", "overhead")
# Columns that describe a point but are not metrics.
ID_COLUMNS = ("point", "dir", "status", "reason", "bound")
SKIP_SUMMARY_KEYS = ("breakdown",)


def flatten(value: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}, "c": [..]}`` -> ``{"a.b": 1}``: nested dicts dotted, lists dropped."""
    flat = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            flat.update(flatten(item, f"{name}."))
        elif item is None or isinstance(item, (bool, int, float, str)):
            flat[name] = item
    return flat


def parse_value(text: str):
    """An override's value as Hydra would type it: int, float, bool, null or the string."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return loaded if loaded is None or isinstance(loaded, (bool, int, float, str)) else text


def parse_overrides(overrides: list[str]) -> dict:
    """``["hardware.freq_GHz=2", "+experiment=x"]`` -> ``{"hardware.freq_GHz": 2, "experiment": "x"}``."""
    params = {}
    for item in overrides:
        if "=" not in item:
            continue
        key, value = item.split("=", 1)
        key = key.lstrip("+~")
        if key.startswith("hydra"):
            continue
        params[key] = parse_value(value)
    return params


def summary_row(summary: dict) -> dict:
    """The metric columns of one finished point."""
    row = flatten({k: v for k, v in summary.items() if k not in SKIP_SUMMARY_KEYS})
    by_kind: dict[str, float] = {}
    for item in summary.get("breakdown", []):
        by_kind[item["kind"]] = by_kind.get(item["kind"], 0.0) + item["time_s"]
    row.update({f"time_by_op_s.{kind}": t for kind, t in by_kind.items()})
    bounds = summary.get("time_by_bound_s", {})
    row["bound"] = max(BOUNDS, key=lambda b: bounds.get(b) or 0.0) if bounds else None
    return row


def failed_bound(reason: str) -> str:
    return "capacity" if "does not fit" in reason else "invalid"


def read_point(point_dir: Path, sweep: str | None = None) -> dict:
    """One row: parameters, status and metrics of the point in ``point_dir``; with ``sweep`` (the sweep run's id),
    a result an earlier sweep left in the folder is "missing" (this sweep did not reach the point)."""
    row: dict = {"point": int(point_dir.name) if point_dir.name.isdigit() else point_dir.name,
                 "dir": point_dir.name}
    overrides_file = point_dir / ".hydra" / "overrides.yaml"
    if overrides_file.exists():
        row.update(parse_overrides(yaml.safe_load(overrides_file.read_text()) or []))
    summary, failed = point_dir / "summary.json", point_dir / "failed.json"
    stamp = held_point(point_dir).get("sweep") if summary.exists() else (read_json_object(failed) or {}).get("sweep")
    if sweep is not None and (summary.exists() or failed.exists()) and stamp != sweep:
        row.update(status="missing", reason="an earlier sweep's result is in its folder; this sweep did not reach "
                   "the point (run the same command again to finish)")
    elif summary.exists():
        body = read_json_object(summary)
        if body is not None:
            row["status"] = "ok"
            row.update(summary_row(body))
        else:  # one point's file truncated or replaced by hand: that point fails, the report goes on
            row.update(status="failed", reason=f"{summary} could not be read as a run's summary", bound="invalid")
    elif failed.exists():
        reason = (read_json_object(failed) or {}).get("reason", f"{failed} could not be read")
        row.update(status="failed", reason=reason, bound=failed_bound(reason))
    else:
        row["status"] = "missing"  # still running, or the job died before writing anything
    return row


def point_dirs(sweep_dir: Path) -> list[Path]:
    """The point folders of a sweep (those Hydra made: they hold ``.hydra/`` or results)."""
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
            and any((p / name).exists() for name in (".hydra", "summary.json", "failed.json"))]
    return sorted(dirs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def expected_points(sweep_dir: Path) -> int | None:
    """How many points the sweep last started in ``sweep_dir`` has (from Hydra's ``multirun.yaml``), or None."""
    from omegaconf import OmegaConf

    from sim.studies.sweep.callbacks import count_points

    saved = Path(sweep_dir) / "multirun.yaml"
    try:
        return count_points(OmegaConf.load(saved)) if saved.is_file() else None
    except Exception:  # noqa: BLE001 - an unreadable or foreign file: every point folder counts, as before
        return None


def collect(sweep_dir: Path) -> pd.DataFrame:
    """The table of the sweep in ``sweep_dir``; ``attrs["params"]`` lists the parameter columns. With Hydra's
    ``multirun.yaml`` the table holds that sweep's points only: folders numbered past its count are an earlier
    sweep's in the same folder (left out), and points it has no folder for were never started (rows "missing")."""
    sweep_dir = Path(sweep_dir)
    dirs = point_dirs(sweep_dir) if sweep_dir.is_dir() else []
    total = expected_points(sweep_dir) if dirs else None
    if total is not None:
        dirs = [d for d in dirs if not d.name.isdigit() or int(d.name) < total]
    if not dirs:
        raise ReportError(f"{sweep_dir} holds no sweep points (folders with summary.json or failed.json)")
    current = sweep_id(sweep_dir) if total is not None else None
    rows = [read_point(d, current) for d in dirs]
    if total is not None:
        started = {row["point"] for row in rows}
        rows += [{"point": n, "dir": str(n), "status": "missing", "reason": "never started (the sweep was stopped "
                  "before it; run the same command again to finish)"} for n in range(total) if n not in started]
        rows.sort(key=lambda row: (not isinstance(row["point"], int), row["point"] if isinstance(row["point"], int)
                                   else 0, str(row["point"])))
    params: list[str] = []
    for d in dirs:
        overrides_file = d / ".hydra" / "overrides.yaml"
        if overrides_file.exists():
            for key in parse_overrides(yaml.safe_load(overrides_file.read_text()) or []):
                if key not in params:
                    params.append(key)
    return make_table(rows, params)


def make_table(rows: list[dict] | pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """A DataFrame of ``rows`` with id and parameter columns first; ``attrs`` records which are which."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    for col in ("status", "reason", "bound"):
        if col not in df:
            df[col] = None
    first = [c for c in ID_COLUMNS if c in df] + [p for p in params if p in df]
    attrs = dict(df.attrs)
    df = df[first + [c for c in df.columns if c not in first]]
    df.attrs.update(attrs)
    df.attrs["params"] = [p for p in params if p in df]
    return df


def swept(df: pd.DataFrame) -> list[str]:
    """Parameters that take more than one value across the points, in override order."""
    return [p for p in df.attrs.get("params", []) if _varies(df[p])]


def _varies(column: pd.Series) -> bool:
    """Whether the column holds more than one value as text (numbers that differ do; a cheap check first)."""
    if pd.api.types.is_numeric_dtype(column) and column.nunique() > 1:
        return True
    return column.astype(str).nunique() > 1


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Numeric columns that are metrics (not parameters, not ids)."""
    skip = set(ID_COLUMNS) | set(df.attrs.get("params", []))
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])]


def check_metric(df: pd.DataFrame, name: str) -> str:
    """``name`` if it is a numeric metric of ``df``; else ReportError listing the known ones."""
    known = metric_columns(df)
    if name not in known:
        raise ReportError(f"'{name}' is not a metric; known: {', '.join(known)}")
    return name


def check_param(df: pd.DataFrame, name: str) -> str:
    known = df.attrs.get("params", [])
    if name not in known:
        raise ReportError(f"'{name}' is not a parameter of this sweep; swept: {', '.join(swept(df)) or 'none'}")
    return name


def numeric(values) -> bool:
    """Whether every value is a number (so an axis can be sorted numerically)."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and not
               (isinstance(v, float) and math.isnan(v)) for v in values)


LARGE_TABLE = 2_000  # rows from which the CSV is written by Arrow's C++ writer (pandas' takes minutes)


def write_table(df: pd.DataFrame, out_dir: Path, stem: str = "points") -> tuple[Path, Path]:
    """``<stem>.parquet`` and ``<stem>.csv`` in ``out_dir``, atomically.

    Columns that mix types (a swept group of numbers and names) are written as text; the table is not
    copied otherwise. A large table's CSV is written by Arrow's C++ writer."""
    parquet, csv = Path(out_dir) / f"{stem}.parquet", Path(out_dir) / f"{stem}.csv"
    mixed = {col: df[col].map(lambda v: None if v is None else str(v)) for col in df.columns
             if df[col].dtype == object and df[col].map(type).nunique() > 1}
    frame = df.assign(**mixed) if mixed else df
    atomic_write(parquet, lambda p: frame.to_parquet(p, index=False))
    atomic_write(csv, lambda p: _to_csv(frame, p))
    return parquet, csv


def _to_csv(frame: pd.DataFrame, path: Path) -> None:
    if len(frame) < LARGE_TABLE:
        frame.to_csv(path, index=False)
        return
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)
