"""The join: what an op of the workload costs on the chip. The one place both layers meet.

Per op: compute seconds (matrix arrays or vector unit), HBM seconds, link seconds (latency
plus transfer) and a fixed overhead. Alone on the chip an op takes

    time = overhead + link_latency + max(compute, memory, link_transfer)

The units work in parallel; the fixed delays do not overlap with them: the overhead (kernel
launch and synchronisation) comes first, and a collective's per-step latency is paid before
its bytes flow. The bound is whichever of compute, memory, interconnect (latency plus
transfer) and overhead needs the most time. A resource declared beyond the built-in four
(``sim.engine.resources.Resource.extra``) adds its seconds (``OpCost.extra_s``) to the max and
to its bound's need.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from hwmodels.chip import HardwareConfig
from hwmodels.compute import ComputeCost, matmul_time, overlapped, vector_time
from hwmodels.kernels import attention_efficiency
from hwmodels.links import Collective
from hwmodels.memory import hbm_time, matmul_hbm_bytes
from hwmodels.network import Network, tiered_time
from hwmodels.numerics import DType
from hwmodels.power import PowerBudget
from workloads.ops import Op, OpKind, Role, Unit


class Bound(str, Enum):
    compute = "compute"
    memory = "memory"
    interconnect = "interconnect"
    overhead = "overhead"


BOUNDS = tuple(b.value for b in Bound)

_COLLECTIVE = {OpKind.allreduce: Collective.allreduce, OpKind.allgather: Collective.allgather,
               OpKind.alltoall: Collective.alltoall, OpKind.send: Collective.sendrecv}


@dataclass(frozen=True, slots=True)
class OpCost:
    """Seconds each resource needs for one op, alone on the chip."""

    compute_s: float
    memory_s: float
    link_latency_s: float
    link_transfer_s: float
    overhead_s: float
    efficiency: float  # achieved fraction of the compute unit's peak
    hbm_bytes: float  # HBM traffic as scheduled (re-reads included when operands outgrow SRAM)
    link_bytes: float  # bytes this chip puts on its links
    dtype_run: DType | None  # format the arrays ran in (after conversion); None: the vector unit
    clock_ratio: float = 1.0  # fraction of the boost clock sustained under the power budget (hwmodels/power.py)
    extra_s: tuple[tuple[str, Bound, float], ...] = ()  # (name, bound, seconds) on resources beyond the built-ins

    def extra(self, name: str) -> float:
        """Seconds on the extra resource ``name`` (0 when the op does not use it)."""
        return next((s for n, _, s in self.extra_s if n == name), 0.0)

    @property
    def link_s(self) -> float:
        return self.link_latency_s + self.link_transfer_s

    @property
    def delay_s(self) -> float:
        """Fixed delays that use no bandwidth: overhead, then the collective's latency."""
        return self.overhead_s + self.link_latency_s

    @property
    def time_s(self) -> float:
        return self.delay_s + max(self.compute_s, self.memory_s, self.link_transfer_s, *(s for _, _, s in self.extra_s))

    @property
    def bound(self) -> Bound:
        """The resource that needs the most time (ties: compute, memory, interconnect, overhead); an
        extra resource's seconds count toward its own bound."""
        needs = {Bound.compute: self.compute_s, Bound.memory: self.memory_s, Bound.interconnect: self.link_s,
                 Bound.overhead: self.overhead_s}
        for _, bound, seconds in self.extra_s:
            needs[bound] = max(needs[bound], seconds)
        return max(needs.items(), key=lambda pair: pair[1])[0]


def send_op(nbytes: float, nodes: int = 1) -> Op:
    """A point-to-point send of ``nbytes`` from one chip to its peer (a pipeline stage's hidden states,
    a KV cache moved between serving instances); ``nodes=2``: the peer is in another scale-up domain."""
    return Op("send", OpKind.send, Unit.link, 0.0, comm_bytes=float(nbytes), comm_chips=2, comm_nodes=nodes)


def _stored_width(op: Op) -> float:
    """Bytes per element of a matmul's B operand as stored (packed quantized weights stream
    through SRAM packed); the compute format's width when B is not a weight."""
    weights = [t for t in op.reads if t.role is Role.weight]
    if not weights or not op.k or not op.n:
        return op.dtype.bytes
    return min(op.dtype.bytes, weights[0].nbytes / (op.k * op.n * op.groups))


class Coster:
    """Costs ops on one chip, each distinct op once (a cache per run, never per module).

    ``resources``: the chip's declared resources (``sim.engine.resources.RESOURCES``); those with a
    ``price`` function (beyond the built-in four) have their seconds computed into ``OpCost.extra_s``.
    ``in_switch``: the runtime's collective library may reduce in the switch (RuntimeConfig.in_switch_reduction).
    ``network``: the scale-out network between scale-up domains, for ops whose chips span domains
    (``Op.comm_nodes > 1``: hwmodels/network.py); None where the system has none.
    ``cap``: the board power budget caps the clock (PowerConfig.cap).
    """

    def __init__(self, chip: HardwareConfig, resources: tuple = (), in_switch: bool = True,
                 network: Network | None = None, cap: bool = True) -> None:
        self.chip = chip
        self.in_switch = in_switch
        self.network = network
        self.extra = tuple(r for r in resources if r.price is not None)
        self.power = PowerBudget.of(chip, cap)
        self._cache: dict[Op, OpCost] = {}
        self._tilings: dict = {}  # this chip's tilings by row tiles (hwmodels.compute.tile_matmul)

    def __call__(self, op: Op) -> OpCost:
        cost = self._cache.get(op)
        if cost is None:
            cost = self._cache[op] = self._cost(op)
        return cost

    def affine(self, op: Op) -> bool:
        """Whether the op's costs are affine in its FLOPs and bytes (so an op of mean FLOPs and bytes costs
        the mean): a vector op, or a fused attention kernel with a published efficiency (no tiling, clock or
        overlap model); never with extra resources (their prices are arbitrary functions)."""
        if self.extra:
            return False
        if op.unit is Unit.vector:
            return True
        return (op.unit is Unit.matrix and op.kind is OpKind.attention and op.groups != 1 and not op.dequant_flops
                and attention_efficiency(op.kernel, self.chip.architecture,
                                         self.chip.matmul_dtype(op.dtype) or op.dtype) is not None)

    def _cost(self, op: Op) -> OpCost:
        chip = self.chip
        latency = transfer = wire = 0.0
        published = None
        if op.unit is Unit.matrix and op.kind is OpKind.attention:
            published = attention_efficiency(op.kernel, chip.architecture, chip.matmul_dtype(op.dtype) or op.dtype)
        if published is not None:  # a kernel family measured on this architecture (hwmodels/kernels.py)
            run_as = chip.matmul_dtype(op.dtype)
            c = ComputeCost(op.flops / (chip.peak_flops(op.dtype) * published), published, run_as)
        elif op.unit is Unit.matrix:
            c = matmul_time(chip, op.m, op.n, op.k, op.dtype, op.groups, op.flops, op.dtype.bytes,
                            _stored_width(op), self._tilings)
            if op.dequant_flops:  # weight-only quantization: widen the weights, then multiply
                c = replace(c, seconds=c.seconds + vector_time(chip, op.dequant_flops).seconds)
        else:
            c = vector_time(chip, op.flops)
        if op.unit is Unit.link:
            coll = tiered_time(chip, _COLLECTIVE[op.kind], op.comm_bytes, op.comm_chips, op.comm_nodes, self.network,
                               self.in_switch)
            latency, transfer, wire = coll.latency_s, coll.transfer_s, coll.wire_bytes
        traffic = self._traffic(op) + c.partial_bytes  # split-K partial sums go through HBM
        memory = hbm_time(chip, traffic)
        ratio = 1.0
        if op.unit is Unit.matrix and c.dtype_run is not None and published is None:  # clock under the power budget
            core_J = self.power.matmul_core_J(op.flops, c.dtype_run)
            ratio = self.power.clock_ratio(core_J, self.power.memory_J(traffic), c.seconds, memory)
            c = replace(c, seconds=c.seconds / ratio, efficiency=c.efficiency * ratio)
            both = overlapped(chip, c.seconds, memory)  # loads and MACs overlap imperfectly near balance
            if c.seconds >= memory:
                c = replace(c, seconds=both, efficiency=c.efficiency * c.seconds / both)
            else:
                memory = both
        elif published is not None and c.dtype_run is not None:  # measured time; only its energy scales
            core_J = self.power.matmul_core_J(op.flops, c.dtype_run)
            ratio = self.power.fixed_time_ratio(core_J, self.power.memory_J(traffic), max(c.seconds, memory))
        overhead = chip.kernel_overhead_s + (chip.matmul_overhead_s if op.unit is Unit.matrix else 0.0)
        if c.partial_bytes:  # split-K: a second kernel reduces the partial sums
            overhead += chip.kernel_overhead_s
        extra = tuple((r.name, r.bound, r.price(chip, op)) for r in self.extra)
        return OpCost(c.seconds, memory, latency, transfer, overhead,
                      c.efficiency, traffic, wire, c.dtype_run, ratio, extra)

    def _traffic(self, op: Op) -> float:
        """HBM bytes: a projection GEMM blocked for the SRAM; other ops move each tensor once."""
        if op.unit is not Unit.matrix or op.groups != 1 or len(op.reads) < 2 or not op.writes:
            return op.hbm_bytes
        a, b, c = op.reads[0].nbytes, op.reads[1].nbytes, op.writes[0].nbytes
        rest = op.hbm_bytes - a - b - c
        return matmul_hbm_bytes(self.chip, op.m, op.n, op.k, a, b, c) + rest

    @property
    def distinct_ops(self) -> int:
        return len(self._cache)
