"""Many chips as arrays: the per-point inputs of the vectorised cost model (``sim.engine.vector_cost``).

A batch of design points shares its discrete hardware (array geometry, GEMM schedule, formats,
topology, collective algorithm, architecture: ``shape_key``) and differs in the continuous
fields (clock, cores, SRAM, HBM, links, efficiencies, overheads, power). ``ChipArrays`` reads
every figure the scalar ``Coster`` reads, through the same ``HardwareConfig`` properties, one
array entry per point, so a derived property changed in hwmodels/chip.py changes both paths.
Figures that need more than arithmetic (the power budget's static power and energy per MAC, from
the area and energy models) are computed once per distinct chip by the scalar code itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwmodels.chip import HardwareConfig
from hwmodels.numerics import DType
from hwmodels.power import PowerBudget

# HardwareConfig properties the cost model reads, one float array each.
FIELDS = ("freq_Hz", "num_cores", "sram_bandwidth_Bps", "sram_bytes", "hbm_bandwidth_Bps", "hbm_efficiency",
          "hbm_latency_s", "matmul_efficiency", "matmul_overlap_loss", "vector_flops", "vector_efficiency",
          "kernel_overhead_s", "matmul_overhead_s", "link_bandwidth_Bps", "link_efficiency", "link_latency_s",
          "collective_latency_us", "link_saturation_MB", "link_ramp_exponent", "max_chips")


def shape_key(chip: HardwareConfig) -> tuple:
    """What must be equal for chips to be costed together: the fields that choose formulas, not values."""
    formats = tuple((d.value, chip.matmul_dtype(d)) for d in DType)
    return (chip.array_rows, chip.array_cols, chip.arrays_per_core, str(chip.gemm_schedule), chip.ideal,
            chip.architecture, str(chip.topology), str(chip.allreduce_algorithm), chip.switch_reduction, formats,
            tuple(sorted(chip.matmul_dtype_rate.items())))


@dataclass
class ChipArrays:
    """The chips of a batch: ``rep`` for the shared discrete fields, arrays (one entry per point) for the rest."""

    rep: HardwareConfig
    values: dict[str, np.ndarray]
    peak: dict[DType, np.ndarray]  # peak matrix FLOP/s by requested format (after conversion)
    rate: dict[str, np.ndarray]  # matmul_dtype_rate by format name
    budget_W: np.ndarray
    static_W: np.ndarray
    mac_J: dict[DType, np.ndarray]
    sram_J: np.ndarray
    hbm_J: np.ndarray

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def size(self) -> int:
        return len(self.budget_W)


def chip_arrays(chips: list[HardwareConfig]) -> ChipArrays:
    """``ChipArrays`` of ``chips`` (all with the same ``shape_key``); distinct chips are read once."""
    index: dict[int, int] = {}
    unique: list[HardwareConfig] = []
    where = np.empty(len(chips), dtype=np.int64)
    for i, chip in enumerate(chips):
        j = index.get(id(chip))
        if j is None:
            j = index[id(chip)] = len(unique)
            unique.append(chip)
        where[i] = j

    def gather(fn) -> np.ndarray:
        return np.array([float(fn(c)) for c in unique], dtype=float)[where]

    values = {name: gather(lambda c, n=name: getattr(c, n)) for name in FIELDS}
    rep = unique[0]
    peak = {d: gather(lambda c, d=d: c.peak_flops(d)) for d in DType}
    rate = {name: gather(lambda c, n=name: c.matmul_dtype_rate[n]) for name in rep.matmul_dtype_rate}
    budgets = [PowerBudget.of(c) for c in unique]
    mac = {d: np.array([b.mac_J[d] for b in budgets], dtype=float)[where] for d in budgets[0].mac_J}
    return ChipArrays(rep, values, peak, rate,
                      np.array([b.budget_W for b in budgets], dtype=float)[where],
                      np.array([b.static_W for b in budgets], dtype=float)[where], mac,
                      np.array([b.sram_J_per_byte for b in budgets], dtype=float)[where],
                      np.array([b.hbm_J_per_byte for b in budgets], dtype=float)[where])
