"""The chip description: compute arrays, vector unit, SRAM, HBM and links.

Fields carry their unit in their name (``hbm_bandwidth_GBps``, ``sram_MiB``) because they are
what a user types on the command line; the ``*_Bps``, ``*_bytes``, ``*_s`` properties convert
them once to SI (bytes, seconds, FLOP). GB is 10**9 bytes, GiB/MiB are powers of two. Link
bandwidth is per direction, per chip (summed over the chip's links).

The same dataclass is the Hydra schema of ``conf/hardware/*.yaml`` and the typed spec that the
cost functions read, so a typo in a key is rejected at composition and a bad value is
rejected here, in ``__post_init__``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from hwmodels.calibration import FITTED, FITTED_KEYS
from hwmodels.limits import LIMITS, MIN_EFFICIENCY, HardwareError, check_limit
from hwmodels.numerics import DType, parse_dtype

GB = 1e9
MiB = 2**20


class Topology(str, Enum):
    """How the chips of one group are connected."""

    switch = "switch"  # every chip one hop from a switch, each able to drive all its links to any peer (NVSwitch)
    mesh = "mesh"  # one direct link from every chip to each of the other max_chips - 1 (MI300X, Gaudi 3 boards)
    ring, torus2d, torus3d = "ring", "torus2d", "torus3d"  # a ring; tori of 2 or 3 dimensions (hwmodels/links.py)


class GemmSchedule(str, Enum):
    """How a GEMM library spreads output tiles over the cores (hwmodels/compute.py)."""

    waves = "waves"  # one tile per core per wave; the last wave may leave cores idle (classic cuBLAS/CUTLASS 2)
    stream_k = "stream_k"  # persistent kernels share the k-loop iterations evenly over the cores (CUTLASS 3)


class CollectiveAlgorithm(str, Enum):
    """Which all-reduce algorithm collectives use (formulas in hwmodels/links.py)."""

    auto = "auto"  # the fastest available for the message size, as NCCL's tuner picks
    ring = "ring"  # ring; on a torus, rings along each dimension in turn (dimension-ordered)
    tree = "tree"  # double binary tree (latency-optimal, half the ring's bus bandwidth)
    in_switch = "in_switch"  # reduction in the switch (NVLink SHARP); needs topology switch + switch_reduction


# NCCL's per-NVLink bandwidth constants over the link's datasheet rate: 20.0 GB/s for sm_80 and
# 20.6 GB/s for sm_90 per 25 GB/s NVLink 3/4 link (NVIDIA/nccl src/graph/topo.h, 2.22.3+), 0.80-0.82;
# the default for a chip whose preset names no figure of its own.
AT_CLOCK = {"vector_TFLOPS": "vector_lanes", "sram_bandwidth_TBps": "sram_bytes_per_cycle"}  # rate -> per cycle
LINK_EFFICIENCY = 0.80
# The defaults of an ``ideal`` chip's fitted fields: peak rates, no fixed costs, no collective ramp.
IDEAL: Mapping[str, float] = MappingProxyType({
    "matmul_efficiency": 1.0, "hbm_latency_us": 0.0, "kernel_overhead_us": 0.0, "matmul_overhead_cycles": 0.0,
    "matmul_overlap_loss": 0.0,
    "link_latency_us": 0.0, "collective_latency_us": 0.0, "link_saturation_MB": 1.0,
    "link_ramp_exponent": 0.0,
})


@dataclass
class HardwareConfig:
    """One accelerator chip and the fabric that joins several of them.

    Peak matrix throughput is derived from the array structure, never typed in:
    ``num_cores * arrays_per_core * array_rows * array_cols`` multiply-accumulates per cycle
    at bf16, times 2 FLOP per MAC, times ``freq_GHz``, times ``matmul_dtype_rate[dtype]``.

    The fitted fields (``hwmodels.calibration.FITTED_KEYS``) default to None, "not set by the
    preset": ``__post_init__`` gives them the shipped fit's values, and a run with
    ``calibration=<path>`` fills them from that fit before (sim/config/compose.py).
    """

    name: str = "custom"
    description: str = ""
    # Compute arrays.
    num_cores: int = 1  # SMs, TensorCores, CUs: the units a matmul's tiles are spread over
    arrays_per_core: int = 1  # matrix units (tensor cores, MXUs) per core
    array_rows: int = 128  # MAC array rows (the M side of an output tile)
    array_cols: int = 128  # MAC array columns (the N side of an output tile)
    freq_GHz: float = 1.0  # clock at which the datasheet peak is quoted
    # MACs per cycle of each format relative to bf16; a format not listed is not supported.
    matmul_dtype_rate: dict[str, float] = field(default_factory=lambda: {"bf16": 1.0})
    # Per cycle, the silicon; each may be given instead at freq_GHz (AT_CLOCK), turned into it once, so a clock change
    # moves the rate, not the silicon. The vector unit's FP32 FMA lanes, 2 FLOP each per cycle (neither given: 10
    # TFLOP/s); the on-chip SRAM's bytes per cycle (it runs in the cores' clock domain; neither given: 10 TB/s).
    vector_lanes: float | None = None
    vector_TFLOPS: float | None = None
    sram_bytes_per_cycle: float | None = None
    sram_bandwidth_TBps: float | None = None
    sram_MiB: float = 32.0  # on-chip SRAM (L2 / shared memory / VMEM) usable for tiles
    hbm_capacity_GB: float = 32.0
    hbm_bandwidth_GBps: float = 1000.0
    # Links.
    link_bandwidth_GBps: float = 100.0  # per direction, per chip, all of its links together
    link_latency_us: float | None = None  # per hop, per collective step
    topology: Topology = Topology.switch
    max_chips: int = 8  # chips reachable over this fabric (one NVLink domain, one pod slice)
    switch_reduction: bool = False  # the switch reduces and multicasts (NVLink SHARP); ignored off a switch
    allreduce_algorithm: CollectiveAlgorithm = CollectiveAlgorithm.auto
    # Fraction of per-direction link bandwidth a long ring collective reaches; None: LINK_EFFICIENCY
    # (1.0 on an ideal chip). A fact of the link and its collective library, set per preset with its source.
    link_efficiency: float | None = None
    collective_latency_us: float | None = None  # fixed software latency per collective (NCCL's base latency)
    link_saturation_MB: float | None = None  # payload per chip from which collectives reach plateau
    link_ramp_exponent: float | None = None  # below it, bandwidth grows as size ** exponent
    # Host interface per direction (PCIe 4.0 x16: 32 GB/s); a serving run swaps KV blocks to host memory over it.
    host_link_GBps: float = 32.0
    # Achieved fractions of peak and fixed costs (see hwmodels/compute.py and memory.py).
    matmul_efficiency: float | None = None  # fraction of peak a large, perfectly tiled matmul reaches at its clock
    vector_efficiency: float = 0.9
    # Fraction of peak bandwidth a long streaming transfer reaches; None: the memory generation's
    # published STREAM-class fraction (hwmodels/process.py HBM), a property of the memory, not fitted.
    hbm_efficiency: float | None = None
    hbm_latency_us: float | None = None  # fixed latency per op's memory traffic (first byte)
    kernel_overhead_us: float | None = None  # launch + synchronisation per kernel (per op), absolute time
    matmul_overhead_cycles: float | None = None  # extra per matrix kernel in clock cycles: prologue, epilogue
    # How far a GEMM's operand loads and its multiply-accumulates fall short of overlapping
    # (hwmodels/compute.py overlapped): 0 = perfectly (time = the larger), 1 = not at all (the sum).
    matmul_overlap_loss: float | None = None
    # The GEMM library's tile scheduling (GemmSchedule) and the architecture family that names which
    # published attention-kernel efficiencies apply (hwmodels/kernels.py); "generic": none published.
    gemm_schedule: GemmSchedule = GemmSchedule.waves
    architecture: str = "generic"
    # An idealised chip for teaching and what-ifs: fitted fields it does not set take IDEAL's values
    # (every kernel at peak, no fixed costs) instead of the A100 fit, and its clock never throttles.
    ideal: bool = False
    # Energy, area and cost (hwmodels/energy.py, area.py, cost.py).
    process_node: str = "7nm"  # logic process, a key of hwmodels.process.NODES ("4nm" = NVIDIA 4N)
    hbm_generation: str = "hbm2e"  # a key of hwmodels.process.HBM: access energy, background power, $/GB
    # HBM stacks on the package (PHYs on the die edge, background power, interposer). None: the
    # fewest of hbm_generation that give hbm_bandwidth_GBps and hbm_capacity_GB; a count too small
    # for them is raised to it (hwmodels/hbm_stacks.py; the summary says so).
    hbm_stacks: int | None = None
    # Board power limit (TDP): the sustained clock drops to stay within it when power.cap is on
    # (hwmodels/power.py); 0 = unknown, never throttled.
    board_power_W: float = 0.0
    published_die_area_mm2: float = 0.0  # all dies together; 0 = unknown; only compared with the model
    num_dies: int = 1  # dies (chiplets) the chip's logic is split over; a die over the reticle needs more
    spare_cores: int = 0  # cores on the silicon beyond num_cores, disabled for yield (GA100: 128 - 108)
    core_sram_KiB: float = 0.0  # SRAM in each core not in sram_MiB (register files, L1 / shared memory, LDS)
    other_sram_MiB: float = 0.0  # chip-wide SRAM not in sram_MiB (disabled cache slices, TPU CMEM)

    def __post_init__(self) -> None:
        defaults = IDEAL if self.ideal else FITTED
        for key in FITTED_KEYS:  # None: not set by the preset or the user, so the fit's value
            if getattr(self, key) is None:
                setattr(self, key, defaults[key])
        if self.hbm_efficiency is None:  # the memory generation's achievable streaming fraction
            from hwmodels.process import HBM  # process.py is a leaf; imported here as validate() does

            generation = HBM.get(self.hbm_generation)
            self.hbm_efficiency = 1.0 if self.ideal or generation is None else generation.stream_fraction
        if self.link_efficiency is None:
            self.link_efficiency = 1.0 if self.ideal else LINK_EFFICIENCY
        self.validate()

    def validate(self) -> None:
        """Raise HardwareError naming the first impossible field (checked in this order)."""
        where = f"hardware '{self.name}'"
        self._validate_numbers(where)
        self._validate_formats(where)
        self._validate_links(where)
        self._validate_economics(where)

    def _validate_numbers(self, where: str) -> None:
        """Counts, rates, sizes, latencies and efficiencies: whole, positive, finite, in range."""
        for key in ("num_cores", "arrays_per_core", "array_rows", "array_cols", "max_chips"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise HardwareError(f"{where}: hardware.{key} must be a whole number >= 1 (got {value})")
        for key in ("freq_GHz", "sram_MiB", "hbm_capacity_GB", "hbm_bandwidth_GBps", "link_bandwidth_GBps",
                    "host_link_GBps"):
            value = getattr(self, key)
            if not (value > 0 and math.isfinite(value)):
                raise HardwareError(f"{where}: hardware.{key} must be a finite number > 0 (got {value})")
        for key in ("link_latency_us", "hbm_latency_us", "kernel_overhead_us", "matmul_overhead_cycles"):
            value = getattr(self, key)
            if not value >= 0:
                raise HardwareError(f"{where}: hardware.{key} must be >= 0 (got {value})")
        if not 0 <= self.matmul_overlap_loss < 1:
            raise HardwareError(f"{where}: hardware.matmul_overlap_loss must be in [0, 1) "
                                f"(got {self.matmul_overlap_loss})")
        for key in ("matmul_efficiency", "vector_efficiency", "hbm_efficiency"):
            value = getattr(self, key)
            if not MIN_EFFICIENCY <= value <= 1:
                raise HardwareError(f"{where}: hardware.{key} must be in [{MIN_EFFICIENCY:g}, 1] (got {value}); "
                                    "kernels reach 0.3-0.95 of a peak")
        self._per_cycle(where, "vector_lanes", "vector_TFLOPS", 2.0,
                        "a preset gives lanes: to set the peak, add hardware.vector_lanes=null")
        self._per_cycle(where, "sram_bytes_per_cycle", "sram_bandwidth_TBps", 1.0,
                        "a preset gives bytes per cycle: to set the bandwidth, add hardware.sram_bytes_per_cycle=null")
        for key in LIMITS:
            if key != "matmul_dtype_rate" and getattr(self, key, None) is not None:
                check_limit(where, key, getattr(self, key))

    def _per_cycle(self, where: str, silicon: str, at_clock: str, per: float, hint: str) -> None:
        """``silicon`` (per cycle) from ``at_clock`` (tera-units/s at freq_GHz, ``per`` units each per cycle)."""
        given = {key: getattr(self, key) for key in (silicon, at_clock) if getattr(self, key) is not None}
        if len(given) == 2:
            raise HardwareError(f"{where}: set hardware.{silicon} or hardware.{at_clock}, not both (got "
                                f"{given[silicon]:g} and {given[at_clock]:g}); {hint}")
        for key, value in given.items():
            if not (value > 0 and math.isfinite(value)):
                raise HardwareError(f"{where}: hardware.{key} must be a finite number > 0 (got {value})")
        if getattr(self, silicon) is None:
            rate = given.get(at_clock, 10.0)
            check_limit(where, at_clock, rate)
            setattr(self, silicon, rate * 1e12 / (per * self.freq_Hz))
        setattr(self, at_clock, None)

    def _validate_formats(self, where: str) -> None:
        """The matrix arrays' formats: at least one, each a known format with a rate > 0."""
        if not self.matmul_dtype_rate:
            raise HardwareError(f"{where}: hardware.matmul_dtype_rate is empty; list at least one format")
        for name, rate in self.matmul_dtype_rate.items():
            try:
                parse_dtype(name, f"{where}: hardware.matmul_dtype_rate")
            except ValueError as err:
                raise HardwareError(str(err)) from None
            if not rate > 0:
                raise HardwareError(
                    f"{where}: hardware.matmul_dtype_rate.{name} must be > 0 (got {rate}); "
                    "remove the entry if the chip lacks the format"
                )
            check_limit(where, f"matmul_dtype_rate.{name}", rate)

    def _validate_links(self, where: str) -> None:
        """Topology, collective algorithm and the link model; turns the two names into enums."""
        try:
            self.topology = Topology(self.topology)
            self.allreduce_algorithm = CollectiveAlgorithm(self.allreduce_algorithm)
            self.gemm_schedule = GemmSchedule(self.gemm_schedule)
        except ValueError as err:
            raise HardwareError(f"{where}: {err}; see hwmodels.chip.Topology, CollectiveAlgorithm and "
                                "GemmSchedule") from None
        if not MIN_EFFICIENCY <= self.link_efficiency <= 1:
            raise HardwareError(f"{where}: hardware.link_efficiency must be in [{MIN_EFFICIENCY:g}, 1] "
                                f"(got {self.link_efficiency})")
        if not (self.link_saturation_MB > 0 and self.link_ramp_exponent >= 0):
            raise HardwareError(f"{where}: hardware.link_saturation_MB must be > 0 and hardware.link_ramp_exponent "
                                f">= 0 (got {self.link_saturation_MB}, {self.link_ramp_exponent})")
        if not self.collective_latency_us >= 0:
            raise HardwareError(
                f"{where}: hardware.collective_latency_us must be >= 0 (got {self.collective_latency_us})"
            )
        if self.allreduce_algorithm is CollectiveAlgorithm.in_switch and (
            self.topology is not Topology.switch or not self.switch_reduction
        ):
            raise HardwareError(
                f"{where}: hardware.allreduce_algorithm=in_switch needs hardware.topology=switch and "
                f"hardware.switch_reduction=true (got {self.topology.value}, {self.switch_reduction}); "
                "set them or choose auto, ring or tree"
            )

    def _validate_economics(self, where: str) -> None:
        """Energy, area and cost fields; then the reticle (hwmodels/area.py)."""
        from hwmodels.area import die_area, reticle_problem  # area.py reads this class
        from hwmodels.process import hbm_generation, process_node

        for key, lookup in (("process_node", process_node), ("hbm_generation", hbm_generation)):
            try:
                lookup(getattr(self, key))
            except ValueError as err:
                raise HardwareError(f"{where}: hardware.{key}: {err}") from None
        for key in ("hbm_stacks", "num_dies"):
            value = getattr(self, key)
            if not (value is None and key == "hbm_stacks") and (not isinstance(value, int) or value < 1):
                raise HardwareError(f"{where}: hardware.{key} must be a whole number >= 1 (got {value})")
        self._resolve_stacks(where)
        if not isinstance(self.spare_cores, int) or self.spare_cores < 0:
            raise HardwareError(f"{where}: hardware.spare_cores must be a whole number >= 0 (got {self.spare_cores})")
        for key in ("board_power_W", "published_die_area_mm2", "core_sram_KiB", "other_sram_MiB"):
            value = getattr(self, key)
            if not value >= 0:
                raise HardwareError(f"{where}: hardware.{key} must be >= 0 (got {value})")
        problem = reticle_problem(self, die_area(self))
        if problem:
            raise HardwareError(f"{where}: {problem}")

    def _resolve_stacks(self, where: str) -> None:
        """The stacks needed for the bandwidth and capacity (hwmodels/hbm_stacks.py); note why when derived."""
        from hwmodels.hbm_stacks import stacks_for, stacks_note, unreachable
        from hwmodels.process import hbm_generation

        generation = hbm_generation(self.hbm_generation)
        problem = unreachable(generation, self.hbm_bandwidth_GBps, self.hbm_capacity_GB, self.num_dies)
        if problem:
            raise HardwareError(f"{where}: {problem}")
        needed = stacks_for(generation, self.hbm_bandwidth_GBps, self.hbm_capacity_GB)
        note = stacks_note(self.hbm_stacks, needed, generation, self.hbm_bandwidth_GBps, self.hbm_capacity_GB)
        if note:
            self.hbm_stacks = needed
        self.hbm_stacks_note = getattr(self, "hbm_stacks_note", "") or note  # kept when validated again

    # SI views -------------------------------------------------------------------------------
    @property
    def freq_Hz(self) -> float:
        return self.freq_GHz * 1e9

    @property
    def num_arrays(self) -> int:
        """Matrix arrays on the chip."""
        return self.num_cores * self.arrays_per_core

    @property
    def macs_per_cycle(self) -> int:
        """bf16 multiply-accumulates per cycle over the whole chip."""
        return self.num_arrays * self.array_rows * self.array_cols

    def supports(self, dtype: DType) -> bool:
        return dtype.value in self.matmul_dtype_rate

    def matmul_dtype(self, dtype: DType) -> DType | None:
        """The format a matmul in ``dtype`` runs in on this chip's arrays, or None for none.

        A format the arrays lack is converted to the narrowest supported format of the same
        kind (float or integer) at least as wide: fp8 on a chip without fp8 runs as bf16/fp16,
        int4 as int8. tf32 is never chosen for another format (it drops precision). With no
        such format (fp32 on most GPUs) the matmul runs on the vector unit.
        """
        if self.supports(dtype):
            return dtype
        candidates = sorted(
            (DType(n) for n in self.matmul_dtype_rate
             if DType(n).is_integer == dtype.is_integer and DType(n).bits >= dtype.bits and n != "tf32"),
            key=lambda d: (d.bits, d.value != "bf16"),
        )
        if not candidates and dtype.is_integer:  # integers with no integer arrays: a 16-bit float
            candidates = sorted((DType(n) for n in self.matmul_dtype_rate if DType(n).bits == 16),
                                key=lambda d: d.value)
        return candidates[0] if candidates else None

    def peak_flops(self, dtype: DType) -> float:
        """Peak dense matrix FLOP/s for ``dtype`` (after conversion; the vector unit's if none)."""
        run_as = self.matmul_dtype(dtype)
        if run_as is None:
            return self.vector_flops
        return 2.0 * self.macs_per_cycle * self.freq_Hz * self.matmul_dtype_rate[run_as.value]

    @property
    def vector_flops(self) -> float:
        """Vector unit peak FLOP/s: 2 per FMA lane per cycle."""
        return 2.0 * self.vector_lanes * self.freq_Hz

    @property
    def sram_bytes(self) -> float:
        return self.sram_MiB * MiB

    @property
    def sram_bandwidth_Bps(self) -> float:
        return self.sram_bytes_per_cycle * self.freq_Hz  # bytes per cycle x cycles per second

    @property
    def hbm_capacity_bytes(self) -> float:
        return self.hbm_capacity_GB * GB

    @property
    def hbm_bandwidth_Bps(self) -> float:
        return self.hbm_bandwidth_GBps * GB

    @property
    def link_bandwidth_Bps(self) -> float:
        return self.link_bandwidth_GBps * GB

    @property
    def host_link_Bps(self) -> float:
        return self.host_link_GBps * GB

    @property
    def link_latency_s(self) -> float:
        return self.link_latency_us * 1e-6

    @property
    def hbm_latency_s(self) -> float:
        return self.hbm_latency_us * 1e-6

    @property
    def kernel_overhead_s(self) -> float:
        return self.kernel_overhead_us * 1e-6

    @property
    def matmul_overhead_s(self) -> float:
        return self.matmul_overhead_cycles / self.freq_Hz

    @property
    def ridge_flop_per_byte(self) -> float:
        """Arithmetic intensity (FLOP/byte) where bf16 compute and HBM bandwidth meet."""
        return self.peak_flops(DType.bf16) / self.hbm_bandwidth_Bps
