"""The console summary of one run (metric titles and units from sim/metrics/catalog.py)."""

from __future__ import annotations

from sim.metrics.catalog import metric


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


def fmt_count(value: float, decimals: int) -> str:
    """A count per second with ``decimals`` decimals, or three significant figures below 1 (a very slow chip's
    0.0049 tokens/s is not 0.0)."""
    return f"{value:,.{decimals}f}" if value >= 1 or value == 0 else f"{value:.3g}"


def render(summary: dict, breakdown: list[dict]) -> str:
    run, peaks, mem, util = summary["run"], summary["peaks"], summary["hbm_GB_per_chip"], summary["utilisation"]
    chips = f"{run['chips']}x " if run["chips"] > 1 else ""
    lines = [
        f"llmsim: {run['model']} on {chips}{run['hardware']} | batch {run['batch']}, prompt {run['prompt_tokens']}, "
        f"generate {run['decode_tokens']} | weights {run['weights']}, activations {run['activations']}, "
        f"KV {run['kv_cache']} | {run['attention']} attention | runtime {run['runtime']} | fidelity {run['fidelity']}"
        f"{speculative_label(run)}",
        "",
        headline(summary, "ttft_s"),
        headline(summary, "tpot_s"),
        headline(summary, "total_s", "total"),
        f"  output tokens/s         {fmt_count(summary['output_tokens_per_s'], 1)}"
        f"   (prefill: {fmt_count(summary['prefill_tokens_per_s'], 0)} prompt tokens/s)",
    ]
    prefills, steps = run["prefill_passes"], run["decode_steps"]
    decodes = run["passes"] - prefills  # more than its steps: a pass per micro-batch, a speculative step's drafts
    titles = {"prefill": f"prefill ({prefills} pass{'es' if prefills != 1 else ''})",
              "decode": f"decode ({steps} step{'s' if steps != 1 else ''}"
                        f"{f', {decodes} passes' if decodes != steps else ''})"}
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
                f"{fmt_rate(row['achieved_flops_per_s'], 'FLOP/s'):>13}"
                f"{fmt_rate(row['achieved_bytes_per_s'], 'B/s'):>12}"
            )
    total = summary["total_s"]
    bounds = "  ".join(f"{k} {fmt_time(v)} ({v / total:.0%}){_tiers(summary) if k == 'interconnect' else ''}"
                       for k, v in summary["time_by_bound_s"].items())
    lines += ["", f"  time by bound           {bounds}"]
    lines += network_lines(summary)
    lines += [
        f"  utilisation             compute arrays {util['compute_arrays']:.1%} of {peaks['matrix_TFLOPS']:.4g} "
        f"TFLOP/s ({_as_run(run['activations'], peaks['matrix_dtype'])}) | HBM {util['hbm_bandwidth']:.1%} of "
        f"{peaks['hbm_GBps']:.4g} GB/s | "
        f"links {util['links']:.1%} of {peaks['link_GBps_per_direction']:.4g} GB/s per direction",
        f"  HBM per chip            weights {mem['weights']:.2f} GB + KV cache {mem['kv_cache']:.2f} GB + "
        f"activations {mem['activations']:.2f} GB = {mem['used']:.2f} of {mem['capacity']:.4g} GB "
        f"({mem['used'] / mem['capacity']:.0%})",
        *_long_context_lines(summary),
        f"  simulated               {run['passes']} passes, {run['distinct_ops']} distinct ops costed, "
        f"{run['events']} events, {run['sim_wall_s']:.2f} s wall",
    ]
    if "energy_J" in summary:
        lines += economics_lines(summary)
    return "\n".join(lines)


def _tiers(summary: dict) -> str:
    """The interconnect part's split by network tier, where the summary has one."""
    tiers = summary.get("time_by_tier_s")
    if not tiers:
        return ""
    return f" [scale-up {fmt_time(tiers['scale_up'])}, link:scale_out {fmt_time(tiers['scale_out'])}]"


def network_lines(summary: dict) -> list[str]:
    """Op time by model part (attention, experts, all-to-all ...), where the summary has it."""
    parts = summary.get("time_by_part_s")
    if not parts:
        return []
    total = sum(parts.values()) or 1.0
    shares = "  ".join(f"{k.replace('_', '-')} {fmt_time(v)} ({v / total:.0%})" for k, v in parts.items() if v)
    return [f"  op time by part         {shares}"]


def speculative_label(run: dict) -> str:
    """The header's note of a speculative run: its draft, k and acceptance (the draft's weights, KV cache and passes
    are in the run's figures); '' without one."""
    spec = run.get("speculative")
    if not spec:
        return ""
    tokens = spec["expected_tokens_per_step"]
    return (f" | speculative: draft {spec['draft_model']}, k {spec['k']}, acceptance {spec['acceptance']:g} "
            f"({tokens:.3g} token{'s' if f'{tokens:.3g}' != '1' else ''} a step expected)")


def headline(summary: dict, name: str, title: str | None = None) -> str:
    """One console line of a summary metric: its catalog title (or ``title``), then the value in its unit."""
    entry = metric(name)
    value = summary[name]
    text = fmt_time(value) if entry.unit == "s" else f"{value:,.4g} {entry.unit}".rstrip()
    return f"  {title or entry.title:<24}{text}"


def _as_run(asked: str, ran: str) -> str:
    return asked if asked == ran else f"{asked} runs as {ran}: the chip lacks {asked} arrays"


def economics_lines(summary: dict) -> list[str]:
    """Energy, power, area and cost lines (figures from sim/metrics/shared.py)."""
    run, energy, area, cost = summary["run"], summary["energy"], summary["area"], summary["cost"]
    phase = energy["power_W_by_phase"]
    phases = ", ".join(f"{name} {watts:,.0f} W" for name, watts in phase.items() if watts is not None)
    board = f" (board {energy['board_power_W']:,.0f} W)" if energy["board_power_W"] else ""
    published = f" (published {area['published_die_area_mm2']:,.0f})" if area["published_die_area_mm2"] else ""
    dies = f" in {area['num_dies']} dies" if area["num_dies"] > 1 else ""
    chips = run["chips"]
    return [*_hbm_note(area), 
        f"  energy                  {fmt_rate(summary['energy_J'], 'J')} on {chips} chip{'s' if chips > 1 else ''}, "
        f"{summary['joules_per_output_token']:.3g} J per output token | per chip: avg {summary['avg_power_W']:,.0f} W, "
        f"peak {summary['peak_power_W']:,.0f} W{board}; {phases}",
        *_clock_line(energy),
        f"  chip                    {summary['chip_area_mm2']:,.0f} mm^2{dies} at {area['process_node']}{published} | "
        f"est. cost to make ${summary['chip_cost_usd']:,.0f} | ${summary['usd_per_chip_hour']:.3g} per chip-hour "
        f"({cost['usd_per_chip_hour_source']})",
        f"  cost per token          ${summary['usd_per_million_output_tokens']:.3g} per million output tokens "
        f"(2023 API prices: ${cost['api_2023_usd_per_million_output_tokens']:.0f} per million generated, "
        f"${cost['api_2023_usd_per_million_prompt_tokens']:.0f} per million prompt; this run ${cost['run_usd']:.3g} "
        f"vs ${cost['api_2023_usd_for_this_run']:.3g} at those prices)",
        f"  efficiency              {summary['output_tokens_per_s_per_usd'] * 1000:.3g} output tokens/s per $1k "
        f"of chip | {summary['output_tokens_per_s_per_W']:.3g} output tokens/s per W",
    ]


def _clock_line(energy: dict) -> list[str]:
    """The sustained clock under the board power budget (single-batch runs; hwmodels/power.py)."""
    if "sustained_clock_GHz" not in energy:
        return []
    boost, held = energy["boost_clock_GHz"], energy["sustained_clock_GHz"]
    if energy["power_limited"]:
        why = (f"power-limited: the {energy['board_power_W']:,.0f} W budget held it down, "
               f"lowest {energy['min_clock_GHz']:.4g}")
    elif not energy["power_cap"]:
        why = "power.cap=false: every kernel at the boost clock"
    elif not energy.get("board_power_W"):
        why = "no board power published for the chip: not capped"
    else:
        why = "within the board power budget"
    over = "; peak power over the board budget" if energy.get("over_budget") else ""
    return [f"  clock                   {held:.4g} GHz sustained of {boost:.4g} GHz ({why}){over}"]


def _hbm_note(area: dict) -> list[str]:
    """Says when the HBM stacks were derived from the bandwidth and capacity (hwmodels/hbm_stacks.py)."""
    note = area.get("hbm_stacks_note")
    return [f"  HBM                     {note}"] if note else []


def _long_context_lines(summary: dict) -> list[str]:
    """The KV cache's host tier and the context-parallel ring, when the run uses them."""
    lines = []
    if "kv_offload" in summary:
        off = summary["kv_offload"]
        lines.append(f"  KV on host memory       {off['kv_on_host_GB']:.2f} GB per chip (of "
                     f"{off['host_capacity_GB']:.4g} GB) at {off['host_bandwidth_GBps']:.4g} GB/s per direction, "
                     f"host link busy {fmt_time(off['host_busy_s'])}")
    if "context_parallel" in summary:
        cp = summary["context_parallel"]
        lines.append(f"  context parallel        {cp['cp']} ranks, ring attention: {cp['ring_sends']} KV block sends, "
                     f"{cp['ring_bytes_per_chip'] / 1e9:.3g} GB sent per chip")
    return lines
