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

from hwmodels.area import die_area
from hwmodels.chip import HardwareConfig
from hwmodels.energy import chip_energy
from hwmodels.numerics import DType
from hwmodels.power import PowerBudget

# HardwareConfig properties the cost model reads, one float array each.
FIELDS = ("freq_Hz", "num_cores", "sram_bandwidth_Bps", "sram_bytes", "hbm_bandwidth_Bps", "hbm_efficiency",
          "hbm_latency_s", "matmul_efficiency", "matmul_overlap_loss", "vector_flops", "vector_efficiency",
          "kernel_overhead_s", "matmul_overhead_s", "link_bandwidth_Bps", "link_efficiency", "link_latency_s",
          "collective_latency_us", "link_saturation_MB", "link_ramp_exponent", "max_chips")


_FORMATS: dict[tuple, tuple] = {}  # the formats matmuls run in, by the chip's format rates (one per preset)


def shape_key(chip: HardwareConfig) -> tuple:
    """What must be equal for chips to be costed together: the fields that choose formulas, not values."""
    rates = tuple(sorted(chip.matmul_dtype_rate.items()))
    formats = _FORMATS.get(rates)
    if formats is None:  # matmul_dtype depends on the chip's formats alone
        formats = _FORMATS[rates] = tuple((d.value, chip.matmul_dtype(d)) for d in DType)
    return (chip.array_rows, chip.array_cols, chip.arrays_per_core, str(chip.gemm_schedule), chip.ideal,
            chip.architecture, str(chip.topology), str(chip.allreduce_algorithm), chip.switch_reduction, formats,
            rates)


@dataclass
class ChipArrays:
    """The chips of a batch: ``rep`` for the shared discrete fields, arrays (one entry per point) for the rest."""

    rep: HardwareConfig
    unique: list[HardwareConfig]  # the distinct chips (by object), in first-seen order
    where: np.ndarray  # each point's chip: its position in ``unique``
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


class ChipRows:
    """Each distinct chip's figures, read once per batch (keyed by the chip object)."""

    def __init__(self) -> None:
        self._rows: dict[int, tuple] = {}
        self._other: dict[tuple, object] = {}
        self._arrays: dict[tuple, tuple] = {}

    def arrays(self, chips: list[HardwareConfig], cap: bool) -> ChipArrays:
        """``chip_arrays(chips)``, made once per list of chip objects (a grid's groups of each batch share it)."""
        key = (tuple(map(id, chips)), cap)
        found = self._arrays.get(key)
        if found is None:
            found = self._arrays[key] = (chip_arrays(chips, self, cap), chips)
        return found[0]

    def once(self, what: str, chip, fn):
        """``fn(chip)``, computed once per chip (or per list of chips: a column of them) for the figure ``what``."""
        key = (what, id(chip))
        found = self._other.get(key)
        if found is None:
            found = self._other[key] = (fn(chip), chip)
        return found[0]

    def economics(self, chip: HardwareConfig) -> tuple:
        """(area, energy coefficients) of the chip (hwmodels/area.py, energy.py)."""
        def make(c):
            area = die_area(c)
            return area, chip_energy(c, area.total_mm2)
        return self.once("economics", chip, make)

    def row(self, chip: HardwareConfig, cap: bool = True) -> tuple:
        """(field values, power budget, the chip itself: kept alive so its id stays its own)."""
        found = self._rows.get((id(chip), cap))
        if found is None:
            found = self._rows[(id(chip), cap)] = ([float(getattr(chip, n)) for n in FIELDS], self.budget(chip, cap),
                                                   chip)
        return found

    def budget(self, chip: HardwareConfig, cap: bool) -> PowerBudget:
        """``PowerBudget.of(chip, cap)`` from the chip's ``economics`` (its area and energy models run once
        per chip; tests/test_vector.py holds the two equal)."""
        energy = self.economics(chip)[1]
        return PowerBudget(chip.board_power_W if cap and not chip.ideal else 0.0, energy.static_W, energy.mac_J,
                           energy.sram_J_per_byte, energy.hbm_J_per_byte)


class _Peaks(dict):
    """Peak matrix FLOP/s by requested format, computed for a format when first asked."""

    def __init__(self, unique: list, where: np.ndarray) -> None:
        super().__init__()
        self.unique, self.where = unique, where

    def __missing__(self, dtype: DType) -> np.ndarray:
        value = self[dtype] = np.array([c.peak_flops(dtype) for c in self.unique], dtype=float)[self.where]
        return value


def chip_arrays(chips: list[HardwareConfig], rows: ChipRows | None = None, cap: bool = True) -> ChipArrays:
    """``ChipArrays`` of ``chips`` (all with the same ``shape_key``); distinct chips are read once."""
    rows = rows or ChipRows()
    index: dict[int, int] = {}
    unique: list[HardwareConfig] = []
    where = np.empty(len(chips), dtype=np.int64)
    for i, chip in enumerate(chips):
        j = index.get(id(chip))
        if j is None:
            j = index[id(chip)] = len(unique)
            unique.append(chip)
        where[i] = j
    table = [rows.row(c, cap) for c in unique]
    matrix = np.array([r[0] for r in table], dtype=float)[where]
    values = {name: matrix[:, i] for i, name in enumerate(FIELDS)}
    rep = unique[0]
    rate = {name: np.array([c.matmul_dtype_rate[name] for c in unique], dtype=float)[where]
            for name in rep.matmul_dtype_rate}
    budgets = [r[1] for r in table]

    def of(fn) -> np.ndarray:
        return np.array([fn(b) for b in budgets], dtype=float)[where]

    mac = {d: of(lambda b, d=d: b.mac_J[d]) for d in budgets[0].mac_J}
    return ChipArrays(rep, unique, where, values, _Peaks(unique, where), rate, of(lambda b: b.budget_W),
                      of(lambda b: b.static_W), mac, of(lambda b: b.sram_J_per_byte), of(lambda b: b.hbm_J_per_byte))
