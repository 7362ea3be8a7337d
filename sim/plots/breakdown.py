"""Where the time goes across a sweep: stacked bars per point, by bound or by operator type.

One bar per point (in the order of the swept values), its height the time of the run, split
by bound (compute, memory bandwidth, interconnect, overhead, idle: ``time_by_bound_s``, which
adds up to the run's total) or by operator type (the seven largest types over the sweep, the
rest as "other"; op time, which adds up to the total when no two ops overlap). A point that
failed has no bar; its reason is written in its place. Past ``max_bars`` points, an even sample
is shown and the title says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.engine.bounds import PARTS
from sim.plots.regime import axis_values
from sim.plots.style import BOUND_COLOURS, BOUND_LABELS, OTHER, SERIES, fmt_value, new_figure, save, set_title, short

BOUND_KEYS = PARTS  # compute, memory, interconnect, overhead, idle (sim/engine/bounds.py)


def ordered_points(df: pd.DataFrame, swept: list[str], max_bars: int) -> tuple[pd.DataFrame, bool]:
    """The points sorted by their swept values (first key slowest), sampled to ``max_bars``."""
    orders = {}
    for key in swept:
        order = {v: i for i, v in enumerate(axis_values(df[key]))}
        orders[f"_order_{key}"] = df[key].map(order)
    keys = pd.DataFrame(orders, index=df.index) if orders else df[["point"]]
    # positions in sorted order, found on the sort keys alone (not a copy of the whole table)
    rows = keys.reset_index(drop=True).sort_values(list(keys.columns), kind="stable").index.to_numpy()
    sampled = len(df) > max_bars
    if sampled:
        rows = rows[np.unique(np.linspace(0, len(rows) - 1, max_bars).round().astype(int))]
    frame = df.iloc[rows].assign(**{k: v.iloc[rows].to_numpy() for k, v in orders.items()})
    return frame, sampled


def point_label(row: pd.Series, swept: list[str]) -> str:
    return "\n".join(f"{short(k)}={fmt_value(row[k])}" for k in swept) or str(row["point"])


def _time_scale(seconds: float) -> tuple[float, str]:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return scale, unit
    return 1e-9, "ns"


def stacks(df: pd.DataFrame, by: str) -> list[tuple[str, str, str]]:
    """(column, legend label, colour) of each layer of the stack for ``by`` = ``bound`` or ``op``."""
    if by == "bound":
        return [(f"time_by_bound_s.{b}", BOUND_LABELS[b], BOUND_COLOURS[b]) for b in BOUND_KEYS
                if f"time_by_bound_s.{b}" in df]
    cols = [c for c in df.columns if c.startswith("time_by_op_s.")]
    totals = df[cols].sum().sort_values(ascending=False)
    top = list(totals.index[:7])
    layers = [(c, c.split(".", 1)[1], SERIES[i % len(SERIES)]) for i, c in enumerate(top)]
    if len(cols) > len(top):
        layers.append(("_other", "other ops", OTHER))
    return layers


def plot_breakdown(df: pd.DataFrame, swept: list[str], by: str, path: Path, title: str, max_bars: int = 40) -> Path:
    """Stacked bars of op time per point, by ``bound`` or by ``op`` type; write ``path``."""
    frame, sampled = ordered_points(df, swept, max_bars)
    layers = stacks(frame, by)
    if by == "op":
        named = [c for c, _, _ in layers if c != "_other"]
        rest = [c for c in frame.columns if c.startswith("time_by_op_s.") and c not in named]
        frame = frame.assign(_other=frame[rest].fillna(0).sum(axis=1) if rest else 0.0)
    ok = frame["status"] == "ok"
    totals = frame.loc[ok, [c for c, _, _ in layers]].fillna(0).sum(axis=1)
    scale, unit = _time_scale(float(totals.max()) if len(totals) else 1.0)
    fig, ax = new_figure(max(7.0, 0.42 * len(frame) + 3.5), 5.5)
    x = np.arange(len(frame))
    bottom = np.zeros(len(frame))
    for col, text, colour in layers:
        values = frame[col].fillna(0).to_numpy(dtype=float) / scale if col in frame else np.zeros(len(frame))
        values = np.where(ok.to_numpy(), values, 0.0)
        ax.bar(x, values, bottom=bottom, color=colour, label=text, width=0.8, edgecolor="white", linewidth=0.3)
        bottom += values
    for i, (_, row) in enumerate(frame.iterrows()):
        if row["status"] != "ok":
            why = "does not fit" if row.get("bound") == "capacity" else str(row["status"])
            ax.text(i, 0, f" {why}", rotation=90, ha="center", va="bottom", fontsize=7, color="#555555")
    ax.set_xticks(x, [point_label(r, swept) for _, r in frame.iterrows()], fontsize=7,
                  rotation=90 if len(frame) > 12 else 0)
    ax.set_ylabel(f"op time per run ({unit})")
    ax.set_xlabel("sweep point: " + ", ".join(short(k) for k in swept) if swept else "sweep point")
    shown = f" ({len(frame)} of {len(df)} points, evenly sampled)" if sampled else ""
    set_title(ax, title + shown, 11)
    ax.legend(title="by bound" if by == "bound" else "by operator type", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=8, frameon=False)
    return save(fig, path)
