"""The join: what an op of the workload costs on the chip. The one place both layers meet.

Per op: compute seconds (matrix arrays or vector unit), HBM seconds, link seconds (latency
plus transfer) and a fixed overhead. Alone on the chip an op takes

    time = overhead + link_latency + max(compute, memory, link_transfer)

The units work in parallel; the fixed delays do not overlap with them: the overhead (kernel
launch and synchronisation) comes first, and a collective's per-step latency is paid before
its bytes flow. The bound is whichever of compute, memory, interconnect (latency plus
transfer) and overhead needs the most time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hwmodels.chip import HardwareConfig
from hwmodels.compute import matmul_time, vector_time
from hwmodels.links import Collective, collective_time
from hwmodels.memory import hbm_time
from hwmodels.numerics import DType
from workloads.ops import Op, OpKind, Unit


class Bound(str, Enum):
    compute = "compute"
    memory = "memory"
    interconnect = "interconnect"
    overhead = "overhead"


BOUNDS = tuple(b.value for b in Bound)

_COLLECTIVE = {OpKind.allreduce: Collective.allreduce, OpKind.allgather: Collective.allgather}


@dataclass(frozen=True, slots=True)
class OpCost:
    """Seconds each resource needs for one op, alone on the chip."""

    compute_s: float
    memory_s: float
    link_latency_s: float
    link_transfer_s: float
    overhead_s: float
    efficiency: float  # achieved fraction of the compute unit's peak
    dtype_run: DType | None  # format the arrays ran in (after conversion); None: the vector unit

    @property
    def link_s(self) -> float:
        return self.link_latency_s + self.link_transfer_s

    @property
    def delay_s(self) -> float:
        """Fixed delays that use no bandwidth: overhead, then the collective's latency."""
        return self.overhead_s + self.link_latency_s

    @property
    def time_s(self) -> float:
        return self.delay_s + max(self.compute_s, self.memory_s, self.link_transfer_s)

    @property
    def bound(self) -> Bound:
        """The resource that needs the most time (ties: compute, memory, interconnect, overhead)."""
        needs = (
            (self.compute_s, Bound.compute),
            (self.memory_s, Bound.memory),
            (self.link_s, Bound.interconnect),
            (self.overhead_s, Bound.overhead),
        )
        return max(needs, key=lambda pair: pair[0])[1]


class Coster:
    """Costs ops on one chip, each distinct op once (a cache per run, never per module)."""

    def __init__(self, chip: HardwareConfig) -> None:
        self.chip = chip
        self._cache: dict[Op, OpCost] = {}

    def __call__(self, op: Op) -> OpCost:
        cost = self._cache.get(op)
        if cost is None:
            cost = self._cache[op] = self._cost(op)
        return cost

    def _cost(self, op: Op) -> OpCost:
        chip = self.chip
        latency = transfer = 0.0
        if op.unit is Unit.matrix:
            c = matmul_time(chip, op.m, op.n, op.k, op.dtype, op.groups, op.flops)
        else:
            c = vector_time(chip, op.flops)
        if op.unit is Unit.link:
            coll = collective_time(chip, _COLLECTIVE[op.kind], op.comm_bytes, op.comm_chips)
            latency, transfer = coll.latency_s, coll.transfer_s
        return OpCost(c.seconds, hbm_time(chip, op.hbm_bytes), latency, transfer, chip.kernel_overhead_s,
                      c.efficiency, c.dtype_run)

    @property
    def distinct_ops(self) -> int:
        return len(self._cache)
