"""Gantt chart of one decode step: which resource is busy with which op, and when.

Top: the whole step, every layer laid out (rows: compute arrays, vector unit, HBM, links;
colour: operator type). Bottom: the first layer of the step zoomed in, each op named. Bars
are the slices of ``sim.output.trace`` (an op on the unit that does its work for its whole duration,
plus its HBM transfer), times from the start of the step.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Patch

from sim.output.console import fmt_time
from sim.output.trace import TRACKS, Slice, slices
from sim.plots.style import OTHER, SERIES, save


def _scale(seconds: float) -> tuple[float, str]:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= 5 * scale:
            return scale, unit
    return 1e-9, "ns"


def _draw(ax, items: list[Slice], t0: float, scale: float, colours: dict, names: bool) -> None:
    rows = {track: i for i, track in enumerate(TRACKS)}
    span = max((s.start_s + s.dur_s for s in items), default=t0) - t0
    bars: dict[str, tuple[list, list]] = {}  # one collection per track (thousands of bars for a 70B step)
    for s in items:
        spans, faces = bars.setdefault(s.track, ([], []))
        spans.append(((s.start_s - t0) / scale, s.dur_s / scale))
        faces.append(colours.get(s.kind, OTHER))
    for track, (spans, faces) in bars.items():
        bar = ax.broken_barh(spans, (rows[track] - 0.3, 0.6), facecolors=faces, edgecolor="white", linewidth=0.2)
        bar.sticky_edges.x.append(min(left for left, _ in spans))  # the axis starts at the step's start, as bars do
    for s in items:
        y = rows[s.track]
        if names and s.dur_s > 0.045 * span:
            ax.text((s.start_s - t0 + s.dur_s / 2) / scale, y, s.name, ha="center", va="center", fontsize=6.5,
                    rotation=90 if s.dur_s < 0.09 * span else 0, color="black")
    ax.set_yticks(range(len(TRACKS)), TRACKS)
    ax.set_ylim(len(TRACKS) - 0.5, -0.5)
    ax.grid(True, axis="x", color="#E5E5E5")
    ax.set_axisbelow(True)


def plot_decode_step(ops: pd.DataFrame, path: Path, title: str) -> Path:
    """Gantt of the first decode step of the run (of the prefill when it has none); write ``path``."""
    items = slices(ops, decode_steps=1)
    phase = "decode" if any(s.phase == "decode" for s in items) else "prefill"
    step_items = [s for s in items if s.phase == phase]
    t0 = min(s.start_s for s in step_items)
    t_end = max(s.start_s + s.dur_s for s in step_items)
    time_by_kind: dict[str, float] = {}
    for s in step_items:
        if s.track != "HBM":
            time_by_kind[s.kind] = time_by_kind.get(s.kind, 0.0) + s.dur_s
    kinds = sorted(time_by_kind, key=lambda k: -time_by_kind[k])
    colours = {k: SERIES[i] for i, k in enumerate(kinds[: len(SERIES) - 1])}  # black kept for text
    layer = [s for s in step_items if s.segment == "layer" and s.layer == 0]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.2), dpi=110, gridspec_kw={"height_ratios": [1, 1.1]})
    scale, unit = _scale(t_end - t0)
    _draw(top, step_items, t0, scale, colours, names=False)
    top.set_xlabel(f"time from the start of the step ({unit})")
    layers = max((s.layer for s in step_items), default=0) + 1
    what = "decode step 1" if phase == "decode" else "prefill"
    top.set_title(f"{title}: {what}, all {layers} layers ({fmt_time(t_end - t0)})", fontsize=10)
    if layer:
        l0 = min(s.start_s for s in layer)
        l_end = max(s.start_s + s.dur_s for s in layer)
        lscale, lunit = _scale(l_end - l0)
        _draw(bottom, layer, l0, lscale, colours, names=True)
        bottom.set_xlabel(f"time from the start of layer 1 ({lunit})")
        bottom.set_title(f"layer 1 of {layers}, zoomed in ({fmt_time(l_end - l0)})", fontsize=10)
    handles = [Patch(facecolor=c, label=k) for k, c in colours.items()]
    if len(kinds) > len(colours):
        handles.append(Patch(facecolor=OTHER, label="other ops"))
    top.legend(handles=handles, title="operator type", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
               frameon=False)
    return save(fig, path)

