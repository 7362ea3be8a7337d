"""The plot of a serving run: latency percentiles, then batch and queue, then KV-cache use, over time.

Colours from the Okabe-Ito palette (sim/plots/style.py); matplotlib is imported only here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.metrics.catalog import LATENCY_TITLES
from sim.plots.style import OKABE_ITO, plt, save
from sim.serving.registry import scheduler_label

_PCT_COLOURS = {50: OKABE_ITO["sky_blue"], 90: OKABE_ITO["blue"], 99: OKABE_ITO["vermillion"]}
_LINES = ("-", "--", ":", "-.")  # instances of a disaggregated server


def plot_serving(summary: dict, steps: dict[str, list], path: Path) -> Path:
    """Latency percentiles, then batch size and waiting requests, then KV-cache use, over time."""
    fig, (lat, batch, kv) = plt.subplots(3, 1, figsize=(9, 10), dpi=110,
                                         gridspec_kw={"height_ratios": [1.1, 1, 1]})
    for ax in (lat, batch, kv):
        ax.grid(True, which="major", color="#E5E5E5", linewidth=0.8)
        ax.set_axisbelow(True)
    _latency_panel(lat, summary)
    names = list(dict.fromkeys(steps["instance"]))  # one series per instance, in order
    start = np.asarray(steps["start_s"])
    for n, name in enumerate(names):
        sel = np.asarray(steps["instance"]) == name
        t = np.append(start[sel], np.asarray(steps["end_s"])[sel][-1:])
        suffix = f" ({name})" if len(names) > 1 else ""
        style = _LINES[n % len(_LINES)]
        for key, label, colour in (("batch_size", "sequences in the step", OKABE_ITO["blue"]),
                                   ("waiting", "requests waiting", OKABE_ITO["orange"])):
            values = np.asarray(steps[key], dtype=float)[sel]
            if key == "waiting" and name.startswith("decode") and not values.any():
                continue  # a decode instance's queue holds only its recomputes
            keep = _pixels(t, np.append(values, values[-1:]))
            batch.step(t[keep], np.append(values, values[-1:])[keep], where="post", color=colour, linestyle=style,
                       linewidth=1.0, label=label + suffix)
        use = 100 * np.asarray(steps["kv_cache_use"], dtype=float)[sel]
        use = np.append(use, use[-1:])
        keep = _pixels(t, use)
        kv.step(t[keep], use[keep], where="post", color=OKABE_ITO["bluish_green"], linestyle=style,
                linewidth=1.0, label="KV cache used" + suffix)
    batch.set_ylabel("requests")
    batch.set_title("batch and queue over time", fontsize=11)
    top = max([1.0] + [float(np.max(steps[k])) for k in ("batch_size", "waiting") if len(steps[k])])
    batch.set_ylim(0, top * 1.3)  # room for the legend
    batch.legend(loc="upper right", fontsize=8, ncol=2)
    preempt = np.asarray(steps["preempted"]) > 0
    if preempt.any():
        kv.plot(start[preempt], np.full(preempt.sum(), 101.0), "|", color=OKABE_ITO["vermillion"], markersize=8,
                label=f"step with preemptions ({summary['preemptions']:,} in all)")
    kv.set_ylim(0, 125)  # room for the legend above 100 %
    kv.set_yticks(range(0, 101, 20))
    kv.set_ylabel("KV cache used (% of blocks)")
    kv.set_xlabel("time (s)")
    kv.set_title("KV-cache use over time", fontsize=11)
    kv.legend(loc="upper right", fontsize=8, ncol=2)
    for ax in (batch, kv):
        ax.set_xlim(left=0)
    run = summary["run"]
    chips = f"{run['chips']}x " if run["chips"] > 1 else ""
    fig.suptitle(f"{run['model']} on {chips}{run['hardware']}, {scheduler_label(run['scheduler'])}: "
                 f"{summary['requests']:,} requests, {summary['output_tokens_per_s']:,.0f} output tokens/s",
                 fontsize=12)
    return save(fig, path)


BINS = 2048  # time bins across a panel: about twice its width in pixels


def _pixels(t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The points of a step line that can show at the figure's resolution: in each of ``BINS`` equal time bins its
    first, last, lowest and highest (the line drawn through them covers the same pixels; a trace replay has
    hundreds of thousands of steps, which would take seconds to draw). All of them when there are few."""
    if len(t) <= 4 * BINS or not t[-1] > t[0]:
        return np.arange(len(t))
    bins = np.minimum(((t - t[0]) / (t[-1] - t[0]) * BINS).astype(np.int64), BINS - 1)
    by_value = np.lexsort((values, bins))  # within each bin (bins never decrease with t): lowest first
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])  # the first point of each bin, in time
    ends = np.r_[starts[1:], len(t)] - 1
    firsts = np.flatnonzero(np.r_[True, bins[by_value][1:] != bins[by_value][:-1]])
    lasts = np.r_[firsts[1:], len(t)] - 1
    return np.unique(np.concatenate([starts, ends, by_value[firsts], by_value[lasts]]))


def _latency_panel(ax, summary: dict) -> None:
    x = np.arange(len(LATENCY_TITLES))
    width = 0.26
    zeros = []
    for i, p in enumerate((50, 90, 99)):
        values = np.array([summary[f"{key}_p{p}_s"] or 0.0 for key in LATENCY_TITLES])
        ax.bar(x + (i - 1) * width, np.where(values > 0, values, np.nan), width, color=_PCT_COLOURS[p], label=f"p{p}")
        zeros += [x[j] + (i - 1) * width for j in np.flatnonzero(values <= 0)]
    for xz in zeros:  # a log axis has no bar for zero: say so
        ax.annotate("0", (xz, 0), xycoords=("data", "axes fraction"), xytext=(0, 3), textcoords="offset points",
                    ha="center", fontsize=8)
    slo = summary["slo"]
    for xi, key in ((1, "ttft_s"), (2, "tpot_s")):
        ax.hlines(slo[key], xi - 1.6 * width, xi + 1.6 * width, colors=OKABE_ITO["black"], linestyles="dashed",
                  linewidth=1.2, label="latency target (SLO)" if key == "ttft_s" else None)
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 30)  # room for the legend above the bars
    ax.set_xticks(x, list(LATENCY_TITLES.values()))
    ax.set_ylabel("latency (s, log scale)")
    ax.set_title("latency percentiles per request", fontsize=11)
    ax.legend(loc="upper left", fontsize=8, ncol=4)
