"""Pareto front of two metrics: the points no other point beats on both.

A point is dominated when another point is at least as good on both metrics and strictly
better on one; which way is good comes from the metric catalog (sim/metrics/catalog.py), or
from the caller for metrics it names itself (a search's ``max:``/``min:`` objectives). The
front is drawn in colour and joined by a staircase; dominated points are faded. Points with a missing metric
are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.metrics.catalog import higher_is_better
from sim.plots.style import OKABE_ITO, fmt_value, label, new_figure, save, set_title, short, spread_labels


def pareto_mask(values: np.ndarray, maximize: tuple[bool, bool]) -> np.ndarray:
    """Which rows of ``values`` (n x 2) are not dominated by any other row.

    Exact ties are kept together (neither of two equal points dominates the other). Sorts by
    the first metric (best first, ties broken by the second); a run of equal first metrics keeps
    its lowest second metric where it beats every run before it: O(n log n), in numpy.
    """
    pts = np.asarray(values, dtype=float).reshape(-1, 2)
    signed = pts * np.where(np.asarray(maximize), -1.0, 1.0)  # now lower is better on both
    order = np.lexsort((signed[:, 1], signed[:, 0]))
    keep = np.zeros(len(pts), dtype=bool)
    if not len(pts):
        return keep
    first, second = signed[order, 0], signed[order, 1]
    starts = np.flatnonzero(np.r_[True, first[1:] != first[:-1]])  # runs of points with the same first metric
    lowest = np.minimum.reduceat(second, starts)  # within a run only the lowest second metric survives
    counted = np.where(np.isnan(lowest), np.inf, lowest)  # a run with a missing value keeps nothing
    best_before = np.r_[np.inf, np.minimum.accumulate(counted)[:-1]]  # the best second metric of the runs before
    run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
    keep[order] = (lowest < best_before)[run] & (second == lowest[run])
    return keep


def plot_pareto(df: pd.DataFrame, x: str, y: str, swept: list[str], path: Path, title: str,
                maximize: tuple[bool, bool] | None = None) -> Path:
    """Scatter ``y`` against ``x`` over the points of ``df``, the Pareto front highlighted; write ``path``.

    Args:
        maximize: whether higher is better on x and on y; None: as the metric catalog says
            (``sim.metrics.catalog.UnknownMetric`` for a name it lacks).
    """
    goals = maximize if maximize is not None else (higher_is_better(x), higher_is_better(y))
    used = df[list(dict.fromkeys([x, y, *swept]))]  # the columns drawn, not a copy of the whole table
    frame = used[np.isfinite(pd.to_numeric(used[x], errors="coerce"))
                 & np.isfinite(pd.to_numeric(used[y], errors="coerce"))]
    values = frame[[x, y]].to_numpy(dtype=float)
    front = pareto_mask(values, goals) if len(frame) else np.zeros(0, dtype=bool)
    fig, ax = new_figure(8.0, 5.8)
    ax.scatter(values[~front, 0], values[~front, 1], s=28, color="#999999", alpha=0.35, label="dominated", zorder=2)
    order = np.argsort(values[front, 0])
    fx, fy = values[front, 0][order], values[front, 1][order]
    ax.step(fx, fy, where="pre" if goals[0] else "post", color=OKABE_ITO["blue"], linewidth=1.2, zorder=3)
    ax.scatter(fx, fy, s=46, color=OKABE_ITO["blue"], edgecolors="black", linewidths=0.5, label="Pareto front",
               zorder=4)
    for scale_set, data in ((ax.set_xscale, values[:, 0]), (ax.set_yscale, values[:, 1])):
        if len(data) and data.min() > 0 and data.max() / data.min() > 30:
            scale_set("log")
    if swept and front.sum() <= 15:
        ax.margins(x=0.25)
        labels = [(px, py, ", ".join(f"{short(k)}={fmt_value(row[k])}" for k in swept), "#333333")
                  for (_, row), px, py in zip(frame[front].iloc[order].iterrows(), fx, fy, strict=True)]
        spread_labels(ax, labels, gap_px=11, width_px=160)
    ax.set_xlabel(f"{label(x)}  ({'higher' if goals[0] else 'lower'} is better)")
    ax.set_ylabel(f"{label(y)}  ({'higher' if goals[1] else 'lower'} is better)")
    set_title(ax, title, 11)
    ax.legend(loc="best", fontsize=8)
    return save(fig, path)
