"""From a run's records to the numbers people read: latencies, breakdowns, utilisation.

Every figure is a sum over op records, so each traces back to ops, resources and formulas:

* ``ttft_s``: end of the prefill pass (it produces the first token of every sequence);
* ``tpot_s``: ``(total_s - ttft_s) / tokens after the first`` (``decode_tokens - 1``, or the expected
  yield of the speculative steps); null with one token;
* ``output_tokens_per_s``: ``batch * (1 + tokens after the first) / total_s`` times ``parallel.dp``
  replicas; the energy, the chips (``run.chips``) and the run's dollars cover every replica too, as a
  serving run's do, so per-token and per-chip figures are those of one replica;
* ``time_by_bound_s``: each chip's wall time split into exclusive intervals (compute, memory,
  interconnect, overhead, idle) by the rule stated in sim/engine/bounds.py; it adds up to ``total_s``;
* ``time_by_tier_s``, ``time_by_part_s`` (mixture-of-experts models and runs over the scale-out
  network): sim/metrics/tiers.py;
* utilisation, energy, power, area and cost (``energy_J``, ``avg_power_W``, ``chip_cost_usd``, ...):
  the parts every run shares, computed by sim/metrics/shared.py (which states their conventions)
  from the same records (their energy: sim/metrics/economics.py).
"""

from __future__ import annotations

from collections import defaultdict

from sim.batch.run import RunResult
from sim.config.schema import KvOffload, WorkloadKind
from sim.engine.bounds import bound_label, fold_tiers, time_by_bound_and_tier
from sim.engine.costing import BOUNDS
from sim.engine.resources import utilisation as resource_utilisation
from sim.metrics.economics import batch_power, op_energies_J, record_energy_totals
from sim.metrics.run_summary import Summary
from sim.metrics.shared import ChipFacts, ChipWork, Span, chip_economics, energy, pricing, run_info, utilisation
from sim.metrics.tiers import network_figures
from workloads.graph import Phase
from workloads.ops import Role, Unit

GB = 1e9


def summarize(result: RunResult) -> dict:
    """The run's headline numbers, as written to summary.json."""
    return batch_summary(result).as_dict()


def batch_summary(result: RunResult) -> Summary:
    """The typed summary of a single-batch run (shared parts from sim/metrics/shared.py)."""
    cfg, tl, w = result.cfg, result.timeline, result.cfg.workload
    econ = chip_economics(cfg)
    totals = record_energy_totals(result, econ)
    work = chip_work(result, totals.parts_J)
    dp = cfg.parallel.dp  # replicas: the span covers them all (energy, chips, dollars), as a serving run's does
    span = Span(tl.end_s, result.chips * dp, result.group_chips * dp, w.batch * (1 + result.decode_tokens) * dp,
                w.batch * w.prompt_tokens * dp)
    run_energy = energy(cfg, econ, work, span)
    peak, by_phase = batch_power(result, totals, econ.energy.static_W)
    return Summary(WorkloadKind.single_batch, _figures(result), utilisation(cfg, work, result.chips), run_energy,
                   pricing(cfg, econ, run_energy.avg_power_W, span), ChipFacts(econ, cfg), _run(result),
                   energy_extra=by_phase, top_extra=peak)


def chip_work(result: RunResult, dynamic_J: dict[str, float]) -> ChipWork:
    """The records' work, summed over pipeline stages (one chip of each stage's tensor-parallel group)."""
    matrix, _, hbm, wire = _work_totals(result)
    return ChipWork(matrix, hbm, wire, result.timeline.end_s * result.stages, dynamic_J)


def time_by_bound(result: RunResult) -> dict[str, float]:
    """Each chip's wall time split into exclusive parts by bound, idle included (sim/engine/bounds.py)."""
    return fold_tiers(time_by_bound_and_tier(result.timeline, result.stages))


def utilisation_by_resource(result: RunResult) -> dict[str, float]:
    """Per declared resource that has a peak rate (sim/engine/resources.py): achieved over peak, per chip."""
    cfg = result.cfg
    return resource_utilisation(result.timeline, cfg.hardware, cfg.precision.activations, result.stages)


def busy_fraction(result: RunResult) -> dict[str, float]:
    """Per resource: the fraction of the run with work in service."""
    tl = result.timeline
    return {name: busy / tl.end_s for name, busy in tl.busy_s.items()}


def _work_totals(result: RunResult) -> tuple[float, float, float, float]:
    """Matrix FLOPs, vector FLOPs, HBM bytes and link bytes of every record (all stages)."""
    matrix_flops = vector_flops = hbm_bytes = wire_bytes = 0.0
    for r in result.timeline.records:
        if r.op.unit is Unit.matrix:
            matrix_flops += r.op.flops * r.count
        else:
            vector_flops += r.op.flops * r.count
        hbm_bytes += r.cost.hbm_bytes * r.count
        wire_bytes += r.cost.link_bytes * r.count
    return matrix_flops, vector_flops, hbm_bytes, wire_bytes


def _host_s(result: RunResult) -> float:
    return sum(p.host_s for p in result.timeline.passes)


def _figures(result: RunResult) -> dict:
    """The batch's own headline figures (per chip or per replica; throughput times ``parallel.dp``)."""
    cfg, tl, w = result.cfg, result.timeline, result.cfg.workload
    total, produced, dp = tl.end_s, result.decode_tokens, cfg.parallel.dp
    ttft = max(p.end_s for p in tl.passes if p.phase is Phase.prefill)  # target and draft prefills
    stages = result.stages  # records cover every pipeline stage: per-chip figures are their mean
    matrix, vector, hbm, wire = (x / stages if stages > 1 else x for x in _work_totals(result))
    parts = time_by_bound_and_tier(tl, stages)
    extra = network_figures(tl, stages, parts, cfg.model.is_moe)
    if stages > 1:
        extra["pipeline"] = {"stages": stages, "microbatches": cfg.parallel.microbatches or stages,
                             "stage_idle_fraction": [1 - busy / total for busy in tl.stage_busy_s]}
    extra.update(_long_context(result))
    return {**extra,
            "ttft_s": ttft,
            "tpot_s": (total - ttft) / produced if produced else None,
            "total_s": total,
            "output_tokens_per_s": w.batch * (1 + produced) / total * dp,
            "prefill_tokens_per_s": w.batch * w.prompt_tokens / ttft * dp,
            "time_by_bound_s": fold_tiers(parts),
            "host_overhead_s": _host_s(result),
            "flops_per_chip": matrix + vector,
            "matrix_flops_per_chip": matrix,
            "hbm_bytes_per_chip": hbm,
            "link_bytes_per_chip": wire,
            "busy_fraction": busy_fraction(result),
            "utilisation_by_resource": utilisation_by_resource(result),
            "hbm_GB_per_chip": _memory(result),
            "peaks": _peaks(result)}


def _long_context(result: RunResult) -> dict:
    """The KV cache's host tier (``memory.kv_offload=host``) and the context-parallel ranks, when used."""
    cfg, out = result.cfg, {}
    if cfg.memory.kv_offload is KvOffload.host:
        bandwidth = cfg.memory.host_bandwidth_GBps or cfg.hardware.host_link_GBps
        out["kv_offload"] = {"kv_on_host_GB": result.memory.kv_on_host / GB, "host_bandwidth_GBps": bandwidth,
                             "host_capacity_GB": cfg.memory.host_capacity_GB,
                             "host_busy_s": result.timeline.busy_s.get("host", 0.0)}
    if cfg.parallel.cp > 1:
        ring = [r for r in result.timeline.records if r.op.name.startswith("cp_ring_send")]
        out["context_parallel"] = {"cp": cfg.parallel.cp, "ring_sends": sum(r.count for r in ring),
                                   "ring_bytes_per_chip": sum(r.op.comm_bytes * r.count for r in ring)}
    return out


def _memory(result: RunResult) -> dict[str, float]:
    mem = result.memory
    kv = mem.kv_cache - mem.kv_on_host if mem.kv_on_host else mem.kv_cache  # HBM's share (the host's: kv_offload)
    return {"weights": mem.weights / GB, "kv_cache": kv / GB, "activations": mem.activations / GB,
            "used": mem.used / GB, "capacity": mem.capacity / GB}


def _peaks(result: RunResult) -> dict:
    cfg, chip = result.cfg, result.cfg.hardware
    peak = chip.peak_flops(cfg.precision.activations)
    return {"matrix_TFLOPS": peak / 1e12, "matrix_dtype": _dtype_name(chip.matmul_dtype(cfg.precision.activations)),
            "hbm_GBps": chip.hbm_bandwidth_GBps, "link_GBps_per_direction": chip.link_bandwidth_GBps,
            "ridge_flop_per_byte": peak / chip.hbm_bandwidth_Bps}


def _run(result: RunResult) -> dict:
    cfg, tl, w = result.cfg, result.timeline, result.cfg.workload
    decode: dict[int, int] = {}  # decode step -> the steps its passes stand for (micro-batches, drafts: one step)
    for p in tl.passes:
        if p.phase is Phase.decode:
            decode[p.step] = max(decode.get(p.step, 0), p.steps)
    own = {"replicas": cfg.parallel.dp, "batch": w.batch, "prompt_tokens": w.prompt_tokens,
           "decode_tokens": w.decode_tokens, "fidelity": cfg.fidelity.value,
           "passes": sum(p.steps for p in tl.passes),
           "prefill_passes": sum(p.steps for p in tl.passes if p.phase is Phase.prefill),
           "decode_steps": sum(decode.values())}
    return run_info(cfg, result.chips * cfg.parallel.dp, own, tl.events, result.distinct_ops, result.sim_wall_s)


def breakdown_by_kind(result: RunResult) -> list[dict]:
    """One row per phase and operator type: time, share of the phase, dominant bound, intensity,
    achieved rates. Prefill and decode are apart because they sit on opposite sides of the ridge."""
    acc: dict[tuple[str, str], dict] = defaultdict(lambda: {"count": 0, "time_s": 0.0, "flops": 0.0, "bytes": 0.0,
                                                            "bounds": defaultdict(float, dict.fromkeys(BOUNDS, 0.0))})
    for r in result.timeline.records:
        row = acc[(r.phase.value, r.op.kind.value)]
        row["count"] += r.count
        row["time_s"] += r.total_s
        row["flops"] += r.op.flops * r.count
        row["bytes"] += r.cost.hbm_bytes * r.count
        row["bounds"][bound_label(r)] += r.total_s
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
    speculative = bool(result.cfg.speculative.draft_model)  # its draft's passes and the target's share a step
    for r in result.timeline.records:
        op, c = r.op, r.cost
        d = r.duration_s
        cols["phase"].append(r.phase.value)
        cols["step"].append(r.step)
        cols["segment"].append(r.segment)
        if speculative:
            cols["model"].append(r.model)
        cols["op"].append(op.name)
        cols["kind"].append(op.kind.value)
        cols["unit"].append(op.unit.value)
        cols["count"].append(r.count)
        cols["steps"].append(r.steps)  # decode steps the row's mean step stands for (in count)
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
    cols["energy_J"] = op_energies_J(result)  # per instance, per chip (sim/metrics/economics.py)
    return dict(cols)



def _dtype_name(dtype) -> str:
    """A matmul's format as run; 'vector' when no array format fits and the vector unit does it."""
    return dtype.value if dtype is not None else "vector"
