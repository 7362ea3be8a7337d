"""From a serving run to the numbers people read: latency percentiles, throughput, goodput, cost.

Per request (seconds): ``queueing_delay_s`` = first admission - arrival; ``ttft_s`` = first
token - arrival; ``tpot_s`` = (completion - first token) / (output tokens - 1), NaN with one
output token; ``e2e_s`` = completion - arrival. A request meets the SLO when ``ttft_s <=
slo.ttft_s`` and ``tpot_s <= slo.tpot_s`` (or it has one token).

Overall, over the run's span (first arrival to last completion, ``duration_s``):
``output_tokens_per_s``, ``requests_per_s``, ``goodput_requests_per_s`` (requests meeting the
SLO per second); percentiles p50/p90/p99 (numpy's linear interpolation); ``overloaded`` when the
queueing delay grows with the arrival time by more than ``OVERLOAD_GROWTH`` seconds per second
(least-squares slope), i.e. requests arrive faster than the server completes them.

Little's law, ``L = lambda W``, on two queues over ``[0, last completion]``: the requests waiting
for a first admission (L from the server's own time integral, W the mean queueing delay) and
the requests in the system (W the mean end-to-end latency).

Utilisation, energy, area, cost and prices are the parts every run shares (sim/metrics/shared.py,
one rule for batch and serving runs), taken over ``duration_s``: the dynamic energy of every
instance's steps (their op records, sim/engine/op_energy.py), host transfers (token IDs, KV swaps)
and KV moves over the links, times the chips of a group, plus static power of every chip over
the span, idle time included. ``energy_J`` is for all chips, power per chip.
"""

from __future__ import annotations

import numpy as np

from sim.config.schema import WorkloadKind
from sim.metrics.catalog import LATENCY_TITLES, PERCENTILES
from sim.metrics.run_summary import Summary
from sim.metrics.shared import (
    TOKEN_ID_BYTES,
    ChipFacts,
    ChipWork,
    Span,
    chip_economics,
    energy,
    pricing,
    run_info,
    utilisation,
)
from sim.metrics.slo import steady_p99
from sim.serving.run import ServingResult

OVERLOAD_GROWTH = 0.05  # s of queueing delay per s of arrivals above which the server is overloaded
LATENCIES = tuple(f"{key}_s" for key in LATENCY_TITLES)  # queueing_delay_s, ttft_s, tpot_s, e2e_s


def request_columns(result: ServingResult) -> dict[str, np.ndarray]:
    """The per-request table, in arrival order."""
    reqs, slo = result.requests, result.cfg.slo
    col = {
        "request_id": np.array([r.rid for r in reqs], dtype=np.int64),
        "source_row": np.array([r.row for r in reqs], dtype=np.int64),
        "arrival_s": np.array([r.arrival_s for r in reqs]),
        "prompt_tokens": np.array([r.prompt_tokens for r in reqs], dtype=np.int64),
        "output_tokens": np.array([r.output_tokens for r in reqs], dtype=np.int64),
        "first_scheduled_s": np.array([r.first_scheduled_s for r in reqs]),
        "first_token_s": np.array([r.first_token_s for r in reqs]),
        "finish_s": np.array([r.finish_s for r in reqs]),
        "preemptions": np.array([r.preemptions for r in reqs], dtype=np.int64),
        "instance": np.array([r.instance for r in reqs], dtype=object),
        "cached_prompt_tokens": np.array([r.cached_prompt for r in reqs], dtype=np.int64),
    }
    col["queueing_delay_s"] = col["first_scheduled_s"] - col["arrival_s"]
    col["ttft_s"] = col["first_token_s"] - col["arrival_s"]
    after_first = col["output_tokens"] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        col["tpot_s"] = np.where(after_first > 0, (col["finish_s"] - col["first_token_s"]) / after_first, np.nan)
    col["e2e_s"] = col["finish_s"] - col["arrival_s"]
    col["meets_slo"] = (col["ttft_s"] <= slo.ttft_s) & ((after_first == 0) | (col["tpot_s"] <= slo.tpot_s))
    order = np.argsort(col["arrival_s"], kind="stable")
    return {k: v[order] for k, v in col.items()}


def summarize_serving(result: ServingResult, cols: dict[str, np.ndarray] | None = None,
                      intervals: bool = True) -> dict:
    """The run's headline numbers, as written to summary.json (``intervals=False``: without the steady-state
    p99s and their bootstrap intervals, a few tenths of a second on a trace replay; for the chart, which does
    not show them)."""
    return serving_summary(result, cols, intervals).as_dict()


def serving_summary(result: ServingResult, cols: dict[str, np.ndarray] | None = None,
                    intervals: bool = True) -> Summary:
    """The typed summary of a serving run (shared parts from sim/metrics/shared.py)."""
    cfg = result.cfg
    cols = request_columns(result) if cols is None else cols
    duration = max(result.end_s - float(np.min(cols["arrival_s"])), 1e-12)
    out_tokens, prompt_tokens = int(cols["output_tokens"].sum()), int(cols["prompt_tokens"].sum())
    econ = chip_economics(cfg)
    # KV moves between instances are ops whose energy the server adds to dynamic_J (sim/serving/disaggregated.py)
    host = econ.energy.work(host_bytes=TOKEN_ID_BYTES * (prompt_tokens + out_tokens) + result.swapped_bytes).total_J
    work = ChipWork(result.matrix_flops, result.hbm_bytes, None, duration * result.instances,
                    {"steps_and_moves_J": result.dynamic_J, "host_J": host})
    span = Span(duration, result.chips, cfg.parallel.tp, out_tokens, prompt_tokens)
    run_energy = energy(cfg, econ, work, span)
    extra = {"steps_and_moves_dynamic_J_per_group_chip": result.dynamic_J, "host_J_per_group_chip": host,
             "static_J_per_chip": run_energy.by_component_J_per_chip["static_J"]}
    return Summary(WorkloadKind.serving, _figures(result, cols, duration, intervals),
                   utilisation(cfg, work, result.chips),
                   run_energy, pricing(cfg, econ, run_energy.avg_power_W, span), ChipFacts(econ, cfg),
                   _run_info(result), energy_extra=extra)


def _figures(result: ServingResult, cols: dict[str, np.ndarray], duration: float, intervals: bool = True) -> dict:
    """The serving run's own headline figures: requests, latencies, rates, queues, steps."""
    n = len(cols["request_id"])
    completed = int(np.sum(~np.isnan(cols["finish_s"])))
    out_tokens, prompt_tokens = int(cols["output_tokens"].sum()), int(cols["prompt_tokens"].sum())
    good = int(cols["meets_slo"].sum())
    growth = _growth(cols["arrival_s"], cols["queueing_delay_s"])
    return {
        "completed_requests": completed,
        "requests": n,
        **{f"{name[:-2]}_p{p}_s": _pct(cols[name], p) for name in LATENCIES for p in PERCENTILES},
        **{f"{name[:-2]}_mean_s": _mean(cols[name]) for name in LATENCIES},
        "output_tokens_per_s": out_tokens / duration,
        "prompt_tokens_per_s": prompt_tokens / duration,
        "requests_per_s": completed / duration,
        "goodput_requests_per_s": good / duration,
        "slo_attainment": good / n,
        "slo": {"ttft_s": result.cfg.slo.ttft_s, "tpot_s": result.cfg.slo.tpot_s},
        "steady_state": steady_p99(cols, result.cfg.slo) if intervals else {},
        "preemptions": result.preemptions,
        "overloaded": bool(growth > OVERLOAD_GROWTH),
        "queue_growth_s_per_s": growth,
        "duration_s": duration,
        "output_tokens": out_tokens,
        "prompt_tokens": prompt_tokens,
        "littles_law": _littles_law(result, cols, duration),
        **_steps(result, duration),
        "load": _load(result, cols, duration),
        "prefix_cache": _prefix_cache(result, cols),
    }


def _pct(values: np.ndarray, p: float) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.percentile(values, p)) if values.size else None


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def _growth(arrival: np.ndarray, delay: np.ndarray) -> float:
    """Least-squares slope of queueing delay against arrival time (s per s)."""
    if arrival.size < 3 or np.ptp(arrival) <= 0:
        return 0.0
    x = arrival - arrival.mean()
    return float(np.dot(x, delay - delay.mean()) / np.dot(x, x))


def _littles_law(result: ServingResult, cols: dict[str, np.ndarray], horizon: float) -> dict:
    """L (time averages of the request-seconds waiting and in the system) against lambda W, over the run's span from
    its first arrival to its last completion, the span ``requests_per_s`` is taken over (the system is empty
    before: from t = 0 a trace starting late diluted both sides)."""
    rate = len(cols["arrival_s"]) / horizon
    return {
        "horizon_s": horizon,
        "arrival_rate_per_s": rate,
        "queue": {"L_time_average": result.queue_area / horizon,
                  "lambda_W": rate * float(np.mean(cols["queueing_delay_s"]))},
        "system": {"L_time_average": result.system_area / horizon, "lambda_W": rate * float(np.mean(cols["e2e_s"]))},
    }


def _steps(result: ServingResult, duration: float) -> dict:
    s = result.steps
    start, end = np.asarray(s["start_s"]), np.asarray(s["end_s"])
    dt = end - start
    busy = float(dt.sum()) or 1.0
    batch, kv = np.asarray(s["batch_size"]), np.asarray(s["kv_cache_use"])
    group_s = duration * result.instances  # time of all instances together
    return {
        "steps": len(start),
        "batch_size_mean": float(np.dot(batch, dt) / busy),
        "batch_size_max": int(batch.max()) if batch.size else 0,
        "kv_cache_use_mean": float(np.dot(kv, dt) / busy),
        "kv_cache_use_max": float(kv.max()) if kv.size else 0.0,
        "kv_cache": {"per_instance": True, "blocks": result.cache.blocks,
                     "sequences_fit_at_mean_lengths": _fits(result),
                     "block_tokens": result.cfg.attention.kv_block_tokens,
                     # with pipeline parallelism a chip holds the caches of its stage's pp virtual engines
                     "engines_per_chip": result.cfg.parallel.pp,
                     "GB_per_chip": result.cache.kv * result.cfg.parallel.pp / 1e9,
                     "weights_GB_per_chip": result.cache.weights / 1e9,
                     "activations_GB_per_chip": result.cache.activations / 1e9,
                     "hbm_GB_per_chip": result.cache.hbm / 1e9},
        "swapped_GB_per_chip": result.swapped_bytes / 1e9,
        "instances": result.instances,
        "kv_moves": {"count": result.moves, "GB_per_chip": result.moved_bytes / 1e9,
                     "mean_s": result.move_s / result.moves if result.moves else None},
        "busy_fraction": result.busy_s / group_s,
    }


def _load(result: ServingResult, cols: dict[str, np.ndarray], duration: float) -> dict:
    """How the work spread over the instances: requests and busy time of each, and the imbalance
    (the busiest over the mean; 1 is even)."""
    names = list(result.busy_by)
    requests = {n: int(np.sum(cols["instance"] == n)) for n in names}
    front = [n for n in names if requests[n]] or names
    busy = {n: result.busy_by[n] / duration for n in names}
    mean_requests = sum(requests[n] for n in front) / len(front)
    mean_busy = sum(busy[n] for n in front) / len(front)
    return {"requests_by_instance": requests, "busy_fraction_by_instance": busy,
            "request_imbalance": max(requests[n] for n in front) / mean_requests if mean_requests else 1.0,
            "busy_imbalance": max(busy[n] for n in front) / mean_busy if mean_busy else 1.0}


def _prefix_cache(result: ServingResult, cols: dict[str, np.ndarray]) -> dict:
    """Prefix caching: admissions that looked up the cached prefix, hits, prompt tokens not prefilled,
    evictions, and the TTFT of the requests whose first prefill hit against those that missed."""
    pc = result.prefix_cache
    hit = cols["cached_prompt_tokens"] > 0
    return {"enabled": result.cfg.scheduler.prefix_caching, "lookups": pc["lookups"], "hits": pc["hits"],
            "hit_rate": pc["hits"] / pc["lookups"] if pc["lookups"] else 0.0,
            "saved_prefill_tokens": pc["saved_tokens"], "evictions": pc["evictions"],
            "ttft_mean_hit_s": _mean(cols["ttft_s"][hit]), "ttft_mean_miss_s": _mean(cols["ttft_s"][~hit])}


def _fits(result: ServingResult) -> int:
    """The largest batch whose sequences, each at the run's mean prompt plus output, fit in one
    instance's KV cache (a full-length sequence holds whole blocks)."""
    t, block = result.traffic, result.cfg.attention.kv_block_tokens
    mean = float(np.mean(t.prompt_tokens + t.output_tokens))
    return int(result.cache.blocks // -(-round(mean) // block))


def _run_info(result: ServingResult) -> dict:
    s = result.cfg.scheduler
    own = {"instances": result.instances, "scheduler": s.kind.value, "max_batch": s.max_batch,
           "token_budget": s.token_budget, "preemption": s.preemption.value,
           "prefill_instances": s.prefill_instances, "decode_instances": s.decode_instances,
           "tp": result.cfg.parallel.tp, "pp": result.cfg.parallel.pp, "replicas": result.cfg.parallel.dp,
           "router": result.cfg.router.kind.value,
           "traffic": result.traffic.source, "step_costs": "analytic (sum of per-op costs per step)",
           "distinct_steps": result.distinct_steps}
    return run_info(result.cfg, result.chips, own, result.events, result.distinct_ops, result.sim_wall_s)
