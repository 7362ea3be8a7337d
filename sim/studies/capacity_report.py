"""What llmsim-capacity prints and writes: the probes, the capacity with its bracket, the chart.

Files (each written atomically): ``capacity.json`` (the capacity, its bracket, the figures at
capacity, every probe), ``probes.csv`` and ``probes.parquet`` (one row per probe, the offline run
first), ``latency_vs_load.png``, ``config.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sim.output.console import fmt_time
from sim.output.files import _finite, atomic_write, provenance
from sim.plots.charts import CHARTS, Chart
from sim.studies.capacity import MIN_SPAN_LIFETIMES, Capacity, Probe, too_short

FILES = ("capacity.json", "probes.csv", "probes.parquet", "latency_vs_load.png", "config.yaml")


def describe(found: Capacity) -> str:
    """The system and its targets, in one line."""
    cfg, run = found.cfg, found.offline.summary["run"]
    replicas = f"{run['replicas']} x TP{run['tp']} replicas ({run['router'].replace('_', ' ')} router)" \
        if run["replicas"] > 1 else f"TP{run['tp']}"
    targets = ", ".join(f"p99 {words} <= {fmt_time(value)}" for words, value in
                        (("TTFT", cfg.slo.ttft_p99_s), ("TPOT", cfg.slo.tpot_p99_s)) if value is not None)
    return (f"{run['model']} on {run['chips']}x {run['hardware']}, {replicas}, weights {run['weights']}, "
            f"KV {run['kv_cache']} | SLO {targets}")


def probe_line(p: Probe) -> str:
    """One probe as the search prints it."""
    st = p.steady
    what = "offline (every request at t = 0)" if p.rate == 0 else f"{p.rate:9.3f} requests/s"
    verdict = "" if p.rate == 0 else ("meets the targets" if p.passes else
                                      "overloaded" if p.summary["overloaded"] else
                                      "too short to show a steady state (raise --max-requests)" if too_short(p) else
                                      "misses the targets")
    precise = "" if st["precise"] or p.rate == 0 else " (p99 interval wider than +-5%)"
    return (f"  {what:>32}  {p.requests:>6,} requests  TTFT p50 {fmt_time(st['ttft_p50_s']):>8} p99 "
            f"{fmt_time(st['ttft_p99_s']):>8}  TPOT p50 {fmt_time(st['tpot_p50_s']):>8} p99 "
            f"{fmt_time(st['tpot_p99_s']):>8}  {p.summary['output_tokens_per_s']:>9,.0f} tokens/s  "
            f"{p.wall_s:5.1f} s  {verdict}{precise}")


def render_capacity(found: Capacity) -> str:
    """The closing lines: capacity, bracket, figures at capacity, the search's own cost."""
    off = found.offline.summary
    lines = [f"  offline throughput       {off['requests_per_s']:,.3g} requests/s, "
             f"{off['output_tokens_per_s']:,.0f} output tokens/s (every request at t = 0, over the makespan: "
             "the drain of the last long outputs included)"]
    if found.low is None:
        lines.append(f"  capacity                 0: even {found.high.rate:.3g} requests/s misses the targets")
    else:
        s, st = found.low.summary, found.low.steady
        bracket = (f"bracket {found.low.rate:.4g}-{found.high.rate:.4g}, {found.width:.1%} wide" if found.high
                   else f"no probe up to {found.low.rate:.4g} requests/s failed")
        lines += [
            f"  capacity                 {'at least ' if found.lower_bound else ''}{found.capacity:.4g} requests/s "
            f"({bracket}): {found.output_tokens_per_s:,.0f} output tokens/s at that rate "
            f"({s['output_tokens_per_s']:,.0f} over the probe, its start and drain included), "
            f"p99 TTFT {fmt_time(st['ttft_p99_s'])}, p99 TPOT {fmt_time(st['tpot_p99_s'])}",
            f"  at capacity              ${s['usd_per_million_output_tokens']:.3g} per million output tokens at "
            f"${s['usd_per_chip_hour']:.3g} per chip-hour{_priced(found)}, {s['joules_per_output_token']:.3g} J per "
            "output token (over the probe)",
        ]
        if found.lower_bound:
            high = found.high
            lines.append(f"  lower bound              the probe at {high.rate:.4g} requests/s met the targets, but its "
                         f"{high.requests:,} requests span under {MIN_SPAN_LIFETIMES} mean request lifetimes, too "
                         "short to tell its queue from a slowly growing one: the probe length stopped the search, not "
                         "the system (a larger --max-requests judges it on longer runs)")
    sizes = sorted({p.requests for p in found.probes})
    lines.append(f"  search                   {len(found.probes)} probes (plus the offline run), "
                 f"{'-'.join(f'{n:,}' for n in (sizes[0], sizes[-1]) if n) if len(sizes) > 1 else f'{sizes[0]:,}'} "
                 f"requests per probe, {found.wall_s:.1f} s wall")
    return "\n".join(lines)


def _priced(found: Capacity) -> str:
    """Where the chip-hour's price comes from, when it is not the user's."""
    return "" if found.cfg.cost.usd_per_chip_hour is not None else \
        " (the chip's cost to make, far below a cloud price: cost.usd_per_chip_hour sets one)"


def capacity_body(found: Capacity) -> dict:
    """capacity.json's content (without provenance)."""
    low = found.low.summary if found.low else None
    return {
        "capacity_requests_per_s": found.capacity,
        "capacity_is_lower_bound": found.lower_bound,  # the probe length, not the system, stopped the search
        "output_tokens_per_s_at_capacity": found.output_tokens_per_s,  # at_capacity's is over the probe
        "bracket_requests_per_s": [found.low.rate if found.low else 0.0, found.high.rate if found.high else None],
        "bracket_width": found.width,
        "slo": {"ttft_p99_s": found.cfg.slo.ttft_p99_s, "tpot_p99_s": found.cfg.slo.tpot_p99_s},
        "at_capacity": None if low is None else {
            "output_tokens_per_s": low["output_tokens_per_s"], "requests_per_s": low["requests_per_s"],
            "ttft_p99_s": low["steady_state"]["ttft_p99_s"], "tpot_p99_s": low["steady_state"]["tpot_p99_s"],
            "usd_per_million_output_tokens": low["usd_per_million_output_tokens"],
            "joules_per_output_token": low["joules_per_output_token"], "run": low["run"]},
        "offline": {"requests_per_s": found.offline.summary["requests_per_s"],
                    "output_tokens_per_s": found.offline.summary["output_tokens_per_s"]},
        "probes": [p.row() for p in found.probes],
        "search": {"probes": len(found.probes), "requests": [p.requests for p in found.probes],
                   "wall_s": found.wall_s},
    }


def write_capacity(found: Capacity, out: Path, config_yaml: str) -> None:
    """Write the search's files under ``out`` (capacity.json last)."""
    atomic_write(out / "config.yaml", lambda p: p.write_text(config_yaml))
    frame = pd.DataFrame([found.offline.row(), *[p.row() for p in found.probes]])
    atomic_write(out / "probes.csv", lambda p: frame.to_csv(p, index=False))
    atomic_write(out / "probes.parquet", lambda p: frame.to_parquet(p, index=False))
    chart = CHARTS[Chart.latency_load]
    targets = {"ttft_p99_s": found.cfg.slo.ttft_p99_s, "tpot_p99_s": found.cfg.slo.tpot_p99_s}
    chart.draw([p.row() for p in found.probes], found.capacity, found.offline.summary["requests_per_s"], targets,
               describe(found), out / chart.file())
    body = _finite({**capacity_body(found), "provenance": provenance(config_yaml, found.cfg.seed)})
    atomic_write(out / "capacity.json", lambda p: p.write_text(json.dumps(body, indent=2, allow_nan=False) + "\n"))
