"""Energy of a single-batch run's op records: the dynamic part of the shared energy figures
(sim/metrics/shared.py states the conventions every run follows), and the batch's own power figures.

* the dynamic energy of an op instance (``sim.engine.op_energy.record_energy``) comes from its FLOPs
  on the arrays (in the format they ran) or the vector unit, its HBM bytes as scheduled, and the
  bytes it put on its links; the host moves the prompt's token IDs in and the generated ones out
  (4 bytes each), once per run. Records of every pipeline stage are summed: that is the work of
  one chip of a tensor-parallel group per stage, which the shared rule spreads over the chips;
* ``sustained_clock_GHz`` is the clock the matrix kernels ran at under the board power budget,
  averaged over their time (``energy.power_limited`` says whether any ran below the boost clock;
  ``energy.over_budget`` whether the peak power exceeds the board's: the cap slows the arrays'
  clock only, so uncapped runs and HBM traffic whose power alone exceeds the budget can);
* ``peak_power_W`` is the highest op's dynamic energy over its (simulated) duration, plus static
  power, per chip; ``power_W_by_phase`` is a phase's dynamic energy per chip over its passes' time,
  plus static power;
* an op's ``energy_J`` in the ops table is per instance, per chip: its dynamic energy plus static
  power over its duration (so instances x energy add up to the run's energy per chip, host
  transfers aside, when no two ops overlap and there is one stage, as ``time_by_bound_s`` adds up
  to ``total_s``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from sim.batch.run import RunResult
from sim.engine.op_energy import record_energy
from sim.engine.records import OpRecord
from sim.metrics.shared import TOKEN_ID_BYTES, ChipEconomics, chip_economics
from workloads.graph import Phase

PARTS = ("compute_J", "sram_J", "hbm_J", "link_J", "host_J")


@dataclass(frozen=True)
class RecordEnergy:
    """Dynamic energy of a run's records, per chip of a tensor-parallel group, summed over stages."""

    parts_J: dict[str, float]  # by component, host transfers included
    by_phase_J: dict[Phase, float]
    peak_dynamic_W: float  # the highest op's dynamic power


def op_energies_J(result: RunResult, econ: ChipEconomics | None = None) -> list[float]:
    """Per record: energy of one instance on one chip, dynamic plus static over its duration, J."""
    econ = econ or chip_economics(result.cfg)
    static = econ.energy.static_W
    cache: dict[tuple, float] = {}
    out = []
    for r in result.timeline.records:
        key = _key(r)
        dyn = cache.get(key)
        if dyn is None:
            dyn = cache[key] = record_energy(r, econ.energy).total_J
        out.append(dyn + static * r.duration_s)
    return out


def record_energy_totals(result: RunResult, econ: ChipEconomics) -> RecordEnergy:
    """Sum the dynamic energy of every record (each distinct op costed once), plus the host transfers."""
    w = result.cfg.workload
    by_phase = {Phase.prefill: 0.0, Phase.decode: 0.0}
    peak_dyn_W = 0.0
    cache: dict[tuple, tuple] = {}  # energy of one instance (EnergyParts), and its total
    instances: dict[tuple, int] = {}
    for r in result.timeline.records:
        key = _key(r)
        hit = cache.get(key)
        if hit is None:
            e = record_energy(r, econ.energy)
            hit = cache[key] = (e, e.total_J)
            instances[key] = 0
        instances[key] += r.count
        by_phase[r.phase] += hit[1] * r.count
        duration = r.end_s - r.start_s
        if duration > 0 and hit[1] > peak_dyn_W * duration:
            peak_dyn_W = hit[1] / duration
    parts = {name: sum(getattr(cache[key][0], name) * n for key, n in instances.items()) for name in PARTS}
    host = econ.energy.work(host_bytes=TOKEN_ID_BYTES * w.batch * (w.prompt_tokens + w.decode_tokens))
    parts["host_J"] += host.host_J
    return RecordEnergy(parts, by_phase, peak_dyn_W)


def batch_power(result: RunResult, totals: RecordEnergy, static_W: float) -> tuple[dict, dict]:
    """The batch's own power figures: (top-level ``peak_power_W``, ``energy.power_W_by_phase``)."""
    share = result.group_chips / result.chips  # stage-summed records, spread over the chips
    phase_s = {phase: _wall_s([p for p in result.timeline.passes if p.phase is phase]) for phase in totals.by_phase_J}
    by_phase = {phase.value: (totals.by_phase_J[phase] * share / phase_s[phase] + static_W if phase_s[phase] else None)
                for phase in totals.by_phase_J}
    clock, peak, board = sustained_clock(result), totals.peak_dynamic_W + static_W, result.cfg.hardware.board_power_W
    over = bool(board) and peak > board * (1 + 1e-9)  # e.g. uncapped, or HBM traffic alone over the budget
    return ({"peak_power_W": peak, "sustained_clock_GHz": clock["sustained_clock_GHz"]},
            {"power_W_by_phase": by_phase, **clock, "over_budget": over})


def _wall_s(spans: list) -> float:
    """The wall time a phase's passes cover: their summed durations, or, where pipeline micro-batches overlap, the
    union of their spans (summed durations would count the overlap twice and understate the phase's power)."""
    ordered = sorted(spans, key=lambda p: p.start_s)
    if all(a.end_s <= b.start_s for a, b in pairwise(ordered)):
        return sum(p.duration_s for p in spans)
    total, start, end = 0.0, ordered[0].start_s, ordered[0].end_s
    for p in ordered[1:]:
        if p.start_s > end:
            total, start = total + (end - start), p.start_s
        end = max(end, p.end_s)
    return total + (end - start)


def sustained_clock(result: RunResult) -> dict:
    """The clock the matrix kernels ran at under the board power budget (hwmodels/power.py).

    ``sustained_clock_GHz``: the boost clock times the clock ratio averaged over the matrix kernels'
    time; ``min_clock_GHz``: the lowest any kernel ran at; ``power_limited``: some kernel ran below
    the boost clock; ``power_cap``: whether ``power.cap`` was on.
    """
    freq = result.cfg.hardware.freq_GHz
    weighted = busy = 0.0
    lowest = 1.0
    for r in result.timeline.records:
        ratio = r.cost.clock_ratio
        if r.op.unit.value == "matrix" and r.duration_s > 0:
            weighted += ratio * r.total_s
            busy += r.total_s
            lowest = min(lowest, ratio)
    mean = weighted / busy if busy else 1.0
    return {"sustained_clock_GHz": freq * mean, "min_clock_GHz": freq * lowest, "boost_clock_GHz": freq,
            "power_limited": lowest < 1.0, "power_cap": result.cfg.power.cap}


def _key(r: OpRecord) -> tuple:
    """What an op instance's energy depends on: its cost (shared by equal ops within a run) and work."""
    return id(r.cost), r.op.flops, r.op.unit
