"""``llmsim-report <dir>``: the tidy table and the charts of a sweep, or the charts of one run.

For a sweep folder (``results/sweeps/<name>/<timestamp>/``, made by ``llmsim -m`` or
``llmsim-grid``) it writes, under ``<dir>/report/``:

* ``points.parquet``, ``points.csv``: one row per point, every swept parameter and metric;
* ``regime_map.png``: the dominant bound over two swept axes, contours of a metric;
* ``breakdown_by_bound.png``, ``breakdown_by_op.png``: stacked time per point;
* ``pareto.png``: the front of two metrics;
* ``roofline_point<n>.png``, ``decode_step_point<n>.png``, ``trace_point<n>.json``: one point's
  roofline, Gantt of a decode step and Chrome trace.

For a run folder (one with ``summary.json``) it writes ``roofline.png``, ``decode_step.png``
and ``trace.json`` beside the run's files. Chart choices default to the sweep's own ``sweep``
config (``sweep.x``, ``sweep.y``, ``sweep.metric``, ``sweep.pareto``), then to the options here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hwmodels.chip import HardwareConfig, HardwareError
from sim.metrics import catalog
from sim.output.files import read_json_object, remove_stale_temps
from sim.output.trace import write_trace
from sim.plots.charts import CHARTS, Chart
from sim.plots.regime import axis_values
from sim.plots.style import fmt_value, label, name, short
from sim.studies.sweep import ReportError
from sim.studies.sweep.table import check_metric, check_param, collect, metric_columns, swept, write_table

GRID_FILE = "grid.json"
EXAMPLE_POINT = "example_point"  # a grid's one point written in full (for its roofline and timeline)
PARETO_X = ("peak_power_W", "avg_power_W", "chip_cost_usd", "ttft_s")  # first one present is the default x
PARETO_Y = "output_tokens_per_s"


# the ops table's columns the run's charts and trace read (sim/metrics/summary.py ``ops_columns`` writes them)
OPS_COLUMNS = ("phase", "step", "steps", "segment", "op", "kind", "count", "start_s", "end_s", "duration_s", "flops",
               "hbm_bytes", "bound")


def load_hardware(config_yaml: Path) -> HardwareConfig:
    """The chip of a run, from its ``config.yaml`` (keys the current schema lacks are ignored)."""
    try:
        node = OmegaConf.to_container(OmegaConf.load(config_yaml).hardware, resolve=True)
    except (OSError, yaml.YAMLError, OmegaConfBaseException, AttributeError) as err:  # edited, cut short, no chip
        raise ReportError(f"cannot read the chip of {config_yaml}: {str(err).splitlines()[0]}") from None
    if not isinstance(node, dict):
        raise ReportError(f"cannot read the chip of {config_yaml}: its hardware is not a mapping")
    names = {f.name for f in dataclasses.fields(HardwareConfig)}
    try:
        known = OmegaConf.merge(OmegaConf.structured(HardwareConfig), {k: v for k, v in node.items() if k in names})
        return OmegaConf.to_object(known)
    except (OmegaConfBaseException, HardwareError) as err:
        raise ReportError(f"cannot read the chip of {config_yaml}: {str(err).splitlines()[0]}") from None


def _json(path: Path) -> dict:
    """The JSON object in ``path``; a file cut short or edited by hand is one line (ReportError), not a traceback."""
    body = read_json_object(path)
    if body is None:
        raise ReportError(f"{path} could not be read as JSON; run the sweep or the run again to rewrite it")
    return body


def _parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise ReportError(f"{path} could not be read: {str(err).splitlines()[0]}") from None


def sweep_options(sweep_dir: Path) -> dict:
    """The ``sweep`` node of the sweep's own config (multirun.yaml or grid.json), or {}."""
    grid = sweep_dir / GRID_FILE
    if grid.exists():
        return _json(grid).get("sweep", {})
    multirun = sweep_dir / "multirun.yaml"
    if multirun.exists():
        node = OmegaConf.load(multirun).get("sweep")
        return OmegaConf.to_container(node) if node is not None else {}
    return {}


def load_table(sweep_dir: Path) -> pd.DataFrame:
    """The sweep's table: collected from its point folders, or a grid's own table."""
    grid = sweep_dir / GRID_FILE
    if grid.exists():
        df = _parquet(sweep_dir / "report" / "points.parquet")
        df.attrs["params"] = _json(grid).get("params", {})
        return df
    return collect(sweep_dir)


def _what(df: pd.DataFrame) -> str:
    parts = []
    for col in ("run.model", "run.hardware"):
        values = df[col].dropna().unique() if col in df else []
        parts.append(str(values[0]) if len(values) == 1 else ("various" if len(values) else "?"))
    return f"{parts[0]} on {parts[1]}"


def _pareto_pair(df: pd.DataFrame, pareto: list[str] | None) -> tuple[str, str] | None:
    if pareto:
        if len(pareto) != 2:
            raise ReportError(f"pareto takes two metrics (x and y), got {len(pareto)}: {', '.join(pareto)}")
        for name in pareto:
            check_metric(df, name)
            try:
                catalog.metric(name)  # which way is better
            except catalog.UnknownMetric as err:
                raise ReportError(str(err)) from None
        return pareto[0], pareto[1]
    known = metric_columns(df)
    x = next((c for name in PARETO_X for c in known if c.rsplit(".", 1)[-1] == name), None)
    return (x, PARETO_Y) if x and PARETO_Y in known else None


def _slice(df: pd.DataFrame, axes: list[str], others: list[str]) -> tuple[pd.DataFrame, str]:
    """The points where every swept key not on the chart takes its first value, and a note saying so."""
    note = []
    for key in others:
        first = axis_values(df[key])[0]
        df = df[df[key] == first]
        note.append(f"{short(key)}={fmt_value(first)}")
    return df, (f" (at {', '.join(note)})" if note else "")


def report_sweep(sweep_dir: Path, x: str | None = None, y: str | None = None, metric: str | None = None,
                 pareto: list[str] | None = None, point: int | None = None, out: Path | None = None) -> dict[str, Path]:
    """Write the table and charts of the sweep in ``sweep_dir`` to ``out`` (default ``<sweep_dir>/report``).

    Returns:
        What was written, by name.
    """
    sweep_dir = Path(sweep_dir)
    opts = sweep_options(sweep_dir)
    x, y = x or opts.get("x"), y or opts.get("y")
    metric = metric or opts.get("metric") or PARETO_Y
    pareto = pareto or opts.get("pareto") or None
    df = load_table(sweep_dir)
    out = Path(out) if out else sweep_dir / "report"
    remove_stale_temps(out)  # a report killed mid-write before
    written: dict[str, Path] = {}
    if not (sweep_dir / GRID_FILE).exists():
        written["table"], written["table_csv"] = write_table(df, out)
    axes = swept(df)
    x = check_param(df, x) if x else (axes[0] if axes else None)
    y = check_param(df, y) if y else next((a for a in axes if a != x), None)
    if x is not None and x == y:
        raise ReportError(f"the regime map's axes are both {x}: choose two different swept keys for --x and --y")
    if df["status"].eq("ok").any():
        check_metric(df, metric)
    what = _what(df)
    if x:
        on_chart = [a for a in (x, y) if a]
        sliced, note = _slice(df, on_chart, [a for a in axes if a not in on_chart])
        swept_text = f"{name(x)} x {name(y)}" if y else name(x)
        chart = CHARTS[Chart.regime_map]
        written[Chart.regime_map.value] = chart.draw(sliced, x, y, metric, out / chart.file(),
                                                     f"Bottleneck regime map: {what}, swept {swept_text}{note}")
    for kind, by, prefix in ((Chart.breakdown_by_bound, "bound", "time_by_bound_s."),
                             (Chart.breakdown_by_op, "operator type", "time_by_op_s.")):
        if not any(c.startswith(prefix) for c in df.columns):
            continue  # a sweep of serving runs: their time is requests and steps, not ops
        chart = CHARTS[kind]
        written[kind.value] = chart.draw(df, axes, path=out / chart.file(), title=f"Time by {by}: {what}")
    ok = df[df["status"] == "ok"]
    pair = _pareto_pair(df, pareto) if len(ok) else None
    if pair:
        chart = CHARTS[Chart.pareto]
        written[Chart.pareto.value] = chart.draw(ok, pair[0], pair[1], axes, out / chart.file(),
                                                 f"Pareto front: {label(pair[1])} vs {label(pair[0])}, {what}"
                                                 f"\nswept {', '.join(name(a) for a in axes) or 'nothing'}")
    run_dir = _example_run(sweep_dir, df, point)
    if run_dir is not None:
        tag = f"_point{run_dir.name}" if run_dir.name.isdigit() else f"_{run_dir.name}"
        written.update({f"{k}{tag}": v for k, v in report_run(run_dir, out, tag).items()})
    return written


def _example_run(sweep_dir: Path, df: pd.DataFrame, point: int | None) -> Path | None:
    """The run folder whose roofline and timeline the sweep report draws."""
    if (sweep_dir / EXAMPLE_POINT / "ops.parquet").exists() and point is None:
        return sweep_dir / EXAMPLE_POINT
    candidates = df[df["status"] == "ok"]
    if point is not None:
        candidates = candidates[candidates["point"] == point]
        if candidates.empty:
            raise ReportError(f"point {point} did not finish in {sweep_dir}; finished: "
                              f"{', '.join(map(str, df.loc[df['status'] == 'ok', 'point']))}")
    if "dir" not in df.columns:  # an llmsim-grid table: its points have no run folders of their own
        if point is not None:
            raise ReportError(f"--point draws a point's own run folder, which an llmsim -m sweep writes; {sweep_dir} "
                              "holds llmsim-grid's table (run that point with llmsim to draw it)")
        return None
    for _, row in candidates.iterrows():
        run_dir = sweep_dir / str(row["dir"])
        if (run_dir / "ops.parquet").exists() and (run_dir / "config.yaml").exists():
            return run_dir
    return None


def report_run(run_dir: Path, out: Path | None = None, tag: str = "") -> dict[str, Path]:
    """Roofline, decode-step Gantt and Chrome trace of the run in ``run_dir`` (written to ``out``)."""
    run_dir = Path(run_dir)
    out = out or run_dir
    summary = _json(run_dir / "summary.json")
    ops = _parquet(run_dir / "ops.parquet")
    run = summary.get("run", {})
    missing = [c for c in OPS_COLUMNS if c not in ops.columns]
    if not isinstance(run, dict) or not isinstance(summary.get("peaks", {}), dict) or missing:
        what = f"{run_dir / 'ops.parquet'} lacks {', '.join(missing)}" if missing else \
            f"{run_dir / 'summary.json'} is not a run's summary"
        raise ReportError(f"{what}; run it again to rewrite its files")
    what = f"{run.get('model', '?')} on {run.get('hardware', '?')}, batch {run.get('batch', '?')}"
    chip = load_hardware(run_dir / "config.yaml")
    roofline, decode_step = CHARTS[Chart.roofline], CHARTS[Chart.decode_step]
    return {
        Chart.roofline.value: roofline.draw(ops, chip, out / roofline.file(tag), f"Roofline: {what}",
                                            summary.get("peaks", {}).get("matrix_dtype", "bf16")),
        Chart.decode_step.value: decode_step.draw(ops, out / decode_step.file(tag), what),
        "trace": write_trace(ops, out / f"trace{tag}.json", title=what),
    }


def make_report(path: Path, out: Path | None = None, **options) -> dict[str, Path]:
    """The report of a sweep folder, or of a run folder (one with ``summary.json``), written to ``out``.

    ``out`` defaults to ``<sweep>/report`` for a sweep and to the run folder itself for a run.
    """
    path = Path(path)
    if (path / "summary.json").exists():
        return report_run(path, out)
    return report_sweep(path, out=out, **options)


def print_written(written: dict[str, Path]) -> None:
    folders = sorted({str(p.parent) for p in written.values()})
    print(f"llmsim-report: wrote {len(written)} files in {', '.join(folders)}:")
    for what, path in written.items():
        print(f"  {what:<28} {path.name}")
