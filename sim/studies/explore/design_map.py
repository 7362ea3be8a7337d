"""The regime map of two controls the user picks: the dominant bound over a small grid around the design.

Each axis takes ``POINTS`` values spaced by factors of two around the current value (inside the
control's range; whole numbers for whole-number controls), the current value among them, so
the design sits on a grid point. Every point is one simulation of
the state with those two values changed: its dominant bound is the part of ``time_by_bound_s``
that is largest, ``capacity`` when the model does not fit, ``invalid`` when the point cannot run
for another reason (the sweep table's rule, sim/studies/sweep/table.py). A serving run has no
single bound: its points say whether the server keeps up with the arrivals or is overloaded.
"""

from __future__ import annotations

import copy

from sim.studies.explore.controls import BY_KEY, format_value
from sim.studies.explore.outcome import evaluate
from sim.studies.sweep.table import failed_bound, summary_row

POINTS = 5


def axis_around(key: str, value: float) -> list:
    """``POINTS`` values of control ``key`` spaced by factors of two, the current ``value`` among them,
    centred on it where the control's range allows (a value at the bottom of its range looks up)."""
    control = BY_KEY[key]
    candidates = []
    for power in range(-POINTS, POINTS + 1):
        v = value * 2.0 ** power
        v = int(round(v)) if control.integer else float(f"{v:.4g}")
        if power == 0:
            v = int(value) if control.integer else value
        if control.low <= v <= control.high and v not in candidates:
            candidates.append(v)
    here = candidates.index(int(value) if control.integer else value)
    start = min(max(0, here - POINTS // 2), max(0, len(candidates) - POINTS))
    return candidates[start:start + POINTS]


def regime(summary: dict) -> str:
    """A point's regime: its dominant bound (single batch), or whether a server keeps up with its
    arrivals (serving: ``overloaded`` when the queueing delay grows, sim/metrics/serving_summary.py)."""
    if summary.get("time_by_bound_s"):
        return summary_row(summary)["bound"]
    return "overloaded" if summary.get("overloaded") else "keeps up"


def design_map(state: dict, x: str, y: str, metric: str = "tpot_s") -> dict:
    """The grid: ``xs``, ``ys``, ``bound[i][j]`` and ``metric[i][j]`` (row i = ys[i]), and the design's place.

    Raises:
        ValueError: the axes are the same control or not sweepable numbers.
    """
    if x == y:
        raise ValueError("choose two different quantities for the regime map")
    for key in (x, y):
        if key not in BY_KEY or BY_KEY[key].kind == "choice":
            raise ValueError(f"{key} is not a number the regime map can sweep")
    xs = axis_around(x, float(state["values"][x]))
    ys = axis_around(y, float(state["values"][y]))
    bound = [[None] * len(xs) for _ in ys]
    value = [[None] * len(xs) for _ in ys]
    reasons = [[""] * len(xs) for _ in ys]
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            point = copy.deepcopy(state)
            point["values"][x], point["values"][y] = xv, yv
            out = evaluate(point, tables=False)
            if out.ok:
                bound[i][j] = regime(out.summary)
                value[i][j] = out.summary.get(metric)
            else:
                reason = next(iter(out.errors.values()))
                bound[i][j], reasons[i][j] = failed_bound(reason), reason
    here = (float(state["values"][x]), float(state["values"][y]))
    return {"x": x, "y": y, "xs": xs, "ys": ys, "bound": bound, "metric": metric, "value": value,
            "reasons": reasons, "here": here,
            "sweep": f"{x}={','.join(format_value(v) for v in xs)} {y}={','.join(format_value(v) for v in ys)}"}
