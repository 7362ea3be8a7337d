"""The explorer's charts, drawn with Plotly (interactive: hover, zoom, PNG from the mode bar).

Each function returns the figure as the plain dict Dash sends (``figure``), the ``plotly_white``
template as a dict made once: building Plotly's validated objects took longer than the simulation
it shows (90 ms for the roofline alone).

Colours and bound names are the ones the PNG charts use (sim/plots/style.py: Okabe-Ito), so a
bound has one colour in the explorer and in a sweep report. Every axis says its unit.
"""

from __future__ import annotations

import functools

import pandas as pd

from hwmodels.chip import HardwareConfig
from sim.plots.roofline import ceilings
from sim.plots.style import BOUND_COLOURS, BOUND_LABELS, BOUND_ORDER, OKABE_ITO, PHASE_COLOURS, SERIES
from sim.studies.explore.controls import BY_KEY, format_value

LAYOUT = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "height": 360,
          "font": {"size": 12}}
SYMBOLS = {"prefill": "circle", "decode": "triangle-up"}
# Regimes of a serving point (sim/studies/explore/design_map.py), beside the bounds of a batch.
REGIME_COLOURS = {**BOUND_COLOURS, "keeps up": OKABE_ITO["bluish_green"], "overloaded": OKABE_ITO["orange"]}
REGIME_LABELS = {**BOUND_LABELS, "keeps up": "keeps up with arrivals",
                 "overloaded": "overloaded (queue grows)"}
REGIME_ORDER = (*BOUND_ORDER, "keeps up", "overloaded")


def op_rows(records) -> pd.DataFrame:
    """One row per (phase, op) over the whole run, from its op records: FLOPs, HBM bytes, time,
    intensity, achieved FLOP/s and the bound that holds most of its time (``ops.csv`` summed)."""
    acc: dict[tuple[str, str], dict] = {}
    for r in records:
        row = acc.setdefault((r.phase.value, r.op.name), {"phase": r.phase.value, "op": r.op.name, "count": 0,
                                                          "flops": 0.0, "bytes": 0.0, "time_s": 0.0, "bounds": {}})
        t = r.total_s
        row["count"] += r.count
        row["flops"] += r.op.flops * r.count
        row["bytes"] += r.cost.hbm_bytes * r.count
        row["time_s"] += t
        row["bounds"][r.cost.bound.value] = row["bounds"].get(r.cost.bound.value, 0.0) + t
    rows = [{**{k: v for k, v in row.items() if k != "bounds"}, "bound": max(row["bounds"], key=row["bounds"].get)}
            for row in acc.values()]
    frame = pd.DataFrame(rows, columns=["phase", "op", "count", "flops", "bytes", "time_s", "bound"])
    frame["intensity"] = frame["flops"] / frame["bytes"].where(frame["bytes"] > 0)
    frame["flops_per_s"] = frame["flops"] / frame["time_s"].where(frame["time_s"] > 0)
    return frame


@functools.cache
def _template() -> dict:
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()


def figure(traces: list[dict], title, **layout) -> dict:
    """A figure as the plain dict Dash sends: traces, the page's layout and template, ``title``."""
    title = title if isinstance(title, dict) else {"text": title}  # plotly.js 3 reads no bare-string title
    return {"data": traces, "layout": {**LAYOUT, "title": title, "template": _template(), **layout}}


def roofline(records, chip: HardwareConfig, title: str) -> dict:
    """The chip's ceilings and each op of the run (``records``) at (FLOP per HBM byte, achieved FLOP/s)."""
    rows = op_rows(records)
    rows = rows[(rows["flops"] > 0) & (rows["bytes"] > 0) & (rows["time_s"] > 0)]
    compute, memory = ceilings(chip)
    low = max(1e-2, float(rows["intensity"].min()) / 4) if len(rows) else 1e-2
    high = max(1e4, float(rows["intensity"].max()) * 4) if len(rows) else 1e4
    top = compute[0][1]
    traces = []
    for name, rate in memory:  # a straight line on log axes, bent where it meets the highest compute roof
        xs = [low, top / rate, high] if low < top / rate < high else [low, high]
        traces.append({"type": "scatter", "x": xs, "y": [min(x * rate, top) for x in xs], "mode": "lines",
                       "name": f"{name} ceiling", "line": {"dash": "dot", "color": "#888888"}, "hoverinfo": "name"})
    for name, peak in compute:
        traces.append({"type": "scatter", "x": [low, high], "y": [peak, peak], "mode": "lines", "name": name,
                       "line": {"color": "#555555", "width": 1}, "hoverinfo": "name"})
    for phase, part in rows.groupby("phase", sort=False):
        text = [f"<b>{r.op}</b> ({phase}, x{r.count})<br>FLOPs {r.flops:.4g}<br>HBM bytes {r.bytes:.4g}"
                f"<br>AI {r.intensity:.3g} FLOP/B<br>time {r.time_s * 1e3:.4g} ms<br>bound {r.bound}"
                for r in part.itertuples()]
        traces.append({"type": "scatter", "x": part["intensity"].tolist(), "y": part["flops_per_s"].tolist(),
                       "mode": "markers", "name": phase, "text": text, "hoverinfo": "text",
                       "marker": {"symbol": SYMBOLS.get(phase, "circle"), "size": 10,
                                  "color": PHASE_COLOURS.get(phase, SERIES[0]),
                                  "line": {"width": 1, "color": "black"}}})
    return figure(traces, {"text": title, "x": 0.01},
                  xaxis={"type": "log", "title": {"text": "arithmetic intensity (FLOP per HBM byte)"}},
                  yaxis={"type": "log", "title": {"text": "achieved FLOP/s"}})


def time_by_op(breakdown: list[dict]) -> dict:
    """Time per operator type, prefill and decode side by side (ms)."""
    traces = []
    for i, phase in enumerate(("prefill", "decode")):
        rows = [r for r in breakdown if r["phase"] == phase]
        traces.append({"type": "bar", "x": [r["kind"] for r in rows], "y": [r["time_s"] * 1e3 for r in rows],
                       "name": phase, "marker": {"color": PHASE_COLOURS.get(phase, SERIES[i])},
                       "customdata": [[r["bound"], r["share"]] for r in rows],
                       "hovertemplate": "%{x}: %{y:.4g} ms (%{customdata[1]:.1%} of the phase), "
                                        "%{customdata[0]}-bound<extra>" + phase + "</extra>"})
    return figure(traces, "time by operator", barmode="group", yaxis={"title": {"text": "time (ms)"}})


def time_by_bound(summary: dict) -> dict:
    """Each chip's wall time split by bound (ms), as summary.json's ``time_by_bound_s``."""
    parts = summary.get("time_by_bound_s") or {}
    names = [b for b in parts if parts[b] is not None]
    total = sum(parts[b] for b in names) or 1.0
    bar = {"type": "bar", "x": [BOUND_LABELS.get(b, b) for b in names], "y": [parts[b] * 1e3 for b in names],
           "marker": {"color": [BOUND_COLOURS.get(b, SERIES[0]) for b in names]},
           "text": [f"{parts[b] / total:.0%}" for b in names], "textposition": "outside",
           "hovertemplate": "%{x}: %{y:.4g} ms<extra></extra>"}
    return figure([bar], "time by bound", yaxis={"title": {"text": "time (ms)"}})


def regime_map(grid: dict) -> dict:
    """The dominant bound over the two chosen axes, the current design ringed."""
    order = list(REGIME_ORDER)
    index = {b: i for i, b in enumerate(order)}
    z = [[index[b] + 0.5 if b in index else None for b in row] for row in grid["bound"]]  # band centres
    colours = []
    for i, b in enumerate(order):
        lo, hi = i / len(order), (i + 1) / len(order)
        colours += [[lo, REGIME_COLOURS[b]], [hi, REGIME_COLOURS[b]]]
    xs = [format_value(v) for v in grid["xs"]]
    ys = [format_value(v) for v in grid["ys"]]
    hover = [[f"{REGIME_LABELS.get(b, b)}" + (f"<br>{grid['metric']} {v:.4g}" if v is not None else "")
              + (f"<br>{r[:120]}" if r else "") for b, v, r in zip(brow, vrow, rrow, strict=True)]
             for brow, vrow, rrow in zip(grid["bound"], grid["value"], grid["reasons"], strict=True)]
    traces = [{"type": "heatmap", "x": xs, "y": ys, "z": z, "zmin": 0, "zmax": len(order), "colorscale": colours,
               "showscale": False, "text": hover, "hoverinfo": "text+x+y", "xgap": 2, "ygap": 2},
              {"type": "scatter", "x": [_label(grid["here"][0], grid["xs"])],
               "y": [_label(grid["here"][1], grid["ys"])], "mode": "markers", "name": "this design",
               "hoverinfo": "name",
               "marker": {"symbol": "circle-open", "size": 26, "color": "black", "line": {"width": 3}}}]
    for b in order:  # a legend entry per bound present
        if any(b in row for row in grid["bound"]):
            traces.append({"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": REGIME_LABELS[b],
                           "marker": {"symbol": "square", "size": 12, "color": REGIME_COLOURS[b]}})
    title = "regime map: dominant bound" if grid["metric"] == "tpot_s" else "regime map: does the server keep up?"
    return figure(traces, title, xaxis={"type": "category", "title": {"text": _axis_title(grid["x"])}},
                  yaxis={"type": "category", "title": {"text": _axis_title(grid["y"])}})


def _label(value: float, values: list) -> str:
    return format_value(min(values, key=lambda v: abs(float(v) - value)))


def _axis_title(key: str) -> str:
    c = BY_KEY[key]
    return f"{c.label} ({c.unit})" if c.unit else c.label


def message(text: str) -> dict:
    """An empty chart that says why it is empty."""
    note = {"text": text, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
            "font": {"size": 14}}
    return figure([], "", annotations=[note], xaxis={"visible": False}, yaxis={"visible": False})
