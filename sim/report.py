"""The console summary of one run."""

from __future__ import annotations


def fmt_time(seconds: float | None) -> str:
    """Seconds with a readable unit: 1.23 s, 45.6 ms, 7.89 us."""
    if seconds is None:
        return "n/a"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns" if seconds else "0"


def fmt_rate(value: float, unit: str) -> str:
    """A rate with an SI prefix: 312 TFLOP/s, 2.04 TB/s."""
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def render(summary: dict, breakdown: list[dict]) -> str:
    run, peaks, mem, util = summary["run"], summary["peaks"], summary["hbm_GB_per_chip"], summary["utilisation"]
    chips = f"{run['chips']}x " if run["chips"] > 1 else ""
    lines = [
        f"llmsim: {run['model']} on {chips}{run['hardware']} | batch {run['batch']}, prompt {run['prompt_tokens']}, "
        f"generate {run['decode_tokens']} | weights {run['weights']}, activations {run['activations']}, "
        f"KV {run['kv_cache']} | {run['attention']} attention | fidelity {run['fidelity']}",
        "",
        f"  time to first token     {fmt_time(summary['ttft_s'])}",
        f"  time per output token   {fmt_time(summary['tpot_s'])}",
        f"  total                   {fmt_time(summary['total_s'])}",
        f"  output tokens/s         {summary['output_tokens_per_s']:,.1f}"
        f"   (prefill: {summary['prefill_tokens_per_s']:,.0f} prompt tokens/s)",
    ]
    steps = run["passes"] - 1
    titles = {"prefill": "prefill (1 pass)", "decode": f"decode ({steps} step{'s' if steps != 1 else ''})"}
    for phase in ("prefill", "decode"):
        rows = [row for row in breakdown if row["phase"] == phase]
        if not rows:
            continue
        lines += [
            "",
            f"  {titles[phase]}: time by operator (AI = FLOP per HBM byte)",
            f"  {'op':<14}{'count':>8}{'time':>11}{'share':>8}  {'bound':<13}{'AI':>8}{'FLOP/s':>13}{'bytes/s':>12}",
        ]
        for row in rows:
            ai = row["intensity_flop_per_byte"]
            lines.append(
                f"  {row['kind']:<14}{row['count']:>8}{fmt_time(row['time_s']):>11}{row['share']:>8.1%}  "
                f"{row['bound']:<13}{ai if ai != float('inf') else 0:>8.3g}"
                f"{fmt_rate(row['achieved_flops_per_s'], 'FLOP/s'):>13}{fmt_rate(row['achieved_bytes_per_s'], 'B/s'):>12}"
            )
    total = summary["total_s"]
    bounds = "  ".join(f"{k} {fmt_time(v)} ({v / total:.0%})" for k, v in summary["time_by_bound_s"].items())
    lines += [
        "",
        f"  time by bound           {bounds}",
        f"  utilisation             compute arrays {util['compute_arrays']:.1%} of {peaks['matrix_TFLOPS']:.4g} "
        f"TFLOP/s ({_as_run(run['activations'], peaks['matrix_dtype'])}) | HBM {util['hbm_bandwidth']:.1%} of {peaks['hbm_GBps']:.4g} GB/s | "
        f"links {util['links']:.1%} of {peaks['link_GBps_per_direction']:.4g} GB/s per direction",
        f"  HBM per chip            weights {mem['weights']:.2f} GB + KV cache {mem['kv_cache']:.2f} GB + "
        f"activations {mem['activations']:.2f} GB = {mem['used']:.2f} of {mem['capacity']:.4g} GB "
        f"({mem['used'] / mem['capacity']:.0%})",
        f"  simulated               {run['passes']} passes, {run['distinct_ops']} distinct ops costed, "
        f"{run['events']} events, {run['sim_wall_s']:.2f} s wall",
    ]
    return "\n".join(lines)


def _as_run(asked: str, ran: str) -> str:
    return asked if asked == ran else f"{asked} runs as {ran}: the chip lacks {asked} arrays"
