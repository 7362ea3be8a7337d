"""The formulas of hwmodels/ over arrays of chips, each beside the scalar function it mirrors.

* ``tile_matmul``: hwmodels.compute.tile_matmul (with ``_stream_k``) for many matmuls on many chips;
* ``matmul_traffic``: hwmodels.memory.matmul_hbm_bytes; ``hbm_time``: hwmodels.memory.hbm_time;
* ``overlapped``: hwmodels.compute.overlapped; ``clock_ratio``: hwmodels.power.PowerBudget.clock_ratio;
* ``collective_columns``: hwmodels.links.collective_time. A collective's cost is alpha-beta in the
  chip's figures, ``base + steps x hop (+ a constant)`` and ``bytes-term / W x ramp``; the steps,
  constant and bytes-term of each algorithm come from the scalar module's own algorithm functions,
  run once per op on a unit group, and the chips' figures are applied as arrays.

Where the scalar path would raise (a group larger than ``max_chips``, an algorithm the fabric lacks)
the point is marked, and the batch hands it to the scalar path, which raises the same error.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hwmodels.chip import CollectiveAlgorithm, GemmSchedule, Topology
from hwmodels.compute import MIN_SPLIT_DEPTH, SK_K_TILE_BYTES, SK_MIN_ITERS, SPLIT_K, core_tiles, own_bytes
from hwmodels.energy import SRAM_PASSES_PER_HBM_BYTE
from hwmodels.links import Collective, _alltoall, _half_ring, _in_switch, _sendrecv, _tree, group_of
from hwmodels.memory import ACCUMULATOR_BYTES, K_CHUNK
from hwmodels.power import ITERATIONS, MIN_RATIO
from sim.engine.costing import _COLLECTIVE
from sim.engine.vector_chips import ChipArrays


class Unsupported(Exception):
    """A point or group the vectorised path does not cost (the scalar path runs it instead)."""


def _ceil_div(a, b):
    return -(-a // b)


def tile_matmul(chips: ChipArrays, m, n, k, groups, a_bytes, b_bytes, rates) -> tuple[np.ndarray, np.ndarray]:
    """(seconds, split-K partial bytes) of the fastest tiling of each matmul (columns) on each chip (rows).

    ``m, n, k, groups``: int arrays per matmul; ``a_bytes``, ``b_bytes``: operand widths per matmul;
    ``rates``: (points, matmuls) of ``matmul_dtype_rate`` of the format each runs in. Every candidate
    (core tile x split-K, then stream-K, in the scalar loop's order) is costed at once; the first of the
    fastest valid ones wins, as the scalar loop's "strictly faster replaces" keeps it.
    """
    rep = chips.rep
    rows, cols, arrays = rep.array_rows, rep.array_cols, rep.arrays_per_core
    tiles_mn = np.array(core_tiles(rep), dtype=np.int64)
    tm, tn = tiles_mn[:, 0, None, None, None], tiles_mn[:, 1, None, None, None]  # (tiles, 1, 1, 1)
    split = np.array(SPLIT_K, dtype=np.int64)[None, :, None, None]  # (1, splits, 1, 1)
    cycle_s = 1.0 / (chips.freq_Hz[:, None] * rates * chips.matmul_efficiency[:, None])  # (points, mm)
    cores = chips.num_cores[:, None]
    sram_bw = chips.sram_bandwidth_Bps[:, None]
    out_tiles = _ceil_div(m, tm) * _ceil_div(n, tn) * groups  # (tiles, 1, 1, mm)
    passes = _ceil_div((tm // rows) * (tn // cols), arrays)
    valid = (split == 1) | ((out_tiles < cores) & (k >= split * MIN_SPLIT_DEPTH))
    tiles = out_tiles * split
    depth = _ceil_div(k, split)
    compute = np.ceil(tiles / cores) * passes * (depth + rows + cols) * cycle_s
    partials = np.where(split > 1, split * m * n * groups * 4 * 2, 0).astype(float)
    streamed = m * _ceil_div(n, tn) * a_bytes + n * _ceil_div(m, tm) * b_bytes  # hwmodels.compute.streamed_bytes
    sram = streamed * (groups * split * depth) / sram_bw
    if rep.ideal:
        sram = sram + (split - 1) * m * n * groups * 4 * 2 / sram_bw
        partials = np.zeros(partials.shape)
    seconds = np.maximum(compute, sram)
    if rep.gemm_schedule is GemmSchedule.stream_k:
        sk_compute, sk_sram = _stream_k(chips, tm[:, 0], tn[:, 0], out_tiles[:, 0], passes[:, 0], k, cycle_s,
                                        a_bytes, streamed[:, 0], groups)
        sk_seconds = np.maximum(sk_compute, sk_sram)[:, None]
        shape = np.broadcast_shapes(seconds.shape, partials.shape, valid.shape)
        seconds = np.concatenate([np.broadcast_to(seconds, shape), sk_seconds], axis=1)
        partials = np.concatenate([np.broadcast_to(partials, shape), np.zeros(sk_seconds.shape)], axis=1)
        valid = np.concatenate([np.broadcast_to(valid, shape), out_tiles % cores != 0], axis=1)
    first, second = tiling_choice(chips, seconds, partials, own_bytes(m, n, k, groups, a_bytes, b_bytes))
    shape = np.broadcast_shapes(first.shape, valid.shape)
    first, second = (np.where(valid, x, np.inf).reshape(shape[0] * shape[1], *shape[2:]) for x in (first, second))
    best = lexical_argmin(first, second)[None]
    pick = np.take_along_axis
    seconds = pick(np.broadcast_to(seconds, shape).reshape(first.shape), best, axis=0)[0]
    partial = pick(np.broadcast_to(partials, shape).reshape(first.shape), best, axis=0)[0]
    return seconds, partial


def tiling_choice(chips: ChipArrays, seconds: np.ndarray, partials: np.ndarray, own, on=slice(None)
                  ) -> tuple[np.ndarray, np.ndarray]:
    """hwmodels.compute.Tiling.choice of candidates whose last two axes are (points ``on``, matmuls): the kernel's
    time (the longer of the arrays' and the HBM time of ``own`` bytes per matmul, plus a split's partial sums'
    HBM time and launch), then the arrays' time plus that HBM time, with the same float operations."""
    hbm = (chips.hbm_bandwidth_Bps * chips.hbm_efficiency)[on][:, None]
    floor = chips.hbm_latency_s[on][:, None] + own / hbm
    reduce = partials / hbm
    first = np.maximum(seconds, floor) + reduce + np.where(partials != 0, chips.kernel_overhead_s[on][:, None], 0.0)
    return first, seconds + reduce


def lexical_argmin(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Along axis 0: the first position with the least ``first``, ties broken by the least ``second`` (the scalar
    loop's "a strictly smaller (first, second) replaces")."""
    least = first.min(axis=0)
    return np.argmin(np.where(first == least, second, np.inf), axis=0)



def _stream_k(chips, tm, tn, out_tiles, passes, k, cycle_s, a_bytes, streamed, groups):
    """hwmodels.compute._stream_k: busy cores as many as units of ``SK_MIN_ITERS`` k-tiles allow; ``streamed``: the
    SRAM bytes of one k-step of one group's tiles (``hwmodels.compute.streamed_bytes``)."""
    rep = chips.rep
    depth = SK_MIN_ITERS * np.maximum(1, SK_K_TILE_BYTES // np.maximum(1, a_bytes.astype(np.int64)))
    cores = np.minimum(chips.num_cores[:, None], np.maximum(out_tiles, out_tiles * k // depth))
    steps = np.ceil(out_tiles * k / cores)
    rem = out_tiles % cores
    segments = np.ceil(out_tiles / cores) + (rem != 0)
    compute = passes * (steps + segments * (rep.array_rows + rep.array_cols)) * cycle_s
    shared = np.where(rem != 0, cores, 0)
    sram_bw = chips.sram_bandwidth_Bps[:, None]
    sram = (streamed * (groups * k) + shared * tm * tn * 4 * 2) / sram_bw
    return compute, sram


def matmul_traffic(sram_bytes: np.ndarray, m: int, n: int, k: int, a: float, b: float, c: float) -> np.ndarray:
    """hwmodels.memory.matmul_hbm_bytes on every chip's SRAM."""
    compulsory = a + b + c
    elem = max(a / (m * k), b / (k * n))
    bb = 4 * K_CHUNK * elem
    side = (-bb + np.sqrt(bb * bb + 4 * ACCUMULATOR_BYTES * sram_bytes)) / (2 * ACCUMULATOR_BYTES)
    side = np.maximum(1, np.floor(side))
    blocked = a * np.ceil(n / np.minimum(side, n)) + b * np.ceil(m / np.minimum(side, m)) + c
    return np.where(min(a, b) <= sram_bytes / 2, compulsory, blocked)


def hbm_time(chips: ChipArrays, nbytes: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = chips.hbm_latency_s + nbytes / (chips.hbm_bandwidth_Bps * chips.hbm_efficiency)
    return np.where(nbytes <= 0, 0.0, t)


def _column(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A per-chip array shaped to broadcast against ``like`` (chips, or chips x ops)."""
    return values[:, None] if like.ndim == 2 else values


def overlapped(chips: ChipArrays, compute_s: np.ndarray, memory_s: np.ndarray) -> np.ndarray:
    big, small = np.maximum(compute_s, memory_s), np.minimum(compute_s, memory_s)
    loss = _column(chips.matmul_overlap_loss, big)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        both = big * (1.0 + (small / big) ** (1.0 / loss)) ** loss
    return np.where((loss == 0) | (small == 0), big, both)


def clock_ratio(chips: ChipArrays, core_J, memory_J, compute_s, memory_s) -> np.ndarray:
    """PowerBudget.clock_ratio per chip: the same bisection, all chips at once."""
    budget, static = _column(chips.budget_W, compute_s), _column(chips.static_W, compute_s)

    def power(r):
        with np.errstate(divide="ignore", invalid="ignore"):
            return static + (core_J * r * r + memory_J) / np.maximum(compute_s / r, memory_s)

    free = (budget <= 0) | (compute_s <= 0) | (core_J <= 0)
    free = free | (power(1.0) <= budget)
    floor = ~free & (power(MIN_RATIO) >= budget)
    search = ~(free | floor)
    low = np.full(compute_s.shape, MIN_RATIO)
    if np.any(search):  # bisect only the entries that need it (the same arithmetic on each)
        at = np.nonzero(search)
        b, st = np.broadcast_to(budget, search.shape)[at], np.broadcast_to(static, search.shape)[at]
        cj, mj, cs, ms = (np.broadcast_to(x, search.shape)[at] for x in (core_J, memory_J, compute_s, memory_s))
        lo, hi = np.full(len(b), MIN_RATIO), np.ones(len(b))
        for _ in range(ITERATIONS):
            mid = 0.5 * (lo + hi)
            with np.errstate(divide="ignore", invalid="ignore"):
                fits = st + (cj * mid * mid + mj) / np.maximum(cs / mid, ms) <= b
            lo, hi = np.where(fits, mid, lo), np.where(fits, hi, mid)
        low[at] = lo
    return np.where(free, 1.0, np.where(floor, MIN_RATIO, low))


def memory_J(chips: ChipArrays, hbm_bytes: np.ndarray) -> np.ndarray:
    """PowerBudget.memory_J: the HBM access and the bytes' SRAM passes."""
    return hbm_bytes * _column(chips.hbm_J + SRAM_PASSES_PER_HBM_BYTE * chips.sram_J, hbm_bytes)


def fixed_time_ratio(chips: ChipArrays, core_J, mem_J, seconds) -> np.ndarray:
    """PowerBudget.fixed_time_ratio per chip."""
    with np.errstate(divide="ignore", invalid="ignore"):
        room = (chips.budget_W - chips.static_W) * seconds - mem_J
        ratio = np.maximum(MIN_RATIO, (np.maximum(room, 0.0) / core_J) ** 0.5)
    free = (chips.budget_W <= 0) | (seconds <= 0) | (core_J <= 0) | (room >= core_J)
    return np.where(free, 1.0, ratio)


def _terms(group, fn, *args) -> tuple[float, float, float, float, str]:
    """(constant latency, steps, transfer at unit bandwidth, wire bytes, algorithm) of one algorithm."""
    at0 = fn(dataclasses.replace(group, chip_Bps=1.0, hop_s=0.0, base_s=0.0), *args)
    at1 = fn(dataclasses.replace(group, chip_Bps=1.0, hop_s=1.0, base_s=0.0), *args)
    return at0.latency_s, at1.latency_s - at0.latency_s, at0.transfer_s, at0.wire_bytes, at0.algorithm


def _options(chips: ChipArrays, kind: Collective, nbytes: float, p: int, in_switch: bool) -> list:
    rep = chips.rep
    g = group_of(rep, p)
    if kind is Collective.allreduce:
        found = [(CollectiveAlgorithm.ring, _terms(g, _half_ring, nbytes, "ring", True)),
                 (CollectiveAlgorithm.tree, _terms(g, _tree, nbytes))]
        if g.switched and not g.mesh and rep.switch_reduction and in_switch:
            found.append((CollectiveAlgorithm.in_switch, _terms(g, _in_switch, nbytes)))
        choice = CollectiveAlgorithm(rep.allreduce_algorithm)
        if choice is CollectiveAlgorithm.auto:
            order = list(CollectiveAlgorithm)
            return [t for _, t in sorted(found, key=lambda item: order.index(item[0]))]
        picked = [t for name, t in found if name is choice]
        if not picked:
            raise Unsupported(f"all-reduce algorithm {choice.value} is not available")
        return picked
    if kind in (Collective.allgather, Collective.reducescatter):
        return [_terms(g, _half_ring, nbytes)]
    return [_terms(g, _alltoall if kind is Collective.alltoall else _sendrecv, nbytes)]


def collective_columns(chips: ChipArrays, ops: list, in_switch: bool):
    """(latency, transfer, wire bytes), each (points, link ops), of the link ops on every chip."""
    shape = (chips.size, len(ops))
    lat, transfer, wire = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    usable = chips.link_bandwidth_Bps * chips.link_efficiency
    base, hop = chips.collective_latency_us * 1e-6, chips.link_latency_s
    mesh = Topology(chips.rep.topology) is Topology.mesh
    for j, op in enumerate(ops):
        nbytes, p = op.comm_bytes, op.comm_chips
        if np.any(p > chips.max_chips):
            raise Unsupported(f"a collective over {p} chips exceeds some chips' max_chips")
        if p == 1 or nbytes == 0:
            continue
        with np.errstate(divide="ignore", over="ignore"):
            ramp = np.sqrt(1.0 + np.exp(2 * chips.link_ramp_exponent * (np.log(chips.link_saturation_MB * 1e6)
                                                                        - np.log(nbytes))))
        ramp = np.where(chips.link_ramp_exponent == 0, 1.0, ramp)
        # a mesh reaches the group over p - 1 of its max_chips - 1 links (hwmodels/links.py group_of)
        group_Bps = usable * ((p - 1) / (chips.max_chips - 1)) if mesh else usable  # p <= max_chips, checked
        best_s = None
        for const, steps, unit_t, bytes_, _ in _options(chips, _COLLECTIVE[op.kind], nbytes, p, in_switch):
            latency = base + steps * hop
            if const:
                latency = latency + const
            moved = unit_t / group_Bps * ramp
            seconds = latency + moved
            take = np.ones(chips.size, bool) if best_s is None else seconds < best_s
            best_s = seconds if best_s is None else np.where(take, seconds, best_s)
            lat[:, j] = np.where(take, latency, lat[:, j])
            transfer[:, j] = np.where(take, moved, transfer[:, j])
            wire[:, j] = np.where(take, bytes_, wire[:, j])
    return lat, transfer, wire
