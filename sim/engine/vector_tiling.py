"""The autotuner's tile choice over many chips, each candidate costed only where it can win.

``vector_parts.tile_matmul`` costs every candidate tiling (core tile x split-K, and stream-K) of every
matmul on every chip: arrays of candidates x points x matmuls, most of which never win. A candidate's
cost on a chip is ``Tiling.choice``, a function of ``max(C x cycle_s, S / sram_bw)`` and ``Q`` that grows
with each (the longer of that and the operands' HBM floor, plus ``Q / hbm_bw`` and a split's launch; then the
arrays' time plus ``Q / hbm_bw``), with
``C`` (cycles), ``S`` (SRAM bytes) and ``Q`` (split-K partial bytes) fixed by the matmul, the tile and the
chip's core count alone. So for each distinct core count this module computes ``C, S, Q`` once per candidate, drops
each candidate that an *earlier* valid one beats or ties on all three (rounding is monotone, so on
every chip the earlier one costs no more, and the scalar loop's "strictly faster replaces" keeps the
earlier of equals), and costs the few left on the chips. The winner and its figures are the dense
computation's, bit for bit (the same expressions, in the same order); ``tests/test_vector_tiling.py``
compares the two on random chips. Ideal chips (their SRAM term has a second part) and non-finite or
non-positive chip figures take the dense path.
"""

from __future__ import annotations

import numpy as np

from hwmodels.chip import GemmSchedule
from hwmodels.compute import MIN_SPLIT_DEPTH, SK_K_TILE_BYTES, SK_MIN_ITERS, SPLIT_K, core_tiles, own_bytes
from sim.engine.vector_chips import ChipArrays
from sim.engine.vector_parts import _ceil_div, lexical_argmin, tile_matmul, tiling_choice


def _candidates(rep, cores: np.float64, m, n, k, groups, a_bytes, b_bytes) -> tuple:
    """(C, S, Q, valid), each (candidates, matmuls) in the dense path's candidate order, on ``cores`` cores."""
    rows, cols, arrays = rep.array_rows, rep.array_cols, rep.arrays_per_core
    tiles_mn = np.array(core_tiles(rep), dtype=np.int64)
    tm, tn = tiles_mn[:, 0, None, None], tiles_mn[:, 1, None, None]  # (tiles, 1, 1)
    split = np.array(SPLIT_K, dtype=np.int64)[None, :, None]  # (1, splits, 1)
    out_tiles = _ceil_div(m, tm) * _ceil_div(n, tn) * groups  # (tiles, 1, mm)
    passes = _ceil_div((tm // rows) * (tn // cols), arrays)
    valid = (split == 1) | ((out_tiles < cores) & (k >= split * MIN_SPLIT_DEPTH))
    tiles = out_tiles * split
    depth = _ceil_div(k, split)
    cycles = np.ceil(tiles / cores) * passes * (depth + rows + cols)
    partials = np.where(split > 1, split * m * n * groups * 4 * 2, 0).astype(float)
    streamed = m * _ceil_div(n, tn) * a_bytes + n * _ceil_div(m, tm) * b_bytes  # hwmodels.compute.streamed_bytes
    sram = streamed * (groups * split * depth)
    shape = np.broadcast_shapes(cycles.shape, sram.shape, partials.shape, valid.shape)
    parts = [np.broadcast_to(x, shape) for x in (cycles, sram, partials, valid)]
    if rep.gemm_schedule is GemmSchedule.stream_k:
        sk_depth = SK_MIN_ITERS * np.maximum(1, SK_K_TILE_BYTES // np.maximum(1, a_bytes.astype(np.int64)))
        busy = np.minimum(cores, np.maximum(out_tiles, out_tiles * k // sk_depth))
        steps = np.ceil(out_tiles * k / busy)
        rem = out_tiles % busy
        segments = np.ceil(out_tiles / busy) + (rem != 0)
        sk_cycles = passes * (steps + segments * (rows + cols))
        shared = np.where(rem != 0, busy, 0)
        sk_sram = streamed * (groups * k) + shared * tm * tn * 4 * 2
        sk = [sk_cycles, sk_sram, np.zeros(sk_cycles.shape), out_tiles % cores != 0]
        parts = [np.concatenate([p, np.broadcast_to(q, (shape[0], 1, shape[2]))], axis=1) for p, q in zip(parts, sk,
                                                                                                       strict=True)]
    return tuple(p.reshape(-1, p.shape[2]) for p in parts)


def _undominated(c: np.ndarray, s: np.ndarray, q: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The valid candidates (in order) that no earlier valid candidate matches or beats on all of C, S, Q."""
    beaten = (c[:, None] <= c[None, :]) & (s[:, None] <= s[None, :]) & (q[:, None] <= q[None, :])
    beaten &= valid[:, None] & np.tri(len(c), k=-1, dtype=bool).T  # [earlier, later]
    return np.flatnonzero(valid & ~beaten.any(axis=0))


def choose_tiles(chips: ChipArrays, m, n, k, groups, a_bytes, b_bytes, rates) -> tuple[np.ndarray, np.ndarray]:
    """``vector_parts.tile_matmul``'s (seconds, split-K partial bytes), costing only the candidates that can win."""
    rep = chips.rep
    cycle_s = 1.0 / (chips.freq_Hz[:, None] * rates * chips.matmul_efficiency[:, None])  # (points, mm)
    sram_bw, hbm = chips.sram_bandwidth_Bps, chips.hbm_bandwidth_Bps * chips.hbm_efficiency
    figures = (cycle_s, sram_bw, hbm, chips.num_cores)
    if rep.ideal or not all(np.all(np.isfinite(x) & (x > 0)) for x in figures):
        return tile_matmul(chips, m, n, k, groups, a_bytes, b_bytes, rates)
    seconds, partial = np.empty(cycle_s.shape), np.empty(cycle_s.shape)
    counts, which = np.unique(chips.num_cores, return_inverse=True)
    for u, cores in enumerate(counts):
        on = np.flatnonzero(which.reshape(-1) == u) if len(counts) > 1 else slice(None)
        c, s, q, valid = _candidates(rep, cores, m, n, k, groups, a_bytes, b_bytes)
        if not all(np.all(np.isfinite(x)) for x in (c, s, q)):
            return tile_matmul(chips, m, n, k, groups, a_bytes, b_bytes, rates)
        own = own_bytes(m, n, k, groups, a_bytes, b_bytes)
        for j in range(c.shape[1]):
            keep = _undominated(c[:, j], s[:, j], q[:, j], valid[:, j])
            sec = np.maximum(c[keep, j][:, None] * cycle_s[on, j], s[keep, j][:, None] / sram_bw[on])
            first, second = tiling_choice(chips, sec[:, :, None], q[keep, j][:, None, None], own[j], on)
            best = lexical_argmin(first[:, :, 0], second[:, :, 0])
            seconds[on, j] = np.take_along_axis(sec, best[None], axis=0)[0]
            partial[on, j] = q[keep, j][best]
    return seconds, partial
