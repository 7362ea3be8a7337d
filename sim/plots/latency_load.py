"""Latency against load: p50 and p99 TTFT and TPOT of each capacity probe against its offered rate,
the targets dashed, the capacity (the knee: the highest rate that meets the targets) and the
offline throughput marked. Colours from the Okabe-Ito palette (sim/plots/style.py)."""

from __future__ import annotations

from pathlib import Path

from sim.plots.style import OKABE_ITO, plt, save

_SERIES = ((50, "p50", OKABE_ITO["sky_blue"], "o"), (99, "p99", OKABE_ITO["vermillion"], "s"))


def plot_latency_load(rows: list[dict], capacity: float, offline_rate: float, targets: dict, title: str,
                      path: Path) -> Path:
    """Two panels (TTFT, TPOT) over the offered rate of ``rows`` (the probes' table rows)."""
    rows = sorted(rows, key=lambda r: r["offered_rate_per_s"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), dpi=110)
    panels = ((axes[0], "ttft", "time to first token (s)"), (axes[1], "tpot", "time per output token (s)"))
    for ax, key, words in panels:
        rate = [r["offered_rate_per_s"] for r in rows]
        for pct, label, colour, marker in _SERIES:
            values = [r[f"{key}_p{pct}_s"] for r in rows]
            ax.plot(rate, values, marker=marker, color=colour, label=label)
        passed = [r for r in rows if r["passes"]]
        ax.scatter([r["offered_rate_per_s"] for r in passed], [r[f"{key}_p99_s"] for r in passed], s=80,
                   facecolors="none", edgecolors=OKABE_ITO["bluish_green"], label="probe meets the targets", zorder=3)
        target = targets.get(f"{key}_p99_s")
        if target is not None:
            ax.axhline(target, color=OKABE_ITO["black"], linestyle="--", linewidth=1, label=f"p99 target {target:g} s")
        if capacity > 0:
            ax.axvline(capacity, color=OKABE_ITO["bluish_green"], linewidth=1.5,
                       label=f"knee: capacity {capacity:.3g} requests/s")
        ax.axvline(offline_rate, color=OKABE_ITO["orange"], linestyle=":", linewidth=1.5,
                   label=f"offline throughput {offline_rate:.3g} requests/s")
        if any(v is not None and v > 0 for r in rows for v in (r[f"{key}_p50_s"], r[f"{key}_p99_s"])):
            ax.set_yscale("log")
        else:  # every request made one token (no TPOT), or no probe measured any request
            ax.text(0.5, 0.5, "not measured at any load\n(no request measured made a second token)",
                    transform=ax.transAxes, ha="center", va="center", color=OKABE_ITO["black"])
            ax.set_yticks([])
        ax.set_xlabel("offered load (requests/s)")
        ax.set_ylabel(words)
        ax.grid(True, which="major", color="#E5E5E5", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    return save(fig, path)
