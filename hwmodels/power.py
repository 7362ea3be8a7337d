"""The clock a chip sustains under its board power budget while a matrix kernel runs.

A chip's datasheet peak is quoted at its boost clock ``freq_GHz``. Under dense tensor load the
board's power limit (``board_power_W``, the TDP) caps the clock instead: the firmware lowers
frequency and voltage until the board draws no more than the budget. That is why a chip with
more arithmetic per watt of budget (fp8 on Hopper, MI300X's 1.3 PFLOP/s in 750 W) reaches a
smaller fraction of its datasheet peak than A100 does, without any per-chip factor.

Model (first-order CMOS dynamic power, ``P = C V^2 f``, with the voltage scaled in proportion to
the clock inside the DVFS range, so energy per operation goes as ``r^2`` at clock ratio ``r``):

* at the boost clock a kernel spends ``E_core`` joules in its arithmetic, operand delivery and
  on-chip SRAM (``hwmodels/energy.py``, per MAC and per byte) and ``E_mem`` in HBM, in
  ``t_compute`` seconds of array time and ``t_memory`` seconds of HBM time;
* at ratio ``r`` it takes ``t(r) = max(t_compute / r, t_memory)`` and draws
  ``P(r) = static + (E_core r^2 + E_mem) / t(r)``, increasing in ``r``;
* the sustained ratio is 1 when ``P(1)`` fits the budget, else the ``r`` with ``P(r) = budget``
  (bisection; never below ``MIN_RATIO``);
* ``E_mem`` is the HBM bytes' energy plus their passes through the on-chip SRAM (not clock-scaled,
  as ``sim/engine/op_energy.py`` counts them);
* a kernel whose time comes from a published efficiency (measured at its sustained clock) keeps
  its time; only its energy scales, with ``r`` from ``fixed_time_ratio``.

Static power (leakage, idle, HBM background) comes from ``energy.static_power_W`` over the
modelled die area. A chip with ``board_power_W = 0`` (unknown), an ``ideal`` chip (its lessons'
hand arithmetic runs at the stated clock), or a run with ``power.cap=false`` is never throttled;
the summary's ``energy.over_budget`` says when its peak power exceeds the board's. Only the
arrays' clock drops: HBM traffic is never slowed. Memory-bound
kernels (small-M GEMMs that read weights) draw little arithmetic power and keep the boost
clock; large square GEMMs are the ones that throttle.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.area import die_area
from hwmodels.chip import HardwareConfig
from hwmodels.energy import SRAM_PASSES_PER_HBM_BYTE, SRAM_TILE_M, SRAM_TILE_N, chip_energy
from hwmodels.numerics import DType

MIN_RATIO = 0.2  # DVFS floor: no accelerator runs its arrays below a fifth of boost under load
ITERATIONS = 40  # bisection steps: 2^-40 of the ratio, far below anything printed


@dataclass(frozen=True, slots=True)
class PowerBudget:
    """What a chip may draw and what its arrays cost: the inputs of ``clock_ratio``."""

    budget_W: float  # board power limit; 0: unknown, never throttled
    static_W: float  # leakage, idle and HBM background power at the board
    mac_J: dict[DType, float]  # J per MAC at the boost clock, by array format
    sram_J_per_byte: float
    hbm_J_per_byte: float

    @classmethod
    def of(cls, chip: HardwareConfig, cap: bool = True) -> PowerBudget:
        """The chip's budget; ``cap=False`` (``power.cap=false``): none, every kernel at the boost clock."""
        energy = chip_energy(chip, die_area(chip).total_mm2)
        budget = chip.board_power_W if cap and not chip.ideal else 0.0
        return cls(budget, energy.static_W, energy.mac_J, energy.sram_J_per_byte, energy.hbm_J_per_byte)

    def matmul_core_J(self, flops: float, dtype: DType) -> float:
        """Energy at the boost clock of ``flops`` matrix FLOPs in ``dtype``: arithmetic, operands, SRAM re-reads."""
        macs = flops / 2
        return macs * (self.mac_J[dtype] + dtype.bytes * (1 / SRAM_TILE_M + 1 / SRAM_TILE_N) * self.sram_J_per_byte)

    def memory_J(self, hbm_bytes: float) -> float:
        """Energy of ``hbm_bytes`` of HBM traffic: the HBM access and the bytes' SRAM passes (not clock-scaled)."""
        return hbm_bytes * (self.hbm_J_per_byte + SRAM_PASSES_PER_HBM_BYTE * self.sram_J_per_byte)

    def clock_ratio(self, core_J: float, memory_J: float, compute_s: float, memory_s: float) -> float:
        """Fraction of the boost clock a kernel sustains (1.0: not power-limited); see the module docstring."""
        if self.budget_W <= 0 or compute_s <= 0 or core_J <= 0:
            return 1.0

        def power(r: float) -> float:
            return self.static_W + (core_J * r * r + memory_J) / max(compute_s / r, memory_s)

        if power(1.0) <= self.budget_W:
            return 1.0
        if power(MIN_RATIO) >= self.budget_W:
            return MIN_RATIO
        low, high = MIN_RATIO, 1.0
        for _ in range(ITERATIONS):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if power(mid) <= self.budget_W else (low, mid)
        return low

    def fixed_time_ratio(self, core_J: float, memory_J: float, seconds: float) -> float:
        """Clock ratio of a kernel whose time is measured at its sustained clock (a published kernel
        efficiency): only its energy scales, ``P(r) = static + (E_core r^2 + E_mem) / t``, so
        ``r = sqrt(((budget - static) t - E_mem) / E_core)`` when ``P(1)`` exceeds the budget."""
        if self.budget_W <= 0 or seconds <= 0 or core_J <= 0:
            return 1.0
        room = (self.budget_W - self.static_W) * seconds - memory_J
        if room >= core_J:
            return 1.0
        return max(MIN_RATIO, (max(room, 0.0) / core_J) ** 0.5)
