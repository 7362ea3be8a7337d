"""The sensitivity chart: the change in one metric for each hardware parameter and software option.

Horizontal bars, largest effect on top: blue for +10% of a hardware parameter, orange for
-10%, green for a software option switched to its next choice (its label says from what to
what). The x axis is the change in the metric in percent; the title says which way is better.
A variant that cannot run (the model no longer fits) says so, in red, at its place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from sim.metrics.catalog import higher_is_better
from sim.plots.style import OKABE_ITO, label, name, new_figure, save, set_title

COLOURS = {"+": OKABE_ITO["blue"], "-": OKABE_ITO["orange"], "software": OKABE_ITO["bluish_green"]}


def _row_label(row: pd.Series) -> str:
    if row["kind"] == "software":
        return f"{row['what']}: {row['change'].replace('->', '→')}"
    return f"{row['what']} ({row['parameter'].split('.', 1)[1]})"


def _bar_key(row: pd.Series) -> str:
    if row["kind"] == "software":
        return "software"
    return "+" if str(row["change"]).startswith("+") else "-"


def _why(reason) -> str:
    """The first clause of a failure's reason: 'llama2_13b does not fit'."""
    return str(reason).split(":")[0].split(";")[0]


def plot_sensitivity(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Draw the ranked sensitivities of ``table`` (from ``sensitivities``); write ``path``."""
    groups: list[tuple[str, list[tuple[str, float, str]]]] = []  # (label, [(bar key, delta %, failure)])
    for _, rows in table.groupby(["parameter", "kind", "what"], sort=False):
        if rows["kind"].iloc[0] == "software":
            for _, row in rows.iterrows():
                groups.append((_row_label(row), [("software", row["delta_pct"], _failure(row))]))
        else:
            groups.append((_row_label(rows.iloc[0]),
                           [(_bar_key(r), r["delta_pct"], _failure(r)) for _, r in rows.iterrows()]))
    groups.sort(key=lambda g: max([abs(v) for _, v, f in g[1] if not f] or [0.0]))  # largest on top (drawn last)
    metric = table["metric"].iloc[0] if len(table) else ""
    fig, ax = new_figure(9.0, max(3.5, 0.42 * len(groups) + 1.8))
    height = 0.38
    for y, (_, bars) in enumerate(groups):
        for key, value, failure in bars:
            offset = 0.0 if len(bars) == 1 else (height / 2 if key == "+" else -height / 2)
            if failure:
                ax.text(0, y + offset, f" {'' if key == 'software' else key + '10%: '}fails ({failure})", va="center",
                        fontsize=6.5, color=OKABE_ITO["vermillion"])
                continue
            ax.barh(y + offset, value, height=0.6 if len(bars) == 1 else height, color=COLOURS[key])
            _value(ax, y + offset, value)
    ax.set_yticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.margins(x=0.15)
    better = "higher" if higher_is_better(metric) else "lower"
    ax.set_xlabel(f"change in {name(metric)} (%)  ({better} is better)")  # a change in % has no unit
    step = table.loc[table["kind"] == "hardware", "change"].astype(str).str.lstrip("+-").iloc[0] \
        if (table["kind"] == "hardware").any() else "10%"
    handles = [Patch(facecolor=COLOURS["+"], label=f"hardware parameter +{step}"),
               Patch(facecolor=COLOURS["-"], label=f"hardware parameter -{step}"),
               Patch(facecolor=COLOURS["software"], label="software option switched")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.5 / (fig.get_figheight() - 1.3)), ncol=3,
              fontsize=8, frameon=False)
    base = table["base"].iloc[0] if len(table) else np.nan
    set_title(ax, f"{title}\nbase {label(metric)} = {base:.4g}", 10)
    return save(fig, path)


def _failure(row: pd.Series) -> str:
    return _why(row["reason"]) if row["status"] != "ok" else ""


def _value(ax, y: float, value: float) -> None:
    if abs(value) < 1e-9:
        ax.text(0, y, " 0", va="center", fontsize=6.5, color="#555555")
        return
    ax.text(value, y, f" {value:+.2g}% " if abs(value) < 10 else f" {value:+.3g}% ", va="center",
            ha="left" if value > 0 else "right", fontsize=6.5)
