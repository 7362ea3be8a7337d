"""The scalar ``Coster`` (sim/engine/costing.py) over many chips at once: one numpy column per op.

The twin of ``Coster._cost``, line for line: the same formulas in the same order, with the chip's
figures as arrays over design points (``ChipArrays``) and each op's shape as scalars. Every branch
the scalar path takes on a value becomes a mask; the autotuner's tile choice is the scalar's
sequential "strictly faster replaces" over the same candidate order (so ties resolve alike); the
power-limited clock is the same 40-step bisection on arrays. Helpers that hold a formula live in
``sim.engine.vector_parts``. A formula changed in hwmodels/ must be changed here too;
``tests/test_vector.py`` draws random points and fails on any difference beyond 1e-9.

``VectorCosts`` holds, per op column j and point p, what ``OpCost`` holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwmodels.energy import SRAM_TILE_M, SRAM_TILE_N
from hwmodels.kernels import attention_efficiency
from hwmodels.numerics import DType
from sim.engine.costing import _stored_width
from sim.engine.vector_chips import ChipArrays
from sim.engine.vector_parts import (
    Unsupported,
    clock_ratio,
    collective_columns,
    fixed_time_ratio,
    hbm_time,
    matmul_traffic,
    memory_J,
    overlapped,
)
from sim.engine.vector_tiling import choose_tiles
from workloads.ops import Op, OpKind, Unit

UNITS = (Unit.matrix, Unit.vector, Unit.link)


@dataclass
class VectorCosts:
    """Per point (rows) and op (columns): the fields of ``OpCost``; ``bound`` as an index into BOUNDS."""

    compute_s: np.ndarray
    memory_s: np.ndarray
    link_latency_s: np.ndarray
    link_transfer_s: np.ndarray
    overhead_s: np.ndarray
    efficiency: np.ndarray
    hbm_bytes: np.ndarray
    link_bytes: np.ndarray
    clock_ratio: np.ndarray
    dtype_run: list  # per op: DType, or None (vector unit)

    @property
    def time_s(self) -> np.ndarray:
        delay = self.overhead_s + self.link_latency_s
        return delay + np.maximum(np.maximum(self.compute_s, self.memory_s), self.link_transfer_s)

    @property
    def bound(self) -> np.ndarray:
        """0 compute, 1 memory, 2 interconnect, 3 overhead: the first of the largest needs (scalar ties)."""
        link = self.link_latency_s + self.link_transfer_s
        return np.argmax(np.stack([self.compute_s, self.memory_s, link, self.overhead_s]), axis=0)


def cost_ops(chips: ChipArrays, ops: list[Op], in_switch: bool = True) -> VectorCosts:
    """The cost of every op of ``ops`` on every chip of ``chips``: arrays of shape (points, ops)."""
    for op in ops:
        if op.comm_nodes > 1 or op.host_bytes:
            raise Unsupported("scale-out collectives or KV cache spilled to the host")
    shape = (chips.size, len(ops))
    out = {name: np.zeros(shape) for name in ("compute_s", "memory_s", "link_latency_s", "link_transfer_s",
                                               "overhead_s", "efficiency", "hbm_bytes", "link_bytes")}
    out["clock_ratio"] = np.ones(shape)
    dtypes = []
    links = [j for j, op in enumerate(ops) if op.unit is Unit.link]
    if links:
        lat, transfer, wire = collective_columns(chips, [ops[j] for j in links], in_switch)
        out["link_latency_s"][:, links], out["link_transfer_s"][:, links] = lat, transfer
        out["link_bytes"][:, links] = wire
    tiled, throttled = _tilings(chips, ops), {}
    for j, op in enumerate(ops):
        dtypes.append(_cost_column(chips, op, j, out, tiled.get(j), throttled))
    _throttle(chips, out, throttled)
    return VectorCosts(**out, dtype_run=dtypes)


def _tiled(chips: ChipArrays, op: Op) -> bool:
    """Whether the op's arithmetic goes through the tiling model (Coster: a matmul with no published kernel)."""
    if op.unit is not Unit.matrix or min(op.m, op.n, op.k, op.groups) <= 0 or op.flops <= 0:
        return False
    rep = chips.rep
    if rep.matmul_dtype(op.dtype) is None:
        return False
    return op.kind is not OpKind.attention or attention_efficiency(
        op.kernel, rep.architecture, rep.matmul_dtype(op.dtype) or op.dtype) is None


def _tilings(chips: ChipArrays, ops: list[Op]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{column: (seconds, partial bytes)} of every tiled matmul, all tiled together."""
    cols = [j for j, op in enumerate(ops) if _tiled(chips, op)]
    if not cols:
        return {}
    mm = [ops[j] for j in cols]

    def ints(name):
        return np.array([getattr(op, name) for op in mm], dtype=np.int64)

    rates = np.stack([chips.rate[chips.rep.matmul_dtype(op.dtype).value] for op in mm], axis=1)
    seconds, partial = choose_tiles(chips, ints("m"), ints("n"), ints("k"), ints("groups"),
                                   np.array([op.dtype.bytes for op in mm], dtype=float),
                                   np.array([_stored_width(op) for op in mm], dtype=float), rates)
    return {j: (seconds[:, i], partial[:, i]) for i, j in enumerate(cols)}


def _compute(chips: ChipArrays, op: Op, tiled) -> tuple[np.ndarray, np.ndarray, DType | None, np.ndarray, bool]:
    """(seconds, efficiency, format run, split-K partial bytes, published) of the op's arithmetic."""
    rep, zero = chips.rep, np.zeros(chips.size)
    vector_rate = chips.vector_flops * chips.vector_efficiency
    published = None
    if op.unit is Unit.matrix and op.kind is OpKind.attention:
        published = attention_efficiency(op.kernel, rep.architecture, rep.matmul_dtype(op.dtype) or op.dtype)
    if published is not None:
        run_as = rep.matmul_dtype(op.dtype)
        return op.flops / (chips.peak[op.dtype] * published), np.full(chips.size, published), run_as, zero, True
    if op.unit is Unit.matrix:
        seconds, eff, run_as, partial = _matmul(chips, op, tiled)
        if op.dequant_flops:
            dequant = op.dequant_flops / vector_rate if op.dequant_flops > 0 else zero
            seconds = seconds + dequant
        return seconds, eff, run_as, partial, False
    seconds = op.flops / vector_rate if op.flops > 0 else zero
    return seconds, chips.vector_efficiency.copy(), DType.fp32, zero, False


def _matmul(chips: ChipArrays, op: Op, tiled) -> tuple[np.ndarray, np.ndarray, DType | None, np.ndarray]:
    """hwmodels.compute.matmul_time over the chips."""
    m, n, k, groups, flops = op.m, op.n, op.k, op.groups, op.flops
    dense = 2.0 * m * n * k * groups
    run_as = chips.rep.matmul_dtype(op.dtype)
    zero = np.zeros(chips.size)
    if min(m, n, k, groups) <= 0 or flops <= 0:
        return zero, np.ones(chips.size), run_as, zero
    if run_as is None:
        eff = chips.vector_efficiency
        return flops / (chips.vector_flops * eff), eff.copy(), None, zero
    seconds = tiled[0] * (flops / dense)
    partial = tiled[1]
    return seconds, flops / (chips.peak[run_as] * seconds), run_as, partial


def _traffic(chips: ChipArrays, op: Op) -> np.ndarray | float:
    """HBM bytes: a projection GEMM blocked for the SRAM; other ops move each tensor once."""
    if op.unit is not Unit.matrix or op.groups != 1 or len(op.reads) < 2 or not op.writes:
        return op.hbm_bytes
    a, b, c = op.reads[0].nbytes, op.reads[1].nbytes, op.writes[0].nbytes
    rest = op.hbm_bytes - a - b - c
    return matmul_traffic(chips.sram_bytes, op.m, op.n, op.k, a, b, c) + rest


def _cost_column(chips: ChipArrays, op: Op, j: int, out: dict, tiled, throttled: dict) -> DType | None:
    """Fill column ``j`` of ``out`` with the op's cost on every chip (Coster._cost) up to the power-limited
    clock, which ``_throttle`` applies to every matrix column at once; return the format run."""
    seconds, eff, run_as, partial, published = _compute(chips, op, tiled)
    traffic = _traffic(chips, op) + partial
    traffic = np.broadcast_to(np.asarray(traffic, dtype=float), (chips.size,))
    memory = hbm_time(chips, traffic)
    core_J = None
    if op.unit is Unit.matrix and run_as is not None:
        macs = op.flops / 2
        core_J = macs * (chips.mac_J[run_as] + run_as.bytes * (1 / SRAM_TILE_M + 1 / SRAM_TILE_N) * chips.sram_J)
    if core_J is not None and not published:
        throttled[j] = core_J
    elif core_J is not None:  # a measured kernel time: only its energy scales (PowerBudget.fixed_time_ratio)
        longest = np.maximum(seconds, memory)
        out["clock_ratio"][:, j] = fixed_time_ratio(chips, core_J, memory_J(chips, traffic), longest)
    overhead = chips.kernel_overhead_s + (chips.matmul_overhead_s if op.unit is Unit.matrix else 0.0)
    overhead = np.where(partial != 0, overhead + chips.kernel_overhead_s, overhead)
    out["compute_s"][:, j], out["memory_s"][:, j], out["overhead_s"][:, j] = seconds, memory, overhead
    out["efficiency"][:, j], out["hbm_bytes"][:, j] = eff, traffic
    return run_as


def _throttle(chips: ChipArrays, out: dict, throttled: dict) -> None:
    """The clock under the power budget, then the imperfect load/compute overlap, for all matrix columns."""
    if not throttled:
        return
    cols = list(throttled)
    core_J = np.stack([throttled[j] for j in cols], axis=1)
    seconds, memory, eff = out["compute_s"][:, cols], out["memory_s"][:, cols], out["efficiency"][:, cols]
    ratio = clock_ratio(chips, core_J, memory_J(chips, out["hbm_bytes"][:, cols]), seconds, memory)
    seconds, eff = seconds / ratio, eff * ratio
    both = overlapped(chips, seconds, memory)
    compute_wins = seconds >= memory
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = np.where(compute_wins, eff * seconds / both, eff)
    out["compute_s"][:, cols] = np.where(compute_wins, both, seconds)
    out["memory_s"][:, cols] = np.where(compute_wins, memory, both)
    out["efficiency"][:, cols], out["clock_ratio"][:, cols] = eff, ratio


__all__ = ["UNITS", "Unsupported", "VectorCosts", "cost_ops"]
