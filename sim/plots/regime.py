"""Bottleneck regime map: which resource bounds each point of a two-axis sweep.

Each cell is one point, coloured by its dominant bound (the bound with the most op time:
compute, memory bandwidth or interconnect, or launch overhead; memory capacity where the model
did not fit). Thin labelled lines are contours of a chosen metric; the dashed black line is
the ridge, where the compute time of the run equals its memory time (contour 0 of
log(compute time / memory time)), i.e. where the chip's ridge point crosses the workload's
arithmetic intensity. Axes are the swept values in order, evenly spaced (a geometric grid
reads as a log axis).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sim.plots.style import (
    BOUND_COLOURS,
    BOUND_LABELS,
    BOUND_ORDER,
    fmt_num,
    fmt_value,
    label,
    new_figure,
    save,
    set_title,
)


def axis_values(values: pd.Series) -> list:
    """The distinct values of an axis, numbers in numeric order, anything else in first-seen order."""
    seen = list(dict.fromkeys(values.dropna().tolist()))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen):
        return sorted(seen)
    return seen


def regime_grid(df: pd.DataFrame, x: str, y: str | None, metric: str) -> dict:
    """The map as matrices indexed ``[y index, x index]``.

    Returns a dict with ``xs``, ``ys`` (axis values), ``bound`` (dominant bound names, None
    where no point), ``metric`` and ``ratio`` (log10 of compute time over memory time, NaN
    where undefined). With more points than cells (a third axis), the first point of each
    cell is used; slice the table first to choose.
    """
    xs = axis_values(df[x])
    ys = axis_values(df[y]) if y else [None]
    bound = np.full((len(ys), len(xs)), None, dtype=object)
    values = np.full((len(ys), len(xs)), np.nan)
    ratio = np.full((len(ys), len(xs)), np.nan)
    j = _positions(df[x], xs)
    i = _positions(df[y], ys) if y else np.zeros(len(df))
    placed = np.flatnonzero(~(np.isnan(i) | np.isnan(j)))
    cell = i[placed].astype(np.int64) * len(xs) + j[placed].astype(np.int64)
    named = df["bound"].to_numpy(dtype=object) if "bound" in df else np.full(len(df), None, dtype=object)
    missing = np.array([b is None for b in named[placed]], dtype=bool)
    # each cell shows its first point with a bound (the last one where none has)
    order = np.lexsort((np.where(missing, -placed, placed), missing, cell))
    _, first = np.unique(cell[order], return_index=True)
    rows = placed[order[first]]
    at = np.unravel_index(cell[order[first]], bound.shape)
    bound[at] = named[rows]
    if metric in df:
        values[at] = _finite(df[metric])[rows]
    if "time_by_bound_s.compute" in df and "time_by_bound_s.memory" in df:
        compute, memory = _finite(df["time_by_bound_s.compute"])[rows], _finite(df["time_by_bound_s.memory"])[rows]
        quotient = np.maximum(compute, 1e-30) / np.maximum(memory, 1e-30)
        ratio[at] = [math.log10(q) if q == q else math.nan for q in quotient.tolist()]  # per cell, as drawn
    return {"xs": xs, "ys": ys, "bound": bound, "metric": values, "ratio": ratio}


def _positions(column: pd.Series, values: list) -> np.ndarray:
    """Each row's position among the axis ``values`` (NaN where it has none)."""
    index = {v: k for k, v in enumerate(values)}
    return np.array([index.get(v, np.nan) for v in column.tolist()], dtype=float)


def _finite(column: pd.Series) -> np.ndarray:
    """The column's numbers as floats, NaN where a value is not a finite number (text, a flag, missing)."""
    if pd.api.types.is_bool_dtype(column):
        return np.full(len(column), np.nan)
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(numbers), numbers, np.nan)


def plot_regime(df: pd.DataFrame, x: str, y: str | None, metric: str, path: Path, title: str) -> Path:
    """Draw the regime map of ``df`` over ``x`` and ``y`` with contours of ``metric``; write ``path``."""
    grid = regime_grid(df, x, y, metric)
    xs, ys, bound = grid["xs"], grid["ys"], grid["bound"]
    codes = np.vectorize(lambda b: BOUND_ORDER.index(b) if b in BOUND_ORDER else -1, otypes=[float])(bound)
    codes[codes < 0] = np.nan
    fig, ax = new_figure(min(13.0, max(6.5, 0.55 * len(xs) + 4.5)),
                         min(8.5, max(4.2, 0.45 * len(ys) + 3.0)) if y else 3.2)
    ax.grid(False)
    cmap = ListedColormap([BOUND_COLOURS[b] for b in BOUND_ORDER]).with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(codes), cmap=cmap, vmin=-0.5, vmax=len(BOUND_ORDER) - 0.5, origin="lower",
              aspect="auto", interpolation="nearest")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if bound[i, j] is None:
                ax.text(j, i, "no point", ha="center", va="center", fontsize=7, color="#777777")
    ridge, contours = _contours(ax, grid, len(xs) * len(ys) <= 144)
    _ticks(ax.set_xticks, xs, rotation=45 if len(xs) > 8 else 0)
    ax.set_xlabel(label(x))
    if y:
        _ticks(ax.set_yticks, ys)
        ax.set_ylabel(label(y))
    else:
        ax.set_yticks([])
    present = [b for b in BOUND_ORDER if b in set(bound.ravel())]
    handles = [Patch(facecolor=BOUND_COLOURS[b], label=BOUND_LABELS[b]) for b in present]
    if ridge:
        handles.append(_line_handle("black", "--", "ridge: compute time = memory time"))
    if contours:
        handles.append(_line_handle("#333333", "-", f"contours: {label(metric)}"))
    elif np.isfinite(grid["metric"]).any():
        handles.append(Patch(facecolor="none", edgecolor="none", label=f"cell labels: {label(metric)}"))
    ax.legend(handles=handles, title="dominant bound", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              title_fontsize=9, frameon=False)
    set_title(ax, title, 11)
    return save(fig, path)


def _ticks(set_ticks, values: list, most: int = 14, **kwargs) -> None:
    """Tick every value, or every k-th one past ``most`` values."""
    step = -(-len(values) // most)
    idx = list(range(0, len(values), step))
    set_ticks(idx, [fmt_value(values[i]) for i in idx], **kwargs)


def _line_handle(colour: str, style: str, text: str) -> Line2D:
    return Line2D([], [], color=colour, linestyle=style, linewidth=1.5, label=text)


def _contours(ax, grid: dict, annotate: bool) -> tuple[bool, bool]:
    """Draw the ridge and the metric's contours (and cell labels); return which lines were drawn."""
    values, ratio = grid["metric"], grid["ratio"]
    ny, nx = values.shape
    ridge = bool(ny >= 2 and nx >= 2 and np.isfinite(ratio).sum() >= 4 and np.nanmin(ratio) < 0 < np.nanmax(ratio))
    if ridge:
        ax.contour(np.arange(nx), np.arange(ny), np.ma.masked_invalid(ratio), levels=[0.0], colors="black",
                   linestyles="--", linewidths=2.0)
    finite = values[np.isfinite(values)]
    contours = bool(ny >= 2 and nx >= 2 and finite.size >= 4 and finite.min() > 0 and finite.max() > finite.min())
    if contours:
        levels = _nice_levels(finite.min(), finite.max())
        cs = ax.contour(np.arange(nx), np.arange(ny), np.ma.masked_invalid(values), levels=levels, colors="#333333",
                        linewidths=0.9)
        ax.clabel(cs, fmt=fmt_num, fontsize=7, inline=True)
    if annotate:
        for i in range(ny):
            for j in range(nx):
                if np.isfinite(values[i, j]):
                    ax.text(j, i - 0.28, fmt_num(values[i, j]), ha="center", va="center", fontsize=6.5, color="white",
                            bbox={"boxstyle": "round,pad=0.1", "facecolor": "black", "alpha": 0.35, "linewidth": 0})
    return ridge, contours


def _nice_levels(low: float, high: float, count: int = 6) -> list[float]:
    """Contour levels spread geometrically between ``low`` and ``high``, rounded to 2 significant figures."""
    if high / low < 3:
        raw = np.linspace(low, high, count + 2)[1:-1]
    else:
        raw = np.geomspace(low, high, count + 2)[1:-1]
    return sorted({float(f"{v:.2g}") for v in raw})
