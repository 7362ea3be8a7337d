"""The console summary of a serving run."""

from __future__ import annotations

from sim.metrics.catalog import LATENCY_TITLES, PERCENTILES
from sim.output.console import fmt_time, speculative_label
from sim.serving.registry import scheduler_label


def render_serving(summary: dict) -> str:
    """Console lines of a serving run."""
    run, kv, ll, cost = summary["run"], summary["kv_cache"], summary["littles_law"], summary["cost"]
    chips = f"{run['chips']}x " if run["chips"] > 1 else ""
    slo = summary["slo"]
    pools = ""
    if run["replicas"] * run["pp"] < run["instances"]:  # separate prefill and decode pools (disaggregated)
        pools = f"{run['prefill_instances']} prefill + {run['decode_instances']} decode instances, "
    elif run["replicas"] > 1 or run["pp"] > 1:
        stages = f" of {run['pp']} pipeline stages ({run['pp']} virtual engines each)" if run["pp"] > 1 else ""
        pools = f"{run['replicas']} replica{'s' if run['replicas'] > 1 else ''}{stages}, "
    lines = [
        f"llmsim serving: {run['model']} on {chips}{run['hardware']} | {scheduler_label(run['scheduler'])} "
        f"({pools}max {run['max_batch']} sequences, {run['token_budget']:,} tokens per step, "
        f"{kv['block_tokens']}-token KV "
        f"blocks, preemption by {run['preemption']}){speculative_label(run)} | {summary['requests']:,} requests: "
        f"{run['traffic']}",
        "",
        f"  completed               {summary['completed_requests']:,} requests in {fmt_time(summary['duration_s'])}: "
        f"{summary['requests_per_s']:,.2f} requests/s, {summary['output_tokens_per_s']:,.0f} output tokens/s",
        "  latency                      p50        p90        p99",
    ]
    for key, label in LATENCY_TITLES.items():
        values = [summary[f"{key}_p{p}_s"] for p in PERCENTILES]
        lines.append(f"    {label:<22}" + "".join(f"{fmt_time(v):>11}" for v in values))
    lines += [
        f"  goodput                 {summary['goodput_requests_per_s']:,.2f} requests/s meet TTFT <= "
        f"{fmt_time(slo['ttft_s'])} and TPOT <= {fmt_time(slo['tpot_s'])} ({summary['slo_attainment']:.0%} of "
        f"requests)",
        *_p99(summary),
        f"  load                    {_load(summary)}",
        f"  batch                   mean {summary['batch_size_mean']:.1f}, max {summary['batch_size_max']} sequences "
        f"per step over {summary['steps']:,} steps; chip busy {summary['busy_fraction']:.0%} of the time",
        f"  KV cache                {kv['blocks']:,} blocks of {kv['block_tokens']} tokens"
        f"{f' per virtual engine, {e} on each chip' if (e := kv.get('engines_per_chip', 1)) > 1 else ''} "
        f"({kv['GB_per_chip']:.3g} GB "
        f"per chip beside {kv['weights_GB_per_chip']:.3g} GB of weights): mean {summary['kv_cache_use_mean']:.0%}, "
        f"peak {summary['kv_cache_use_max']:.0%} used (holds {kv['sequences_fit_at_mean_lengths']:,} sequences of mean "
        f"length); {summary['preemptions']:,} preemptions"
        + (f", {summary['swapped_GB_per_chip']:.3g} GB swapped" if summary["swapped_GB_per_chip"] else ""),
        *_moves(summary),
        *_replicas(summary),
        *_prefix(summary),
        f"  Little's law            waiting: L = {ll['queue']['L_time_average']:.3g} vs lambda W = "
        f"{ll['queue']['lambda_W']:.3g} | in system: L = {ll['system']['L_time_average']:.3g} vs lambda W = "
        f"{ll['system']['lambda_W']:.3g}",
        f"  energy                  {summary['joules_per_output_token']:.3g} J per output token, "
        f"{summary['avg_power_W']:,.0f} W per chip on average",
        f"  cost                    ${summary['usd_per_million_output_tokens']:.3g} per million output tokens at "
        f"${summary['usd_per_chip_hour']:.3g} per chip-hour ({cost['usd_per_chip_hour_source']}); 2023 API prices: "
        f"${cost['api_2023_usd_per_million_prompt_tokens']:.0f} per million prompt tokens ($0.03 per 1K), "
        f"${cost['api_2023_usd_per_million_output_tokens']:.0f} per million generated ($0.06 per 1K): "
        f"this run ${cost['run_usd']:.3g} vs ${cost['api_2023_usd_for_this_run']:.3g}",
        f"  simulated               {summary['steps']:,} steps, {run['distinct_steps']:,} distinct steps costed, "
        f"{run['events']:,} events, {run['sim_wall_s']:.2f} s wall",
    ]
    return "\n".join(lines)


def _moves(summary: dict) -> list[str]:
    moves = summary["kv_moves"]
    if not moves["count"]:
        return []
    return [f"  KV moves                {moves['count']:,} caches moved from prefill to decode instances over "
            f"the links, "
            f"{moves['GB_per_chip']:.3g} GB per chip, {fmt_time(moves['mean_s'])} each on average"]


def _p99(summary: dict) -> list[str]:
    st = summary["steady_state"]
    if st["meets_p99_slo"] is None:
        if st["measured_requests"] or not any(v is not None for v in st["targets"].values()):
            return []
        return ["  p99 SLO                 not judged: no steady-state request to measure (the first and last 10% "
                "of arrivals are left out): run more requests"]
    parts = []
    for key, words in (("ttft", "TTFT"), ("tpot", "TPOT")):
        low, high = st[f"{key}_p99_ci_s"]
        target = st["targets"][f"{key}_p99_s"]
        goal = f" (target {fmt_time(target)})" if target is not None else ""
        parts.append(f"{words} {fmt_time(st[f'{key}_p99_s'])}{goal}, 90% interval {fmt_time(low)}-{fmt_time(high)}")
    verdict = "met" if st["meets_p99_slo"] else "NOT met"
    precise = "" if st["precise"] else "; an interval is wider than +-5%: run more requests"
    return [f"  p99 SLO                 {verdict}: {'; '.join(parts)} over {st['measured_requests']:,} steady-state "
            f"requests (first and last 10% of arrivals left out){precise}"]


def _prefix(summary: dict) -> list[str]:
    pc = summary["prefix_cache"]
    if not pc["enabled"]:
        return []
    return [f"  prefix cache            {pc['hits']:,} of {pc['lookups']:,} admissions hit ({pc['hit_rate']:.1%}), "
            f"{pc['saved_prefill_tokens']:,} prompt tokens not prefilled, {pc['evictions']} evictions; mean TTFT "
            f"{fmt_time(pc['ttft_mean_hit_s'])} on a hit, {fmt_time(pc['ttft_mean_miss_s'])} on a miss"]


def _replicas(summary: dict) -> list[str]:
    run, load = summary["run"], summary["load"]
    if run["replicas"] <= 1 and run["pp"] <= 1:
        return []
    requests = "/".join(f"{n:,}" for n in load["requests_by_instance"].values())
    busy = "/".join(f"{b:.0%}" for b in load["busy_fraction_by_instance"].values())
    router = run["router"].replace("_", " ")
    shape = f"TP{run['tp']} x PP{run['pp']}" if run["pp"] > 1 else f"TP{run['tp']}"
    return [f"  replicas                {run['replicas']} x {shape} behind the {router} router: "
            f"requests {requests}, busy {busy}; the busiest has {load['request_imbalance']:.2f}x the mean requests, "
            f"{load['busy_imbalance']:.2f}x the mean busy time"]


def _load(summary: dict) -> str:
    if summary["run"]["traffic"].startswith("offline"):  # no arrival rate: the queue only drains
        return "offline: every request arrives at t = 0, so the queue only drains (no rate to be stable at)"
    growth = summary["queue_growth_s_per_s"]
    if summary["overloaded"]:
        return (f"OVERLOADED: requests arrive faster than they complete; the queueing delay grew by "
                f"{growth:.2f} s per second of arrivals and keeps growing with the run")
    return f"stable (queueing delay grows {growth:.2g} s per second of arrivals)"
