"""Roofline of one run: the chip's ceilings and where each operator type lands.

Ceilings (datasheet peaks, before efficiencies): a horizontal line per number format of the
compute arrays (``matmul_dtype_rate``) and one for the vector unit; a diagonal per memory
level (HBM and on-chip SRAM bandwidth: FLOP/s = bandwidth x intensity). A point is one
operator type of one phase, over the whole run: arithmetic intensity (FLOP per HBM byte) vs
achieved FLOP/s (FLOPs over its simulated time, overhead included). Prefill (circles) and
decode (triangles) sit on opposite sides of the ridge. Ops with no FLOPs (collectives) or
no HBM bytes have no place on this chart and are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hwmodels.chip import HardwareConfig
from hwmodels.numerics import DType
from sim.output.console import fmt_rate
from sim.plots.style import (
    OKABE_ITO,
    PHASE_COLOURS,
    PHASE_MARKERS,
    SERIES,
    new_figure,
    save,
    set_title,
    spread_labels,
)


def op_points(ops: pd.DataFrame) -> pd.DataFrame:
    """One row per (phase, op kind): intensity (FLOP/byte), achieved FLOP/s and time (s)."""
    frame = ops.assign(flops_all=ops["flops"] * ops["count"], bytes_all=ops["hbm_bytes"] * ops["count"])
    grouped = frame.groupby(["phase", "kind"], sort=False).agg(flops=("flops_all", "sum"),
                                                                bytes=("bytes_all", "sum"), time_s=("total_s", "sum"))
    grouped = grouped[(grouped["flops"] > 0) & (grouped["bytes"] > 0) & (grouped["time_s"] > 0)].reset_index()
    grouped["intensity_flop_per_byte"] = grouped["flops"] / grouped["bytes"]
    grouped["achieved_flops_per_s"] = grouped["flops"] / grouped["time_s"]
    return grouped


def ceilings(chip: HardwareConfig) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(compute ceilings as (name, FLOP/s), memory levels as (name, bytes/s)), highest first.

    Formats with the same peak share one line ("fp8, int8 arrays")."""
    by_peak: dict[float, list[str]] = {}
    for name in chip.matmul_dtype_rate:
        by_peak.setdefault(chip.peak_flops(DType(name)), []).append(name)
    compute = [(f"{', '.join(names)} arrays", peak) for peak, names in by_peak.items()]
    compute.append(("vector unit", chip.vector_flops))
    memory = [("SRAM", chip.sram_bandwidth_Bps), ("HBM", chip.hbm_bandwidth_Bps)]
    return sorted(compute, key=lambda c: -c[1]), sorted(memory, key=lambda m: -m[1])


def plot_roofline(ops: pd.DataFrame, chip: HardwareConfig, path: Path, title: str, run_dtype: str = "bf16") -> Path:
    """Draw the roofline of the run whose per-op table is ``ops`` on ``chip``; write ``path``.

    ``run_dtype`` is the format the run's matmuls ran in; its ceiling is drawn bold and the
    ridge marked on it.
    """
    points = op_points(ops)
    compute, memory = ceilings(chip)
    hbm = dict(memory)["HBM"]
    top = compute[0][1]
    run_peak = chip.peak_flops(DType(run_dtype)) if run_dtype in {d.value for d in DType} else top
    lo = min([0.1] + list(points["intensity_flop_per_byte"] / 3))
    hi = max([top / hbm * 30] + list(points["intensity_flop_per_byte"] * 3))
    fig, ax = new_figure(9.0, 6.0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    y_lo = min([top / 1e4] + list(points["achieved_flops_per_s"] / 3))
    ax.set_xlim(lo, hi)
    ax.set_ylim(y_lo, top * 3)
    xs = np.geomspace(lo, hi, 400)
    for name, bw in memory:
        style = "-" if name == "HBM" else "--"
        ax.plot(xs, np.minimum(bw * xs, top), color=OKABE_ITO["black"], linestyle=style, linewidth=1.2)
        x_text = max(lo * 1.3, y_lo * 1.5 / bw)  # near the lower-left end of the diagonal
        ax.annotate(f"{name} {fmt_rate(bw, 'B/s')}", (x_text, bw * x_text), textcoords="offset points",
                    xytext=(-2, 8), fontsize=8, rotation=0, ha="left")
    for i, (name, peak) in enumerate(compute):
        colour = SERIES[(i + 2) % len(SERIES)] if name != "vector unit" else "#777777"
        bold = abs(peak - run_peak) < 1e-6 * peak and name != "vector unit"
        ax.hlines(peak, peak / hbm, hi, colors=colour, linestyles=":" if name == "vector unit" else "-",
                  linewidth=2.4 if bold else 1.2)
        ax.annotate(f"{name}: {fmt_rate(peak, 'FLOP/s')}" + (" (this run)" if bold else ""), (hi, peak),
                    textcoords="offset points", xytext=(-4, 3), ha="right", fontsize=8, color=colour)
    ridge = run_peak / hbm
    ax.axvline(ridge, color="#999999", linewidth=0.8)
    ax.annotate(f"ridge {ridge:.3g} FLOP/B", (ridge, y_lo), textcoords="offset points", xytext=(3, 4), fontsize=7.5,
                color="#555555")
    share = points["time_s"] / points["time_s"].sum() if len(points) else points["time_s"]
    labels = []
    for phase in ("prefill", "decode"):
        sel = points["phase"] == phase
        if not sel.any():
            continue
        ax.scatter(points.loc[sel, "intensity_flop_per_byte"], points.loc[sel, "achieved_flops_per_s"],
                   s=30 + 400 * share[sel], marker=PHASE_MARKERS[phase], color=PHASE_COLOURS[phase], alpha=0.85,
                   edgecolors="black", linewidths=0.5, label=f"{phase} ops", zorder=3)
        labels += [(row["intensity_flop_per_byte"], row["achieved_flops_per_s"], row["kind"], PHASE_COLOURS[phase])
                   for _, row in points[sel].iterrows()]
    spread_labels(ax, labels)
    ax.set_xlabel("arithmetic intensity (FLOP per HBM byte)")
    ax.set_ylabel("achieved FLOP/s (per chip)")
    set_title(ax, title, 11)
    ax.legend(loc="upper left", fontsize=8, title="marker area: share of run time", title_fontsize=8)
    return save(fig, path)
