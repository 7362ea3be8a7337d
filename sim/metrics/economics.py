"""Energy, power, area and cost of a run: sums over the op records the simulation already has.

Conventions:

* an op record is work on one chip; with tensor parallelism every chip of the group runs the
  same ops, so a run's energy is ``chips x (sum over records of dynamic energy x count +
  static power x total time)``: joules for the whole run on all chips;
* the dynamic energy of an op instance (``ChipEnergy.work``, hwmodels/energy.py) comes from its
  FLOPs on the arrays (in the format they ran) or the vector unit, its HBM bytes as scheduled,
  and the bytes it put on its links (as ``link_bytes_per_chip`` in summary.json); the host
  moves the prompt's token IDs in and the generated ones out (4 bytes each), once per run;
* ``avg_power_W`` is per chip: the run's energy over chips and total time; ``peak_power_W`` is
  the highest op's dynamic energy over its (simulated) duration, plus static power, per chip;
* an op's ``energy_J`` in the ops table is per instance, per chip: its dynamic energy plus static
  power over its duration (so instances x energy add up to the run's energy per chip when no
  two ops overlap, as ``time_by_bound_s`` adds up to ``total_s``);
* area, chip cost and cost per chip-hour are per chip; the run's cost is ``chips x
  usd_per_chip_hour x total_s / 3600``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.area import AreaBreakdown, die_area
from hwmodels.cost import ChipCost, chip_cost, usd_per_chip_hour
from hwmodels.energy import ChipEnergy, EnergyParts, chip_energy
from sim.engine.energy import record_energy
from sim.engine.records import OpRecord
from sim.batch.run import RunResult
from workloads.graph import Phase

TOKEN_ID_BYTES = 4  # int32 token IDs to and from the host
# OpenAI GPT-4 (8K context) list prices, 2023: $0.03 per 1K prompt tokens, $0.06 per 1K generated.
API_2023_USD_PER_M_PROMPT = 30.0
API_2023_USD_PER_M_OUTPUT = 60.0


@dataclass(frozen=True)
class ChipEconomics:
    """What a run's chip is made of and costs (pure and cheap: microseconds per call)."""

    area: AreaBreakdown
    energy: ChipEnergy
    cost: ChipCost


def chip_economics(result: RunResult) -> ChipEconomics:
    chip = result.cfg.hardware
    area = die_area(chip)
    return ChipEconomics(area, chip_energy(chip, area.total_mm2), chip_cost(chip, area))


def op_energies_J(result: RunResult, econ: ChipEconomics | None = None) -> list[float]:
    """Per record: energy of one instance on one chip, dynamic plus static over its duration, J."""
    econ = econ or chip_economics(result)
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


def summarize_economics(result: RunResult) -> dict:
    """The energy, power, area and cost figures of a run, as merged into summary.json."""
    cfg, tl = result.cfg, result.timeline
    chip, w, prices = cfg.hardware, cfg.workload, cfg.cost
    econ = chip_economics(result)
    static_W = econ.energy.static_W
    by_phase = {Phase.prefill: 0.0, Phase.decode: 0.0}
    peak_dyn_W = 0.0
    cache: dict[tuple, tuple[EnergyParts, float]] = {}  # energy of one instance, and its total
    instances: dict[tuple, int] = {}
    for r in tl.records:
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
    parts = {name: sum(getattr(cache[key][0], name) * n for key, n in instances.items())
             for name in ("compute_J", "sram_J", "hbm_J", "link_J", "host_J")}
    host = econ.energy.work(host_bytes=TOKEN_ID_BYTES * w.batch * (w.prompt_tokens + w.decode_tokens))
    parts["host_J"] += host.host_J
    total_s, chips = tl.end_s, result.chips
    static_J = static_W * total_s
    per_chip_J = sum(parts.values()) + static_J
    energy_J = chips * per_chip_J
    avg_W = per_chip_J / total_s
    out_tokens, prompt_tokens = w.batch * (1 + result.decode_tokens), w.batch * w.prompt_tokens
    phase_s = {phase: sum(p.duration_s for p in tl.passes if p.phase is phase) for phase in by_phase}
    chip_usd = econ.cost.total_usd
    if prices.usd_per_chip_hour is not None:
        per_hour, source = prices.usd_per_chip_hour, "cost.usd_per_chip_hour"
    else:
        per_hour = usd_per_chip_hour(chip_usd, avg_W, usd_per_kWh=prices.usd_per_kWh,
                                     amortisation_years=prices.amortisation_years,
                                     utilisation=prices.utilisation, price_markup=prices.price_markup)
        source = (f"derived: cost to make x {prices.price_markup:g} over {prices.amortisation_years:g} years at "
                  f"{prices.utilisation:.0%} use, plus {avg_W:,.0f} W at ${prices.usd_per_kWh:g}/kWh")
    run_usd = chips * per_hour * total_s / 3600
    api_usd = (prompt_tokens * API_2023_USD_PER_M_PROMPT + out_tokens * API_2023_USD_PER_M_OUTPUT) / 1e6
    tokens_per_s = out_tokens / total_s
    return {
        "energy_J": energy_J,
        "avg_power_W": avg_W,
        "peak_power_W": peak_dyn_W + static_W,
        "joules_per_output_token": energy_J / out_tokens,
        "chip_area_mm2": econ.area.total_mm2,
        "chip_cost_usd": chip_usd,
        "usd_per_chip_hour": per_hour,
        "usd_per_million_output_tokens": run_usd / out_tokens * 1e6,
        "output_tokens_per_s_per_usd": tokens_per_s / (chips * chip_usd),
        "output_tokens_per_s_per_W": tokens_per_s / (chips * avg_W),
        "energy": {
            "convention": "energy_J: whole run, all chips; power: per chip",
            "energy_J_per_chip": per_chip_J,
            "avg_power_W_all_chips": chips * avg_W,
            "static_power_W": static_W,
            "board_power_W": chip.board_power_W or None,
            "power_W_by_phase": {phase.value: (by_phase[phase] / phase_s[phase] + static_W if phase_s[phase] else None)
                                 for phase in by_phase},
            "by_component_J_per_chip": {**parts, "static_J": static_J},
        },
        "area": {
            "chip_area_mm2": econ.area.total_mm2,
            "die_area_mm2": econ.area.die_mm2,
            "num_dies": chip.num_dies,
            "process_node": chip.process_node,
            "published_die_area_mm2": chip.published_die_area_mm2 or None,
            "by_part_mm2": econ.area.as_dict(),
        },
        "cost": {
            "chip_cost_usd": chip_usd,
            "silicon_usd": econ.cost.silicon_usd,
            "hbm_usd": econ.cost.hbm_usd,
            "packaging_usd": econ.cost.packaging_usd,
            "test_usd": econ.cost.test_usd,
            "dies_per_wafer": econ.cost.dies_per_wafer,
            "die_yield": econ.cost.die_yield,
            "usd_per_chip_hour_source": source,
            "run_usd": run_usd,
            "api_2023_usd_for_this_run": api_usd,
            "api_2023_usd_per_million_output_tokens": API_2023_USD_PER_M_OUTPUT,
            "api_2023_usd_per_million_prompt_tokens": API_2023_USD_PER_M_PROMPT,
        },
    }


def _key(r: OpRecord) -> tuple:
    """What an op instance's energy depends on: its cost (shared by equal ops within a run) and work."""
    return id(r.cost), r.op.flops, r.op.unit
