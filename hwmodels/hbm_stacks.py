"""HBM as parts: the stacks a bandwidth and a capacity need, and the die edge they take.

* **stacks needed**: ``max(ceil(bandwidth / max_GBps_per_stack), ceil(capacity / max_GB_per_stack))``
  with the generation's per-stack limits (hwmodels/process.py HBM). A preset names its stacks;
  ``hardware.hbm_stacks=null`` (or a count too small for the bandwidth or capacity set) takes the
  count needed, and the run's summary says so (``area.hbm_stacks_note``);
* **shoreline**: each stack's PHY sits on a die edge and takes ``PHY_EDGE_MM`` of it. Stacks line
  the two long edges of each die (the other two carry the host interface, the chip-to-chip links
  and power delivery); a die is at most as elongated as the reticle (33 x 26 mm). A die whose
  logic is too small for its stacks' edge is padded with white space up to
  ``(stacks per die x PHY_EDGE_MM / 2)^2 / ASPECT`` (hwmodels/area.py adds it as ``shoreline``);
* **unreachable**: more stacks than reticle-sized dies can edge
  (``num_dies x floor(2 x 33 mm / PHY_EDGE_MM)``) is an error naming the way out.
"""

from __future__ import annotations

import math

from hwmodels.process import HbmGeneration

# ESTIMATE (range 5-8 mm): the edge an HBM PHY takes, a 1024-bit interface's ~1,700 microbumps at
# 55 um pitch in a field a few mm deep (published HBM2E/HBM3 PHY hard macros; GA100 and GH100 put
# 6 stack sites on two ~28 mm edges, ~9.5 mm per site with the spacing between stacks).
PHY_EDGE_MM = 6.0
HBM_EDGES = 2  # stacks line two opposite edges of a die
RETICLE_LONG_MM, RETICLE_SHORT_MM = 33.0, 26.0
ASPECT = RETICLE_LONG_MM / RETICLE_SHORT_MM  # the most elongated die considered
ROUNDING = 1e-3  # datasheets round: v5p's 2,765 GB/s on 6 HBM2e stacks is 460.8 GB/s each


def stacks_for(generation: HbmGeneration, bandwidth_GBps: float, capacity_GB: float) -> int:
    """The fewest stacks of ``generation`` that deliver ``bandwidth_GBps`` and hold ``capacity_GB``."""
    by_bw = math.ceil(bandwidth_GBps / generation.max_GBps_per_stack * (1 - ROUNDING))
    by_cap = math.ceil(capacity_GB / generation.max_GB_per_stack * (1 - ROUNDING))
    return max(1, by_bw, by_cap)


def max_stacks(num_dies: int) -> int:
    """The most stacks ``num_dies`` reticle-sized dies can line with PHYs."""
    return num_dies * math.floor(HBM_EDGES * RETICLE_LONG_MM / PHY_EDGE_MM)


def shoreline_die_mm2(stacks: int, num_dies: int) -> float:
    """The least area of each die whose two long edges hold its share of ``stacks`` PHYs, mm^2."""
    long_edge = math.ceil(stacks / num_dies) * PHY_EDGE_MM / HBM_EDGES
    return long_edge * long_edge / ASPECT


def unreachable(generation: HbmGeneration, bandwidth_GBps: float, capacity_GB: float, num_dies: int) -> str | None:
    """One line saying why no count of stacks reaches the bandwidth and capacity, else None."""
    need, most = stacks_for(generation, bandwidth_GBps, capacity_GB), max_stacks(num_dies)
    if need <= most:
        return None
    g = generation
    return (f"{bandwidth_GBps:,.0f} GB/s and {capacity_GB:,.0f} GB of {g.name} need {need} stacks (at most "
            f"{g.max_GBps_per_stack:,.1f} GB/s and {g.max_GB_per_stack:.1f} GB each), more than the {most} whose PHYs "
            f"fit the edges of {num_dies} reticle-sized die(s) ({PHY_EDGE_MM:g} mm each); lower "
            f"hardware.hbm_bandwidth_GBps or hardware.hbm_capacity_GB, choose a newer hardware.hbm_generation, "
            f"or raise hardware.num_dies")


def stacks_note(given: int | None, needed: int, generation: HbmGeneration, bandwidth_GBps: float,
                capacity_GB: float) -> str:
    """What the summary says about the stack count: '' when the chip's own count was used."""
    if given is not None and given >= needed:
        return ""
    why = (f"{bandwidth_GBps:,.0f} GB/s and {capacity_GB:,.0f} GB at most {generation.max_GBps_per_stack:,.1f} "
           f"GB/s and {generation.max_GB_per_stack:.1f} GB per {generation.name} stack")
    count = f"{needed} stack{'s' if needed != 1 else ''}"
    if given is None:
        return f"{count} derived from {why}"
    return f"{count} derived from {why} (the chip's {given}, hardware.hbm_stacks, cannot deliver them)"
