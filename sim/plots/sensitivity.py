"""The sensitivity chart: the change in one metric for each hardware parameter and software option.

Horizontal bars, largest effect on top: blue for +10% of a hardware parameter, orange for
-10%, green for a software option switched to its next choice (its label says from what to
what). The x axis is the change in the metric in percent; the title says which way is better.
Variants that cannot run (the model no longer fits) are named at the bottom with why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from sim.plots.pareto import goal
from sim.plots.style import OKABE_ITO, label, new_figure, save, set_title

COLOURS = {"+": OKABE_ITO["blue"], "-": OKABE_ITO["orange"], "software": OKABE_ITO["bluish_green"]}


def _row_label(row: pd.Series) -> str:
    if row["kind"] == "software":
        return f"{row['what']}: {row['change'].replace('->', '→')}"
    return f"{row['what']} ({row['parameter'].split('.', 1)[1]})"


def plot_sensitivity(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Draw the ranked sensitivities of ``table`` (from ``sensitivities``); write ``path``."""
    ok = table[table["status"] == "ok"]
    failed = table[table["status"] != "ok"]
    groups: list[tuple[str, list[tuple[str, float]]]] = []  # (label, [(colour key, delta %)])
    for _, rows in ok.groupby(["parameter", "kind", "what"] if len(ok) else [], sort=False):
        if rows["kind"].iloc[0] == "software":
            for _, row in rows.iterrows():
                groups.append((_row_label(row), [("software", row["delta_pct"])]))
        else:
            bars = [("+" if str(r["change"]).startswith("+") else "-", r["delta_pct"]) for _, r in rows.iterrows()]
            groups.append((_row_label(rows.iloc[0]), bars))
    groups.sort(key=lambda g: max(abs(v) for _, v in g[1]))  # largest at the top (drawn last)
    metric = table["metric"].iloc[0] if len(table) else ""
    fig, ax = new_figure(9.0, max(3.5, 0.42 * len(groups) + 1.8))
    height = 0.38
    for y, (text, bars) in enumerate(groups):
        if len(bars) == 1:
            ax.barh(y, bars[0][1], height=0.6, color=COLOURS[bars[0][0]])
            _value(ax, y, bars[0][1])
            continue
        for key, value in bars:
            offset = height / 2 if key == "+" else -height / 2
            ax.barh(y + offset, value, height=height, color=COLOURS[key])
            _value(ax, y + offset, value)
    ax.set_yticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    better = "higher" if goal(metric) == "max" else "lower"
    ax.set_xlabel(f"change in {label(metric)} (%)  ({better} is better)")
    step = table.loc[table["kind"] == "hardware", "change"].astype(str).str.lstrip("+-").iloc[0] \
        if (table["kind"] == "hardware").any() else "10%"
    handles = [Patch(facecolor=COLOURS["+"], label=f"hardware parameter +{step}"),
               Patch(facecolor=COLOURS["-"], label=f"hardware parameter -{step}"),
               Patch(facecolor=COLOURS["software"], label="software option switched")]
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    if len(failed):
        notes = "; ".join(f"{_row_label(r)} {r['change']}: fails ({str(r['reason'])[:60]})" for _, r in failed.iterrows())
        fig.text(0.01, 0.005, notes, fontsize=7, color="#555555", wrap=True)
    base = table["base"].iloc[0] if len(table) else np.nan
    set_title(ax, f"{title}\nbase {label(metric)} = {base:.4g}", 10)
    return save(fig, path)


def _value(ax, y: float, value: float) -> None:
    if abs(value) < 1e-9:
        ax.text(0, y, " 0", va="center", fontsize=6.5, color="#555555")
        return
    ax.text(value, y, f" {value:+.2g}% " if abs(value) < 10 else f" {value:+.3g}% ", va="center",
            ha="left" if value > 0 else "right", fontsize=6.5)
