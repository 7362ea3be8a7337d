"""What a chip costs to make, and what an hour of it costs to own and run.

Chip cost, USD:

* dies per 300 mm wafer: ``pi r^2 / A - pi d / sqrt(2 A)`` (wafer area over die area, less the
  partial dies along the edge; Hennessy & Patterson, "Computer Architecture", ch. 1);
* yield, negative binomial: ``Y = (1 + A D0 / alpha)^-alpha`` with the node's defect density D0
  and clustering ``alpha = 3``; a bigger die or a dirtier process yields fewer good dies;
* silicon: ``dies x wafer price / (dies per wafer x Y)`` (each chiplet yields on its own);
* HBM: ``$/GB x ((1 - HBM_SPEED_PREMIUM) x capacity_GB + HBM_SPEED_PREMIUM x bandwidth_GBps x
  max_GB / max_GBps per stack)``: a full top-speed-bin stack costs its GB at the generation's $/GB;
  part of that price follows the bandwidth the stacks deliver (slower bins sell for less), so
  bandwidth costs money even where it needs no more stacks, and more stacks never cost less;
* packaging: a 2.5D silicon interposer under the dies and stacks
  (``INTERPOSER_USD_PER_MM2 x 1.3 x (dies + stacks x HBM_FOOTPRINT_MM2)``) plus substrate and
  assembly; test: ``TEST_SHARE`` of all of the above.

Harvested dies (cores disabled for yield) yield better than the model says: it counts every
defect as fatal.

Cost per chip-hour: ``chip cost x price_markup / (years x 8766 h x utilisation)`` plus the
chip's average power at the electricity price.

System cost per chip (``system_cost``): the chip, its share of the host node (CPUs, DRAM,
storage, chassis, power supplies: ``HOST_NODE_USD / chips_per_node``), of the scale-up fabric
(switch silicon behind a switched fabric, priced per GB/s of the chip's links; cables or board
traces on a direct mesh, ring or torus) and, where the system has one, of the scale-out network
(NIC, switch ports, optics: a fixed part and a part per GB/s of the NIC). Every price is an
ESTIMATE with its range beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwmodels.process import hbm_generation, process_node

if TYPE_CHECKING:
    from hwmodels.area import AreaBreakdown
    from hwmodels.chip import HardwareConfig

WAFER_DIAMETER_MM = 300.0
YIELD_ALPHA = 3.0  # negative-binomial clustering parameter (2-4 is the usual range in cost models)
# Packaging, ESTIMATES from public CoWoS-class cost analyses (2023): a passive silicon interposer
# at ~$0.25 per mm^2 (mature-node wafer, large-area yield and through-silicon vias), 30% larger
# than what sits on it; an HBM stack's footprint ~11 x 10 mm (JEDEC HBM3 package); organic
# substrate, lid and assembly ~$150; final test and burn-in ~5% of the parts' cost.
INTERPOSER_USD_PER_MM2 = 0.25
INTERPOSER_MARGIN = 1.3
HBM_FOOTPRINT_MM2 = 110.0
SUBSTRATE_ASSEMBLY_USD = 150.0
TEST_SHARE = 0.05
# ESTIMATE (range 0.3-0.7): share of an HBM stack's price that follows its speed bin; a full stack
# run at half the generation's top pin rate costs 1 - 0.5 x 0.5 = 75 % of a top-bin one (speed
# binning of the stacks' base dies; 2023-24 trade-press reports of premiums for the fastest bins).
HBM_SPEED_PREMIUM = 0.5
HOURS_PER_YEAR = 8766.0  # 365.25 days
# ESTIMATES for the system around the chips (public 2023-24 bill-of-materials analyses of 8-GPU
# HGX servers and 400G networks): a host node without its accelerators ~$30,000 (range
# $20,000-50,000); a switched scale-up fabric's switch chips and boards ~$1,500 per chip at the
# H100's 450 GB/s per direction (range $500-3,000), priced per GB/s of the chip's links, since a
# switch's silicon and boards follow the bandwidth they switch (an NVL72 rack's NVLink switch trays
# come to about $3,000 per 900-GB/s GPU on the same rate); direct mesh/ring/torus cabling ~$200 per
# chip (range $100-500), flat: its links' PHYs are on the chip and in its area; a scale-out port (NIC,
# switch port share, two optical transceivers) ~$3,000 per chip at 400 Gb/s (range $2,000-6,000):
# ~$1,000 that does not follow the rate (the NIC's board and host interface, cabling) and ~$40 per
# GB/s per direction that does (NIC silicon, switch ports and optics are sold by the lane and its
# rate), so 200 Gb/s ~$2,000 and 800 Gb/s ~$5,000.
HOST_NODE_USD = 30000.0
SWITCHED_FABRIC_USD_PER_GBPS = 1500.0 / 450.0
DIRECT_FABRIC_USD_PER_CHIP = 200.0
SCALE_OUT_PORT_USD = 1000.0
SCALE_OUT_USD_PER_GBPS = 40.0


@dataclass(frozen=True, slots=True)
class ChipCost:
    """The cost of one chip, USD, with how it was reached."""

    die_mm2: float  # one die
    dies: int
    dies_per_wafer: int
    die_yield: float
    silicon_usd: float  # all dies, good ones only
    hbm_usd: float
    packaging_usd: float
    test_usd: float

    @property
    def total_usd(self) -> float:
        return self.silicon_usd + self.hbm_usd + self.packaging_usd + self.test_usd


def dies_per_wafer(die_mm2: float, wafer_diameter_mm: float = WAFER_DIAMETER_MM) -> int:
    """Whole dies of ``die_mm2`` that fit on a round wafer (edge loss included); at least 0."""
    if die_mm2 <= 0:
        raise ValueError(f"die area must be > 0 mm^2 (got {die_mm2})")
    r = wafer_diameter_mm / 2
    return max(0, math.floor(math.pi * r * r / die_mm2 - math.pi * wafer_diameter_mm / math.sqrt(2 * die_mm2)))


def negative_binomial_yield(die_mm2: float, defects_per_cm2: float, alpha: float = YIELD_ALPHA) -> float:
    """Fraction of dies of ``die_mm2`` with no fatal defect: ``(1 + A D0 / alpha)^-alpha``."""
    if die_mm2 < 0 or defects_per_cm2 < 0 or alpha <= 0:
        raise ValueError(f"yield needs area >= 0, defect density >= 0, alpha > 0 (got {die_mm2}, "
                         f"{defects_per_cm2}, {alpha})")
    return (1 + die_mm2 / 100 * defects_per_cm2 / alpha) ** -alpha


def die_cost_usd(die_mm2: float, wafer_usd: float, defects_per_cm2: float) -> float:
    """Cost of one good die: wafer price over the good dies on the wafer."""
    good = dies_per_wafer(die_mm2) * negative_binomial_yield(die_mm2, defects_per_cm2)
    if good <= 0:
        raise ValueError(f"a {die_mm2:.0f} mm^2 die does not fit a {WAFER_DIAMETER_MM:.0f} mm wafer")
    return wafer_usd / good


def chip_cost(chip: HardwareConfig, area: AreaBreakdown, defects_per_cm2: float | None = None) -> ChipCost:
    """What one ``chip`` of ``area`` costs to make.

    Args:
        chip: the chip (node, HBM generation, capacity and stacks, dies).
        area: its silicon area (``hwmodels.area.die_area``).
        defects_per_cm2: defect density; None takes the node's.
    """
    node, hbm = process_node(chip.process_node), hbm_generation(chip.hbm_generation)
    d0 = node.defect_density_per_cm2 if defects_per_cm2 is None else defects_per_cm2
    die = area.die_mm2
    per_wafer = dies_per_wafer(die)
    y = negative_binomial_yield(die, d0)
    silicon = chip.num_dies * die_cost_usd(die, node.wafer_usd, d0)
    bandwidth_usd = HBM_SPEED_PREMIUM * hbm.usd_per_GB * hbm.max_GB_per_stack / hbm.max_GBps_per_stack
    memory = chip.hbm_capacity_GB * hbm.usd_per_GB * (1 - HBM_SPEED_PREMIUM) + chip.hbm_bandwidth_GBps * bandwidth_usd
    interposer = INTERPOSER_MARGIN * (area.total_mm2 + chip.hbm_stacks * HBM_FOOTPRINT_MM2)
    packaging = SUBSTRATE_ASSEMBLY_USD + INTERPOSER_USD_PER_MM2 * interposer
    test = TEST_SHARE * (silicon + memory + packaging)
    return ChipCost(die, chip.num_dies, per_wafer, y, silicon, memory, packaging, test)


def usd_per_chip_hour(chip_usd: float, avg_power_W: float, *, usd_per_kWh: float, amortisation_years: float,
                      utilisation: float = 1.0, price_markup: float = 1.0) -> float:
    """Owning plus powering one chip for an hour, USD.

    Args:
        chip_usd: what the chip costs to make.
        avg_power_W: the chip's average power while it works, W.
        usd_per_kWh: electricity price.
        amortisation_years: years over which the chip's price is written off.
        utilisation: fraction of those hours the chip does paid work.
        price_markup: price paid over the cost to make (vendor margin); 1 = at cost.
    """
    capital = chip_usd * price_markup / (amortisation_years * HOURS_PER_YEAR * utilisation)
    return capital + avg_power_W / 1000 * usd_per_kWh


@dataclass(frozen=True, slots=True)
class SystemCost:
    """What one chip costs in its system, USD: itself and its shares of the host and the networks."""

    chip_usd: float
    host_usd: float
    scale_up_usd: float
    scale_out_usd: float

    @property
    def total_usd(self) -> float:
        return self.chip_usd + self.host_usd + self.scale_up_usd + self.scale_out_usd


def system_cost(chip_usd: float, chips_per_node: int, switched: bool, link_GBps: float,
                nic_GBps: float | None) -> SystemCost:
    """One chip's system cost (module docstring): the chip plus its shares of host, scale-up and scale-out.
    ``link_GBps``: the chip's scale-up bandwidth per direction; ``nic_GBps``: its NIC's (None: no scale-out)."""
    fabric = SWITCHED_FABRIC_USD_PER_GBPS * link_GBps if switched else DIRECT_FABRIC_USD_PER_CHIP
    out = 0.0 if nic_GBps is None else SCALE_OUT_PORT_USD + SCALE_OUT_USD_PER_GBPS * nic_GBps
    return SystemCost(chip_usd, HOST_NODE_USD / chips_per_node, fabric, out)
