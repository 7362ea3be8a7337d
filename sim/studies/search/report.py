"""What a search writes: every trial, the Pareto set, a chart, the best design per objective.

* ``trials.csv``: every finished trial: ``status`` (feasible / infeasible), ``reason`` (the
  constraint it breaks, or why the model code rejected it), parameters, derived values, metrics;
* ``pareto.csv``: the feasible designs no other feasible design beats on every objective
  (all objectives together, not only the two drawn), each design once (its first trial);
* ``pareto.png``: the first two objectives over the feasible designs, the 2-D front highlighted
  (sim/plots/pareto.py);
* ``best.json``: per objective, the best feasible design, and its parameters and metrics against
  the reference chip (``search.reference``, evaluated on the same workload).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sim.output.files import atomic_write
from sim.plots.charts import CHARTS, Chart
from sim.studies.search import SearchError


def pareto_mask(values: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """Rows of ``values`` (n x k) that no other row dominates (>= on every objective, > on one).

    Exact duplicates are kept together. O(n^2 k), fine for the thousands of trials a search has.
    """
    pts = np.asarray(values, dtype=float)
    if pts.size == 0:
        return np.zeros(len(pts), dtype=bool)
    signed = pts * np.where(np.asarray(maximize), -1.0, 1.0)  # lower is better on every column
    keep = np.ones(len(pts), dtype=bool)
    for i in range(len(pts)):
        no_worse = np.all(signed <= signed[i], axis=1)
        better = np.any(signed < signed[i], axis=1)
        if np.any(no_worse & better):
            keep[i] = False
    return keep


def pareto_set(df: pd.DataFrame, objectives: list[tuple[str, bool]], params: list[str] | None = None) -> pd.DataFrame:
    """The feasible, non-dominated rows; a design sampled again (same ``params``) appears once, first trial."""
    feasible = df[df["status"] == "feasible"]
    if params:
        feasible = feasible.drop_duplicates(subset=[p for p in params if p in feasible.columns])
    if feasible.empty:
        return feasible
    names = [m for m, _ in objectives]
    mask = pareto_mask(feasible[names].to_numpy(dtype=float), [up for _, up in objectives])
    return feasible[mask].sort_values(names[0], ascending=not objectives[0][1])


def no_feasible_reason(df: pd.DataFrame, constraints) -> str:
    """The line that says why nothing is feasible: which constraint rules out everything."""
    n = len(df)
    ran = df[df["reason"].fillna("").str.startswith("violates")]  # over a limit (simulated, or by its own figures)
    if ran.empty:
        reasons = df["reason"].fillna("failed").value_counts()
        return (f"no feasible design: every one of the {n} trials was rejected by the model; most often "
                f"({reasons.iloc[0]} of {n}): {reasons.index[0]}")
    for c in constraints:
        if c.metric not in ran:
            continue
        values = ran[c.metric].dropna().astype(float)  # a design ruled out by its own figures has no run metrics
        if len(values) and (values.apply(c.violation) > 0).all():
            best = values.min() if c.op == "<=" else values.max()
            failed = n - len(values)
            extra = f" (and {failed} more were rejected before it was measured)" if failed else ""
            return (f"no feasible design: {c} rules out all {len(values)} trials measured against it{extra} "
                    f"(best reached {best:.4g} vs limit {c.limit:g})")
    return (f"no feasible design: no trial of {n} meets {' and '.join(str(c) for c in constraints)} together; "
            "each constraint alone is met by some design; relax one or widen the space")


def compare(design: pd.Series, reference: dict | None, keys: list[str]) -> dict:
    """``{key: {design, reference, ratio}}`` for ``keys``."""
    out = {}
    for key in keys:
        value = design.get(key)
        ref = (reference or {}).get(key)
        entry = {"design": _plain(value), "reference": _plain(ref)}
        if isinstance(value, (int, float, np.number)) and isinstance(ref, (int, float)) and ref:
            entry["ratio"] = float(value) / ref
        out[key] = entry
    return out


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def write_report(out: Path, df: pd.DataFrame, search, reference: dict | None, reference_name: str | None,
                 title: str) -> dict:
    """Write trials.csv, pareto.csv, pareto.png and best.json into ``out``; return best.json's content."""
    out.mkdir(parents=True, exist_ok=True)
    params = [p.key for p in search.params] + list(search.derived)
    objectives = [m for m, _ in search.objectives]
    limited = [c.metric for c in search.constraints if c.metric not in objectives]
    first = ["trial", "status", "reason", *params, *objectives, *limited]
    rest = [c for c in df.columns if c not in first]
    df = df[[c for c in first if c in df.columns] + rest]
    atomic_write(out / "trials.csv", lambda p: df.to_csv(p, index=False))
    if not (df["status"] == "feasible").any():
        raise SearchError(no_feasible_reason(df, search.constraints))
    front = pareto_set(df, search.objectives, params)
    pareto = front.drop(columns=["status", "reason"])
    atomic_write(out / "pareto.csv", lambda p: pareto.to_csv(p, index=False))
    feasible = df[df["status"] == "feasible"]
    chart = None
    if len(objectives) >= 2:
        maximize = (search.objectives[0][1], search.objectives[1][1])  # max:/min: or the catalog's direction
        pareto_chart = CHARTS[Chart.pareto]
        chart = pareto_chart.draw(feasible, objectives[0], objectives[1], [p.key for p in search.params][:3],
                                  out / pareto_chart.file(), title, maximize)
    best = {}
    for metric, up in search.objectives:
        row = feasible.loc[feasible[metric].idxmax() if up else feasible[metric].idxmin()]
        best[metric] = {
            "goal": "max" if up else "min",
            "trial": int(row["trial"]),
            "parameters": compare(row, reference, params),
            "metrics": compare(row, reference, objectives + limited),
        }
    summary = {"reference": reference_name, "trials": int(len(df)), "feasible": int(len(feasible)),
               "infeasible": int(len(df) - len(feasible)), "pareto": int(len(front)),
               "constraints": [str(c) for c in search.constraints], "best": best,
               "files": {"trials": "trials.csv", "pareto": "pareto.csv", "chart": chart.name if chart else None}}
    atomic_write(out / "best.json", lambda p: p.write_text(json.dumps(summary, indent=2, default=str) + "\n"))
    return summary


def render(summary: dict, front: pd.DataFrame, search, out: Path) -> str:
    """The console summary of a search."""
    from sim.studies.search.study import store_file  # the study's file: study.journal, or an earlier study.db

    ref = summary["reference"]
    lines = [f"llmsim-search: {summary['trials']} trials, {summary['feasible']} feasible, "
             f"{summary['infeasible']} infeasible; {summary['pareto']} Pareto-optimal designs",
             f"  constraints  {'; '.join(summary['constraints']) or 'none'}"]
    for metric, b in summary["best"].items():
        lines.append(f"  best {b['goal']} {metric} (trial {b['trial']})" + (f", vs {ref}:" if ref else ":"))
        for group in ("parameters", "metrics"):
            for key, e in b[group].items():
                ratio = f"  (x{e['ratio']:.2f})" if "ratio" in e else ""
                refv = f"  vs {_fmt(e['reference'])}" if ref and e["reference"] is not None else ""
                lines.append(f"    {key:<34} {_fmt(e['design']):>12}{refv}{ratio}")
    lines.append(f"  outputs      {out}/ (pareto.csv, trials.csv, best.json"
                 + (", pareto.png" if summary["files"]["chart"] else "") + f", {store_file(Path(out)).name})")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
