"""Die area from the architecture: arrays, vector lanes, cores, SRAM, HBM PHYs, SerDes, the rest.

``area = (matrix + vector + cores + sram + hbm_phy + serdes) / (1 - OTHER_SHARE)``, in mm^2,
summed over all dies of a chip, counting every core on the silicon, the enabled ``num_cores``
plus the ``spare_cores`` disabled for yield:

* matrix arrays: ``physical MACs x BF16_MAC_UM2 x max_fmt(rate x REL_MAC_AREA[fmt]) x
  (1 + FORMAT_EXTRA x (formats - 1)) x logic_scale``: a multi-format array is sized by the format
  that needs the most silicon per cycle; the others share it at a small muxing cost;
* vector unit: ``vector_lanes x VECTOR_LANE_UM2 x logic_scale`` (the lanes are hardware; their
  throughput follows the clock);
* timing: arrays, lanes and core logic clocked above the node's nominal clock are upsized and
  pipelined deeper: x ``timing_factor = 1 + TIMING_AREA_PER_DOUBLING x log2(f / f_nom)`` (1 at or
  below ``f_nom``), so a faster chip is never smaller;
* cores: ``cores x CORE_MM2 x logic_scale``: per-core control, scheduling, load/store and
  special-function logic that neither arrays nor lanes account for;
* SRAM: ``(sram_MiB + other_sram_MiB + cores x core_sram_KiB) x bits x bit cell x SRAM_OVERHEAD``;
* HBM: ``stacks x (HBM_PHY_MM2 x analog_scale + HBM_CTRL_MM2 x logic_scale)`` (stacks fitted on
  the package; PHYs left unused on harvested dies are not counted);
* SerDes: ``link Gbit/s per direction x SERDES_MM2_PER_GBPS x analog_scale``;
* everything else (network on chip, host interface, clocks, test, pad ring, white space) is
  ``OTHER_SHARE`` of the die;
* shoreline: a die too small for the edge its HBM PHYs need is padded up to the area that holds
  them (hwmodels/hbm_stacks.py ``shoreline_die_mm2``), white space counted as ``shoreline``.

A monolithic chip (``num_dies = 1``) over the reticle (26 x 33 mm = 858 mm^2) cannot be made:
``check_reticle`` rejects it. With ``num_dies > 1`` the area is split evenly over the dies.
The 7 nm reference coefficients are scaled by the node's factors in hwmodels/process.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwmodels.hbm_stacks import shoreline_die_mm2
from hwmodels.numerics import DType
from hwmodels.process import process_node

if TYPE_CHECKING:
    from hwmodels.chip import HardwareConfig

RETICLE_MM2 = 26.0 * 33.0  # lithography field limit: 858 mm^2
MiB_BITS = 8 * 2**20
# Horowitz ISSCC 2014 (45 nm) areas, um^2: 16-bit FP multiply 1640, 32-bit FP multiply 7700,
# 32-bit FP add 4184, 8-bit int multiply 282, 32-bit int add 137, 16-bit FP add 1360. A bf16
# multiply (8-bit significand) is taken as (8/11)^2 of the fp16 one, ~870.
_BF16_MAC_45NM = 870 + 4184
# 45 nm -> 7 nm logic density ~20x (TSMC 40 nm ~4.5 MTr/mm^2 to N7 ~91 MTr/mm^2), and x2 for the
# pipeline registers, operand staging and accumulators around each MAC (ESTIMATE): ~505 um^2.
BF16_MAC_UM2 = _BF16_MAC_45NM / 20 * 2
# Area of one MAC of each format relative to a bf16 MAC with fp32 accumulation, from the same
# Horowitz areas (multiply + accumulate-add of each format): fp16 and tf32 (1640 + 4184), fp32
# (7700 + 4184), int8 (282 + 137); ESTIMATES for fp8 (~150 + 1360), int4, fp4.
REL_MAC_AREA: dict[DType, float] = {
    DType.fp32: 11884 / _BF16_MAC_45NM,
    DType.tf32: 5824 / _BF16_MAC_45NM,
    DType.bf16: 1.0,
    DType.fp16: 5824 / _BF16_MAC_45NM,
    DType.fp8: 1510 / _BF16_MAC_45NM,
    DType.int8: 419 / _BF16_MAC_45NM,
    DType.int4: 150 / _BF16_MAC_45NM,
    DType.fp4: 1400 / _BF16_MAC_45NM,
}
FORMAT_EXTRA = 0.05  # ESTIMATE: muxing and conversion per extra supported format
# An fp32 FMA lane (Horowitz 7700 + 4184 at 45 nm), scaled and doubled as for the MACs: ~1190 um^2.
VECTOR_LANE_UM2 = (7700 + 4184) / 20 * 2
# Per-core logic outside the arrays and lanes (instruction fetch and issue, schedulers,
# load/store and address units, special functions, L1 tags), mm^2 at 7 nm. The one coefficient
# without an independent source, fitted on A100 alone: GA100 (826 mm^2, whitepaper 2020) from its
# architecture parameters gives 3.24, taken as 3.2 (GA100 then lands 0.7 % under). GH100 (814
# mm^2) is a prediction from it: 709 mm^2, 13 % under (tests/test_tradeoffs.py holds it to 15 %).
CORE_MM2 = 3.2
# SRAM macro overhead over the bare bit cells: periphery (decoders, sense amplifiers, redundancy),
# ECC, tags and the wiring to the macros. TPUv1 (Jouppi et al., ISCA 2017): its 24 MiB unified
# buffer takes 29% of a <=331 mm^2 28 nm die, ~4 mm^2/MiB against ~1.07 mm^2/MiB of 0.127 um^2
# cells: ~3.7x. Taken as 3.0 for modern compilers' denser macros (ESTIMATE).
SRAM_OVERHEAD = 3.0
# HBM PHY (bump-field limited, ~1,700 microbumps at 55 um) and its memory controllers, mm^2 at
# 7 nm per stack. ESTIMATE from published HBM2E/HBM3 PHY hard-macro footprints (~8-10 mm^2).
HBM_PHY_MM2, HBM_CTRL_MM2 = 9.0, 3.0
# Chip-to-chip SerDes, mm^2 per Gbit/s of per-direction bandwidth at 7 nm: a 50-112 Gb/s lane
# (transmitter plus receiver) takes ~0.3-0.7 mm^2 (ESTIMATE from ISSCC SerDes papers).
SERDES_MM2_PER_GBPS = 0.006
OTHER_SHARE = 0.20  # ESTIMATE: uncore share of large accelerator dies in annotated die shots
# ESTIMATE (range 0.2-0.5): logic area per doubling of the clock above the node's nominal one, from
# synthesis area-delay curves (gate upsizing and extra pipeline registers toward the fast corner).
TIMING_AREA_PER_DOUBLING = 0.3


@dataclass(frozen=True, slots=True)
class AreaBreakdown:
    """Silicon area of one chip (all its dies), mm^2, by part."""

    matrix_mm2: float
    vector_mm2: float
    cores_mm2: float
    sram_mm2: float
    hbm_phy_mm2: float
    serdes_mm2: float
    other_mm2: float
    num_dies: int = 1
    shoreline_mm2: float = 0.0  # white space that gives the HBM PHYs their die edge


    @property
    def total_mm2(self) -> float:
        return (self.matrix_mm2 + self.vector_mm2 + self.cores_mm2 + self.sram_mm2 + self.hbm_phy_mm2
                + self.serdes_mm2 + self.other_mm2 + self.shoreline_mm2)

    @property
    def die_mm2(self) -> float:
        """Area of one die (the chip's area split evenly over its dies)."""
        return self.total_mm2 / self.num_dies

    def as_dict(self) -> dict[str, float]:
        return {"matrix": self.matrix_mm2, "vector": self.vector_mm2, "cores": self.cores_mm2,
                "sram": self.sram_mm2, "hbm_phy": self.hbm_phy_mm2, "serdes": self.serdes_mm2,
                "other": self.other_mm2, "shoreline": self.shoreline_mm2}


def array_size_factor(rates: dict[str, float]) -> float:
    """Silicon of a multi-format array per bf16 MAC: the costliest format, plus muxing per extra format."""
    need = max(rate * REL_MAC_AREA[DType(name)] for name, rate in rates.items())
    return need * (1 + FORMAT_EXTRA * (len(rates) - 1))


def timing_factor(chip: HardwareConfig) -> float:
    """Logic area at ``chip``'s clock over that at the node's nominal clock (1 at or below it)."""
    ratio = chip.freq_GHz / process_node(chip.process_node).nominal_clock_GHz
    return 1.0 + TIMING_AREA_PER_DOUBLING * math.log2(ratio) if ratio > 1 else 1.0


def die_area(chip: HardwareConfig) -> AreaBreakdown:
    """The silicon area of ``chip`` from its architecture parameters (all dies together)."""
    node = process_node(chip.process_node)
    logic, analog = node.logic_area_scale, node.analog_area_scale
    timed = logic * timing_factor(chip)
    cores = chip.num_cores + chip.spare_cores
    per_core = cores / chip.num_cores  # physical over enabled
    macs = chip.macs_per_cycle * per_core
    matrix = macs * BF16_MAC_UM2 * 1e-6 * array_size_factor(chip.matmul_dtype_rate) * timed
    vector = chip.vector_lanes * per_core * VECTOR_LANE_UM2 * 1e-6 * timed
    core_logic = cores * CORE_MM2 * timed
    sram_MiB = chip.sram_MiB + chip.other_sram_MiB + cores * chip.core_sram_KiB / 1024
    sram = sram_MiB * MiB_BITS * node.sram_bitcell_um2 * 1e-6 * SRAM_OVERHEAD
    hbm = chip.hbm_stacks * (HBM_PHY_MM2 * analog + HBM_CTRL_MM2 * logic)
    serdes = chip.link_bandwidth_GBps * 8 * SERDES_MM2_PER_GBPS * analog
    listed = matrix + vector + core_logic + sram + hbm + serdes
    other = listed * OTHER_SHARE / (1 - OTHER_SHARE)
    edge = shoreline_die_mm2(chip.hbm_stacks, chip.num_dies) * chip.num_dies
    pad = max(0.0, edge - listed - other)
    return AreaBreakdown(matrix, vector, core_logic, sram, hbm, serdes, other, chip.num_dies, pad)


def reticle_problem(chip: HardwareConfig, area: AreaBreakdown) -> str | None:
    """A one-line reason when a die of ``chip`` exceeds the reticle, else None."""
    if area.die_mm2 <= RETICLE_MM2:
        return None
    if chip.num_dies == 1:
        return (f"the die needs {area.die_mm2:.0f} mm^2 ({chip.process_node}), over the {RETICLE_MM2:.0f} mm^2 reticle "
                f"limit (26 x 33 mm); split it into chiplets with hardware.num_dies="
                f"{int(area.total_mm2 // RETICLE_MM2) + 1} or shrink the chip")
    return (f"each of its {chip.num_dies} dies needs {area.die_mm2:.0f} mm^2 ({chip.process_node}), over the "
            f"{RETICLE_MM2:.0f} mm^2 reticle limit (26 x 33 mm); raise hardware.num_dies to "
            f"{int(area.total_mm2 // RETICLE_MM2) + 1} or shrink the chip")
