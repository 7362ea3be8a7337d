"""From a run's records to the numbers people read: latencies, breakdowns, utilisation.

Every figure is a sum over op records, so each traces back to ops, resources and formulas:

* ``ttft_s``: end of the prefill pass (it produces the first token of every sequence);
* ``tpot_s``: ``(total_s - ttft_s) / tokens after the first`` (``decode_tokens - 1``, or the expected
  yield of the speculative steps); null with one token;
* ``output_tokens_per_s``: ``batch * (1 + tokens after the first) / total_s`` times ``parallel.dp``
  replicas (every other figure is per replica);
* ``time_by_bound_s``: each chip's wall time split into exclusive intervals (compute, memory,
  interconnect, overhead, idle) by the rule stated in sim/engine/bounds.py; it adds up to ``total_s``;
* utilisation: achieved rate over the whole run divided by the peak (matrix FLOP/s at the
  activation format, HBM bytes/s, link bytes/s per direction).
* energy, power, area and cost (``energy_J``, ``avg_power_W``, ``chip_cost_usd``, ...): sums over
  the same records, in sim/economics.py, which states their conventions.
"""

from __future__ import annotations

from collections import defaultdict


from sim.engine.bounds import time_by_bound
from sim.engine.costing import BOUNDS
from sim.metrics.economics import op_energies_J, summarize_economics
from sim.batch.run import RunResult
from workloads.graph import Phase
from workloads.ops import Role, Unit

GB = 1e9


def summarize(result: RunResult) -> dict:
    """The run's headline numbers, as written to summary.json."""
    cfg, tl = result.cfg, result.timeline
    w, chip = cfg.workload, cfg.hardware
    total = tl.end_s
    ttft = max(p.end_s for p in tl.passes if p.phase is Phase.prefill)  # target and draft prefills
    produced = result.decode_tokens  # per sequence, after the first token
    by_bound = time_by_bound(tl, result.stages)
    matrix_flops = vector_flops = hbm_bytes = wire_bytes = 0.0
    for r in tl.records:
        if r.op.unit is Unit.matrix:
            matrix_flops += r.op.flops * r.count
        else:
            vector_flops += r.op.flops * r.count
        hbm_bytes += r.cost.hbm_bytes * r.count
        wire_bytes += r.cost.link_bytes * r.count
    host = sum(p.host_s for p in tl.passes)
    stages = result.stages  # records cover every pipeline stage: per-chip figures are their mean
    if stages > 1:
        matrix_flops, vector_flops, hbm_bytes, wire_bytes = (x / stages for x in
                                                             (matrix_flops, vector_flops, hbm_bytes, wire_bytes))
    peak = chip.peak_flops(cfg.precision.activations)
    mem = result.memory
    extra = {}
    if stages > 1:
        extra["pipeline"] = {
            "stages": stages,
            "microbatches": cfg.parallel.microbatches or stages,
            "stage_idle_fraction": [1 - busy / total for busy in tl.stage_busy_s],
        }
    return {**extra,
        "ttft_s": ttft,
        "tpot_s": (total - ttft) / produced if produced else None,
        "total_s": total,
        "output_tokens_per_s": w.batch * (1 + produced) / total * cfg.parallel.dp,
        "prefill_tokens_per_s": w.batch * w.prompt_tokens / ttft * cfg.parallel.dp,
        "time_by_bound_s": by_bound,
        "host_overhead_s": host,
        "flops_per_chip": matrix_flops + vector_flops,
        "matrix_flops_per_chip": matrix_flops,
        "hbm_bytes_per_chip": hbm_bytes,
        "link_bytes_per_chip": wire_bytes,
        "utilisation": {
            "compute_arrays": matrix_flops / (peak * total),
            "hbm_bandwidth": hbm_bytes / (chip.hbm_bandwidth_Bps * total),
            "links": wire_bytes / (chip.link_bandwidth_Bps * total) if result.chips > 1 else 0.0,
        },
        "busy_fraction": {name: busy / total for name, busy in tl.busy_s.items()},
        "hbm_GB_per_chip": {
            "weights": mem.weights / GB,
            "kv_cache": mem.kv_cache / GB,
            "activations": mem.activations / GB,
            "used": mem.used / GB,
            "capacity": mem.capacity / GB,
        },
        "peaks": {
            "matrix_TFLOPS": peak / 1e12,
            "matrix_dtype": _dtype_name(chip.matmul_dtype(cfg.precision.activations)),
            "hbm_GBps": chip.hbm_bandwidth_GBps,
            "link_GBps_per_direction": chip.link_bandwidth_GBps,
            "ridge_flop_per_byte": peak / chip.hbm_bandwidth_Bps,
        },
        "run": {
            "hardware": chip.name,
            "model": cfg.model.name,
            "chips": result.chips,
            "replicas": cfg.parallel.dp,
            "batch": w.batch,
            "prompt_tokens": w.prompt_tokens,
            "decode_tokens": w.decode_tokens,
            "fidelity": cfg.fidelity.value,
            "weights": cfg.precision.weights.value,
            "activations": cfg.precision.activations.value,
            "kv_cache": cfg.precision.kv_cache.value,
            "attention": cfg.attention.kernel.value,
            "runtime": cfg.runtime.name,
            "passes": len(tl.passes),
            "distinct_ops": result.distinct_ops,
            "events": tl.events,
            "sim_wall_s": result.sim_wall_s,
        },
        **summarize_economics(result),  # energy, power, area and cost (sim/economics.py)
    }


def breakdown_by_kind(result: RunResult) -> list[dict]:
    """One row per phase and operator type: time, share of the phase, dominant bound, intensity,
    achieved rates. Prefill and decode are apart because they sit on opposite sides of the ridge."""
    acc: dict[tuple[str, str], dict] = defaultdict(lambda: {"count": 0, "time_s": 0.0, "flops": 0.0, "bytes": 0.0,
                                                            "bounds": dict.fromkeys(BOUNDS, 0.0)})
    for r in result.timeline.records:
        row = acc[(r.phase.value, r.op.kind.value)]
        row["count"] += r.count
        row["time_s"] += r.total_s
        row["flops"] += r.op.flops * r.count
        row["bytes"] += r.cost.hbm_bytes * r.count
        row["bounds"][r.cost.bound.value] += r.total_s
    phase_time: dict[str, float] = defaultdict(float)
    for (phase, _), row in acc.items():
        phase_time[phase] += row["time_s"]
    rows = []
    for (phase, kind), row in acc.items():
        t = row["time_s"]
        rows.append({
            "phase": phase,
            "kind": kind,
            "count": row["count"],
            "time_s": t,
            "share": t / phase_time[phase] if phase_time[phase] else 0.0,
            "bound": max(row["bounds"].items(), key=lambda kv: kv[1])[0],
            "intensity_flop_per_byte": row["flops"] / row["bytes"] if row["bytes"] else float("inf"),
            "achieved_flops_per_s": row["flops"] / t if t else 0.0,
            "achieved_bytes_per_s": row["bytes"] / t if t else 0.0,
        })
    order = {Phase.prefill.value: 0, Phase.decode.value: 1}
    rows.sort(key=lambda row: (order[row["phase"]], -row["time_s"]))
    return rows


def ops_columns(result: RunResult) -> dict[str, list]:
    """The per-op table: one row per op of each pass (repeated layers as one row with a count)."""
    cols: dict[str, list] = defaultdict(list)
    for r in result.timeline.records:
        op, c = r.op, r.cost
        d = r.duration_s
        cols["phase"].append(r.phase.value)
        cols["step"].append(r.step)
        cols["segment"].append(r.segment)
        cols["op"].append(op.name)
        cols["kind"].append(op.kind.value)
        cols["unit"].append(op.unit.value)
        cols["count"].append(r.count)
        cols["start_s"].append(r.start_s)
        cols["end_s"].append(r.end_s)
        cols["duration_s"].append(d)
        cols["total_s"].append(d * r.count)
        cols["bound"].append(c.bound.value)
        cols["compute_s"].append(c.compute_s)
        cols["memory_s"].append(c.memory_s)
        cols["link_s"].append(c.link_s)
        cols["overhead_s"].append(c.overhead_s)
        cols["flops"].append(op.flops)
        cols["hbm_bytes"].append(c.hbm_bytes)
        cols["compulsory_bytes"].append(op.hbm_bytes)
        cols["weight_bytes"].append(op.bytes_by_role(Role.weight))
        cols["activation_bytes"].append(op.bytes_by_role(Role.activation))
        cols["kv_bytes"].append(op.bytes_by_role(Role.kv))
        cols["comm_bytes"].append(op.comm_bytes)
        cols["m"].append(op.m)
        cols["n"].append(op.n)
        cols["k"].append(op.k)
        cols["groups"].append(op.groups)
        cols["dtype"].append(_dtype_name(c.dtype_run) if op.unit is Unit.matrix else op.dtype.value)
        cols["efficiency"].append(c.efficiency)
        for res in result.timeline.resources:  # full-rate seconds of work on each declared resource
            cols[f"{res.name}_work_s"].append(res.work(op, c))
        cols["intensity_flop_per_byte"].append(op.flops / c.hbm_bytes if c.hbm_bytes else float("inf"))
        cols["achieved_flops_per_s"].append(op.flops / d if d else 0.0)
        cols["achieved_bytes_per_s"].append(c.hbm_bytes / d if d else 0.0)
    cols["energy_J"] = op_energies_J(result)  # per instance, per chip (sim/economics.py)
    return dict(cols)



def _dtype_name(dtype) -> str:
    """A matmul's format as run; 'vector' when no array format fits and the vector unit does it."""
    return dtype.value if dtype is not None else "vector"
