"""The figures every run has, single batch or serving, each computed once from what the run did.

A run hands over a :class:`Span` (its wall time, chips and tokens) and a :class:`ChipWork` (what
one chip of a tensor-parallel group did: FLOPs, HBM and link bytes, dynamic energy by component,
summed over pipeline stages or serving instances); these functions turn them into utilisation,
energy, chip area and cost, and prices. The conventions:

* **energy** (one rule for every kind of run): every chip of a tensor-parallel group does the
  same work, so the run's dynamic energy is ``tp x`` the work's (op records of every pipeline
  stage, steps of every serving instance, host transfers and KV moves); every chip draws static
  power over the whole wall span, idle time included. So
  ``energy_J = tp x dynamic_J + chips x static_W x wall_s``; ``avg_power_W`` is per chip
  (``energy_J / chips / wall_s``), ``energy_J_per_chip`` and ``by_component_J_per_chip`` are
  means over the chips;
* **utilisation**: achieved rate over the chip-seconds the work covers divided by the peak
  (matrix FLOP/s at the activation format, HBM bytes/s, link bytes/s per direction);
* **price**: a chip-hour at ``cost.usd_per_chip_hour``, or derived from the chip's cost to make
  and its average power (hwmodels/cost.py); the run costs ``chips x usd_per_chip_hour x wall_s /
  3600``; throughput per dollar and per watt use the tokens over the wall span.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwmodels.area import AreaBreakdown, die_area
from hwmodels.cost import ChipCost, chip_cost, system_cost, usd_per_chip_hour
from hwmodels.energy import ChipEnergy, chip_energy
from hwmodels.kernels import attention_family
from sim.batch.speculative import expected_tokens
from sim.config.schema import RunConfig

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


def chip_economics(cfg: RunConfig) -> ChipEconomics:
    """Area, energy coefficients and cost of the chip of ``cfg``."""
    chip = cfg.hardware
    area = die_area(chip)
    return ChipEconomics(area, chip_energy(chip, area.total_mm2), chip_cost(chip, area))


@dataclass(frozen=True)
class Span:
    """A run's extent: wall seconds, chips, and the tokens it served in that time.

    Attributes:
        wall_s: the span static power, prices and throughput are taken over, s.
        chips: every chip of the run, every replica's.
        group_chips: how many chips each do the work of the records: a tensor-parallel group (a batch run's in
            every replica, its records being one replica's; a serving run's records cover every instance).
        output_tokens: tokens generated in ``wall_s``.
        prompt_tokens: prompt tokens processed in ``wall_s``.
    """

    wall_s: float
    chips: int
    group_chips: int
    output_tokens: float
    prompt_tokens: float


@dataclass(frozen=True)
class ChipWork:
    """What one chip of a tensor-parallel group did, summed over pipeline stages or instances.

    Attributes:
        matrix_flops: FLOPs on the matrix arrays.
        hbm_bytes: HBM bytes read plus written.
        link_bytes: bytes put on chip-to-chip links (None: not tracked by this kind of run).
        chip_s: chip-seconds the sums cover (wall time x stages or instances summed).
        dynamic_J: dynamic energy by component, joules (host transfers included).
    """

    matrix_flops: float
    hbm_bytes: float
    link_bytes: float | None
    chip_s: float
    dynamic_J: dict[str, float]


@dataclass(frozen=True)
class Utilisation:
    """Achieved over peak, as fractions."""

    compute_arrays: float
    hbm_bandwidth: float
    links: float | None = None  # None: the run does not track link bytes

    def as_dict(self) -> dict:
        out = {"compute_arrays": self.compute_arrays, "hbm_bandwidth": self.hbm_bandwidth}
        return out if self.links is None else {**out, "links": self.links}


def utilisation(cfg: RunConfig, work: ChipWork, chips: int) -> Utilisation:
    """Achieved rates of ``work`` over its chip-seconds, divided by the chip's peaks."""
    chip = cfg.hardware
    peak = chip.peak_flops(cfg.precision.activations)
    links = None
    if work.link_bytes is not None:
        links = work.link_bytes / (chip.link_bandwidth_Bps * work.chip_s) if chips > 1 else 0.0
    hbm = work.hbm_bytes / (chip.hbm_bandwidth_Bps * work.chip_s)
    return Utilisation(work.matrix_flops / (peak * work.chip_s), hbm, links)


@dataclass(frozen=True)
class Energy:
    """A run's energy and power (conventions in the module docstring)."""

    energy_J: float  # whole run, all chips
    avg_power_W: float  # per chip
    joules_per_output_token: float
    energy_J_per_chip: float
    static_power_W: float
    board_power_W: float | None
    by_component_J_per_chip: dict[str, float]  # dynamic components and static_J, mean over the chips
    chips: int

    def top(self) -> dict:
        return {"energy_J": self.energy_J, "avg_power_W": self.avg_power_W,
                "joules_per_output_token": self.joules_per_output_token}

    def detail(self) -> dict:
        return {"convention": "energy_J: whole run, all chips; power: per chip",
                "energy_J_per_chip": self.energy_J_per_chip, "avg_power_W_all_chips": self.chips * self.avg_power_W,
                "static_power_W": self.static_power_W, "board_power_W": self.board_power_W,
                "by_component_J_per_chip": self.by_component_J_per_chip}


def energy(cfg: RunConfig, econ: ChipEconomics, work: ChipWork, span: Span) -> Energy:
    """Energy of a run: ``tp x`` the group chip's dynamic energy plus static power of every chip over the span."""
    static_W = econ.energy.static_W
    share = span.group_chips / span.chips  # a group chip's work, spread over every chip (1 without stages)
    parts = {name: joules * share for name, joules in work.dynamic_J.items()}
    parts["static_J"] = static_W * span.wall_s
    per_chip_J = sum(parts.values())
    energy_J = span.chips * per_chip_J
    return Energy(energy_J, per_chip_J / span.wall_s, energy_J / span.output_tokens, per_chip_J, static_W,
                  cfg.hardware.board_power_W or None, parts, span.chips)


@dataclass(frozen=True)
class Pricing:
    """What a chip-hour and the run cost, and the token rates per dollar and per watt."""

    chip_cost_usd: float
    usd_per_chip_hour: float
    source: str  # where usd_per_chip_hour comes from
    run_usd: float
    span: Span
    avg_power_W: float

    def top(self) -> dict:
        s = self.span
        tokens_per_s = s.output_tokens / s.wall_s
        return {
            "chip_cost_usd": self.chip_cost_usd,
            "usd_per_chip_hour": self.usd_per_chip_hour,
            "usd_per_million_output_tokens": self.run_usd / s.output_tokens * 1e6,
            "usd_per_million_tokens": self.run_usd / (s.output_tokens + s.prompt_tokens) * 1e6,
            "output_tokens_per_s_per_usd": tokens_per_s / (s.chips * self.chip_cost_usd),
            "output_tokens_per_s_per_W": tokens_per_s / (s.chips * self.avg_power_W),
        }

    def api_detail(self) -> dict:
        s = self.span
        return {
            "usd_per_chip_hour_source": self.source,
            "run_usd": self.run_usd,
            "api_2023_usd_for_this_run": (s.prompt_tokens * API_2023_USD_PER_M_PROMPT
                                          + s.output_tokens * API_2023_USD_PER_M_OUTPUT) / 1e6,
            "api_2023_usd_per_million_output_tokens": API_2023_USD_PER_M_OUTPUT,
            "api_2023_usd_per_million_prompt_tokens": API_2023_USD_PER_M_PROMPT,
        }


def pricing(cfg: RunConfig, econ: ChipEconomics, avg_power_W: float, span: Span) -> Pricing:
    """The chip-hour price (given, or derived from cost to make and ``avg_power_W``) and the run's cost."""
    prices, chip_usd = cfg.cost, econ.cost.total_usd
    if prices.usd_per_chip_hour is not None:
        per_hour, source = prices.usd_per_chip_hour, "cost.usd_per_chip_hour"
    else:
        per_hour = usd_per_chip_hour(chip_usd, avg_power_W, usd_per_kWh=prices.usd_per_kWh,
                                     amortisation_years=prices.amortisation_years, utilisation=prices.utilisation,
                                     price_markup=prices.price_markup)
        source = (f"derived: cost to make x {prices.price_markup:g} over {prices.amortisation_years:g} years at "
                  f"{prices.utilisation:.0%} use, plus {avg_power_W:,.0f} W at ${prices.usd_per_kWh:g}/kWh")
    return Pricing(chip_usd, per_hour, source, span.chips * per_hour * span.wall_s / 3600, span, avg_power_W)


@dataclass(frozen=True)
class ChipFacts:
    """The chip's area and cost to make (per chip)."""

    econ: ChipEconomics
    cfg: RunConfig = field(repr=False)

    def area(self) -> dict:
        chip, area = self.cfg.hardware, self.econ.area
        return {"chip_area_mm2": area.total_mm2, "die_area_mm2": area.die_mm2, "num_dies": chip.num_dies,
                "process_node": chip.process_node, "published_die_area_mm2": chip.published_die_area_mm2 or None,
                "hbm_stacks": chip.hbm_stacks, "hbm_stacks_note": getattr(chip, "hbm_stacks_note", "") or None,
                "by_part_mm2": area.as_dict()}

    def cost(self) -> dict:
        c, cfg = self.econ.cost, self.cfg
        out = cfg.system.scale_out
        system = system_cost(c.total_usd, cfg.system.chips_per_node, cfg.hardware.topology.value == "switch",
                             cfg.hardware.link_bandwidth_GBps, None if out is None else out.nic_bandwidth_GBps)
        return {"chip_cost_usd": c.total_usd, "silicon_usd": c.silicon_usd, "hbm_usd": c.hbm_usd,
                "packaging_usd": c.packaging_usd, "test_usd": c.test_usd, "dies_per_wafer": c.dies_per_wafer,
                "die_yield": c.die_yield, "system_usd_per_chip": system.total_usd,
                "host_usd_per_chip": system.host_usd, "scale_up_usd_per_chip": system.scale_up_usd,
                "scale_out_usd_per_chip": system.scale_out_usd}


def run_info(cfg: RunConfig, chips: int, own: dict, events: int, distinct_ops: int, sim_wall_s: float) -> dict:
    """The ``run`` node of summary.json: what ran (chip, model, formats), the kind's ``own`` entries, and
    what the simulation cost."""
    p, spec = cfg.precision, cfg.speculative
    info = {"hardware": cfg.hardware.name, "model": cfg.model.name, "chips": chips, **own,
            "weights": p.weights.value, "activations": p.activations.value, "kv_cache": p.kv_cache.value,
            "attention": _attention_name(cfg), "runtime": cfg.runtime.name,
            "events": events, "distinct_ops": distinct_ops, "sim_wall_s": sim_wall_s}
    if spec.draft_model:  # its draft's weights, KV and passes are in the run's figures: say whose they are
        info["speculative"] = {"draft_model": spec.draft_model, "k": spec.k, "acceptance": spec.acceptance,
                               "expected_tokens_per_step": expected_tokens(spec.k, spec.acceptance)}
    return info


def _attention_name(cfg: RunConfig) -> str:
    """The attention kernel that ran: the published family ``fused`` resolves to on this chip, else its name."""
    kernel = cfg.attention_kernel().value
    return (attention_family(kernel, cfg.hardware.architecture) or kernel) if kernel != "unfused" else kernel
