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

Energy and cost use the energy/cost models (hwmodels/energy.py, cost.py, as sim/economics.py
does): each step's dynamic energy from its ops, host transfers (token IDs, KV swaps), and static
power over the whole span, idle time included; a chip-hour at ``cost.usd_per_chip_hour`` or
derived from the chip's cost and average power. ``energy_J`` is for all chips, power per chip.
"""

from __future__ import annotations

import numpy as np

from hwmodels.area import die_area
from hwmodels.cost import chip_cost, usd_per_chip_hour
from hwmodels.energy import chip_energy
from sim.metrics.economics import API_2023_USD_PER_M_OUTPUT, API_2023_USD_PER_M_PROMPT, TOKEN_ID_BYTES
from sim.serving.run import ServingResult

OVERLOAD_GROWTH = 0.05  # s of queueing delay per s of arrivals above which the server is overloaded
PERCENTILES = (50, 90, 99)
LATENCIES = ("queueing_delay_s", "ttft_s", "tpot_s", "e2e_s")


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


def summarize_serving(result: ServingResult, cols: dict[str, np.ndarray] | None = None) -> dict:
    """The run's headline numbers, as written to summary.json."""
    cfg = result.cfg
    cols = request_columns(result) if cols is None else cols
    n = len(cols["request_id"])
    completed = int(np.sum(~np.isnan(cols["finish_s"])))
    first = float(np.min(cols["arrival_s"]))
    duration = max(result.end_s - first, 1e-12)
    out_tokens, prompt_tokens = int(cols["output_tokens"].sum()), int(cols["prompt_tokens"].sum())
    good = int(cols["meets_slo"].sum())
    growth = _growth(cols["arrival_s"], cols["queueing_delay_s"])
    summary = {
        "completed_requests": completed,
        "requests": n,
        **{f"{name[:-2]}_p{p}_s": _pct(cols[name], p) for name in LATENCIES for p in PERCENTILES},
        **{f"{name[:-2]}_mean_s": _mean(cols[name]) for name in LATENCIES},
        "output_tokens_per_s": out_tokens / duration,
        "prompt_tokens_per_s": prompt_tokens / duration,
        "requests_per_s": completed / duration,
        "goodput_requests_per_s": good / duration,
        "slo_attainment": good / n,
        "slo": {"ttft_s": cfg.slo.ttft_s, "tpot_s": cfg.slo.tpot_s},
        "preemptions": result.preemptions,
        "overloaded": bool(growth > OVERLOAD_GROWTH),
        "queue_growth_s_per_s": growth,
        "duration_s": duration,
        "output_tokens": out_tokens,
        "prompt_tokens": prompt_tokens,
        "littles_law": _littles_law(result, cols),
        **_steps(result, duration),
        **_economics(result, duration, out_tokens, prompt_tokens),
        "run": _run_info(result),
    }
    return summary


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


def _littles_law(result: ServingResult, cols: dict[str, np.ndarray]) -> dict:
    horizon = result.end_s
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
    peak = result.cfg.hardware.peak_flops(result.cfg.precision.activations)
    group_s = duration * result.instances  # time of all instances together
    return {
        "steps": len(start),
        "batch_size_mean": float(np.dot(batch, dt) / busy),
        "batch_size_max": int(batch.max()) if batch.size else 0,
        "kv_cache_use_mean": float(np.dot(kv, dt) / busy),
        "kv_cache_use_max": float(kv.max()) if kv.size else 0.0,
        "kv_cache": {"per_instance": True, "blocks": result.cache.blocks,
                     "block_tokens": result.cfg.attention.kv_block_tokens,
                     "GB_per_chip": result.cache.kv / 1e9, "weights_GB_per_chip": result.cache.weights / 1e9,
                     "activations_GB_per_chip": result.cache.activations / 1e9,
                     "hbm_GB_per_chip": result.cache.hbm / 1e9},
        "swapped_GB_per_chip": result.swapped_bytes / 1e9,
        "instances": result.instances,
        "kv_moves": {"count": result.moves, "GB_per_chip": result.moved_bytes / 1e9,
                     "mean_s": result.move_s / result.moves if result.moves else None},
        "busy_fraction": result.busy_s / group_s,
        "utilisation": {"compute_arrays": result.matrix_flops / (peak * group_s),
                        "hbm_bandwidth": result.hbm_bytes / (result.cfg.hardware.hbm_bandwidth_Bps * group_s)},
    }


def _economics(result: ServingResult, duration: float, out_tokens: int, prompt_tokens: int) -> dict:
    cfg, chip, prices, chips = result.cfg, result.cfg.hardware, result.cfg.cost, result.chips
    area = die_area(chip)
    energy, cost = chip_energy(chip, area.total_mm2), chip_cost(chip, area)
    host = energy.work(host_bytes=TOKEN_ID_BYTES * (prompt_tokens + out_tokens) + result.swapped_bytes,
                       link_bytes=result.moved_bytes).total_J
    static_J = energy.static_W * duration
    # Every chip of a tensor-parallel group does the same work; all chips draw static power.
    energy_J = cfg.parallel.tp * (result.dynamic_J + host) + chips * static_J
    avg_W = energy_J / chips / duration
    chip_usd = cost.total_usd
    if prices.usd_per_chip_hour is not None:
        per_hour, source = prices.usd_per_chip_hour, "cost.usd_per_chip_hour"
    else:
        per_hour = usd_per_chip_hour(chip_usd, avg_W, usd_per_kWh=prices.usd_per_kWh,
                                     amortisation_years=prices.amortisation_years, utilisation=prices.utilisation,
                                     price_markup=prices.price_markup)
        source = (f"derived: cost to make x {prices.price_markup:g} over {prices.amortisation_years:g} years at "
                  f"{prices.utilisation:.0%} use, plus {avg_W:,.0f} W at ${prices.usd_per_kWh:g}/kWh")
    run_usd = chips * per_hour * duration / 3600
    return {
        "energy_J": energy_J,
        "avg_power_W": avg_W,
        "joules_per_output_token": energy_J / out_tokens,
        "chip_cost_usd": chip_usd,
        "usd_per_chip_hour": per_hour,
        "usd_per_million_output_tokens": run_usd / out_tokens * 1e6,
        "usd_per_million_tokens": run_usd / (out_tokens + prompt_tokens) * 1e6,
        "cost": {
            "usd_per_chip_hour_source": source,
            "run_usd": run_usd,
            "api_2023_usd_for_this_run": (prompt_tokens * API_2023_USD_PER_M_PROMPT
                                          + out_tokens * API_2023_USD_PER_M_OUTPUT) / 1e6,
            "api_2023_usd_per_million_output_tokens": API_2023_USD_PER_M_OUTPUT,
            "api_2023_usd_per_million_prompt_tokens": API_2023_USD_PER_M_PROMPT,
        },
        "energy": {"convention": "energy_J: whole run, all chips; power: per chip",
                   "steps_dynamic_J_per_group_chip": result.dynamic_J, "host_and_link_J_per_group_chip": host,
                   "static_J_per_chip": static_J, "static_power_W": energy.static_W},
    }


def _run_info(result: ServingResult) -> dict:
    cfg, s = result.cfg, result.cfg.scheduler
    return {
        "hardware": cfg.hardware.name,
        "model": cfg.model.name,
        "chips": result.chips,
        "instances": result.instances,
        "scheduler": s.kind.value,
        "max_batch": s.max_batch,
        "token_budget": s.token_budget,
        "preemption": s.preemption.value,
        "prefill_instances": s.prefill_instances,
        "decode_instances": s.decode_instances,
        "traffic": result.traffic.source,
        "weights": cfg.precision.weights.value,
        "activations": cfg.precision.activations.value,
        "kv_cache": cfg.precision.kv_cache.value,
        "attention": cfg.attention.kernel.value,
        "runtime": cfg.runtime.name,
        "step_costs": "analytic (sum of per-op costs per step)",
        "events": result.events,
        "distinct_steps": result.distinct_steps,
        "distinct_ops": result.distinct_ops,
        "sim_wall_s": result.sim_wall_s,
    }
