"""Time on the compute arrays and the vector unit.

Matmul model (one kernel computing ``groups`` independent ``m x k @ k x n`` products), the way
a GEMM library tiles it:

* each core computes output tiles of ``tm x tn``, a multiple of its arrays' ``R x C`` (those that keep
  all ``arrays_per_core`` arrays busy and, for a small GEMM, those that leave some idle rather than pad
  it); ``m`` and ``n`` are padded up to the tile;
* a tile takes ``ceil(array tiles / arrays_per_core) * (k + R + C)`` cycles: k multiply-
  accumulate steps plus the systolic pipeline's fill and drain;
* tiles are spread over the cores in waves; the last wave may be partly idle; when the output
  has fewer tiles than cores, k is split over several cores (split-K): each slice writes its
  fp32 partial sums to a workspace in HBM and a second kernel reads and adds them (cuBLAS's
  split-K reduction), so the autotuner weighs that HBM traffic and launch against the cores it
  gains (an ``ideal`` chip adds them on chip, through SRAM);
* every tile streams its A and B panels from on-chip SRAM at ``sram_bytes_per_cycle`` x the clock:
  ``k`` steps of its rows of A and its columns of B, the ones it holds, not the zeros it pads to
  fill the arrays (a tile of one row streams one row of A, however tall the arrays); small tiles
  can be SRAM-bandwidth-bound;
* a perfectly tiled matmul reaches ``matmul_efficiency`` of the format's peak at the boost
  clock (the sustained clock under the power budget is applied by the caller, hwmodels/power.py);
* with ``gemm_schedule = stream_k`` (persistent kernels, CUTLASS 3 / cuBLAS on Hopper) the
  k-loop iterations of all output tiles are shared evenly over the cores instead of whole tiles
  in waves: no idle cores in a last partial wave, at the price of one more fill and drain per
  core and the fp32 partial sums of the tiles two cores share, added through SRAM (the fix-up
  workspace). It applies whenever the tiles do not fill whole waves, fewer tiles than cores
  included (there it replaces split-K and its HBM workspace: Osama et al., "Stream-K:
  Work-centric Parallel Decomposition for Dense Matrix-Matrix Multiplication on the GPU", PPoPP
  2023); a core's share is at least ``SK_MIN_ITERS`` k-tiles of ``SK_K_TILE_BYTES``, so a
  shallow GEMM spreads over fewer cores.

The tile size is chosen as an autotuner would: the candidate whose kernel runs shortest, the
longer of its arrays' time and its operands' HBM time, plus a split-K reduction's HBM time and
launch, so a small GEMM on a huge array wastes it, a large one runs close to peak, and a
memory-bound one does not split k (ties between memory-bound candidates go to the faster arrays).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from hwmodels.chip import GemmSchedule, HardwareConfig
from hwmodels.numerics import DType

TILE_MULTIPLES = (1, 2, 4, 8, 16)
SPLIT_K = (1, 2, 4, 8, 16)  # a small output is shared out by splitting k over more cores
MIN_SPLIT_DEPTH = 256  # k steps each share keeps at least
MAX_TILE = 256  # largest core tile side a kernel uses on small arrays (per-core SRAM bounds it)
# Stream-K granularity, NVIDIA/cutlass 3.x include/cutlass/gemm/kernel/sm90_tile_scheduler_stream_k.hpp:
# a stream-K unit gets at least ``min_iters_per_sk_unit_ = 8`` k-tiles; a Hopper 16-bit mainloop's k-tile
# is 64 elements (128 bytes; the CUTLASS 3 sm90 tile shapes 128x128x64 and 128x256x64), 128 for 8-bit.
SK_MIN_ITERS = 8
SK_K_TILE_BYTES = 128


@dataclass(frozen=True, slots=True)
class ComputeCost:
    """Seconds on a compute unit and why."""

    seconds: float
    efficiency: float  # achieved fraction of the format's peak
    dtype_run: DType | None  # the format the arrays computed in; None: on the vector unit
    partial_bytes: float = 0.0  # split-K: fp32 partial sums written to HBM and read back by a reduction kernel


@dataclass(frozen=True, slots=True)
class Tiling:
    """How a matmul was cut: core tile, tile count, waves over the cores."""

    tile_m: int
    tile_n: int
    tiles: int
    waves: int
    compute_s: float  # time on the arrays
    sram_s: float  # time streaming operand panels from SRAM
    partial_bytes: float = 0.0  # split-K partial sums through HBM (workspace written, then reduced)

    @property
    def seconds(self) -> float:
        return max(self.compute_s, self.sram_s)

    def choice(self, chip: HardwareConfig, own_bytes: float) -> tuple[float, float]:
        """What an autotuner compares, first to last: the kernel's time, the longer of its arrays' time and the HBM
        time of ``own_bytes`` (the operands and output, moved however it is tiled), plus a split-K reduction's HBM
        time and launch; then the arrays' time plus that HBM time (which breaks ties of memory-bound candidates:
        the same kernel time, however fast their arrays)."""
        hbm_bps = chip.hbm_bandwidth_Bps * chip.hbm_efficiency
        floor = chip.hbm_latency_s + own_bytes / hbm_bps
        launch = chip.kernel_overhead_s if self.partial_bytes else 0.0
        reduce = self.partial_bytes / hbm_bps
        return max(self.seconds, floor) + reduce + launch, self.seconds + reduce


def core_tiles(chip: HardwareConfig) -> list[tuple[int, int]]:
    """Candidate core tiles: multiples of the array, first those that keep every array of a core busy, then those
    that leave some idle."""
    return list(_core_tiles(chip.array_rows, chip.array_cols, chip.arrays_per_core))


@functools.lru_cache(maxsize=256)
def _core_tiles(rows: int, cols: int, arrays: int) -> tuple[tuple[int, int], ...]:
    """Every tile of whole arrays up to the size limit. A tile of fewer arrays than the core has leaves the others
    idle, yet it may be the fastest: a GEMM of a few rows on a core of 5 arrays pads half its work into a tile of 8
    (2 x 4) but none into one of 4 (1 x 4). With every tile offered, more arrays per core never slow a GEMM. Those
    that fill the core come first, so a tie keeps one of them."""
    limit_m, limit_n = max(MAX_TILE, 4 * rows), max(MAX_TILE, 4 * cols)
    found = [(i, j) for i in TILE_MULTIPLES for j in TILE_MULTIPLES if rows * i <= limit_m and cols * j <= limit_n]
    ordered = [t for t in found if t[0] * t[1] >= arrays] + [t for t in found if t[0] * t[1] < arrays]
    return tuple((rows * i, cols * j) for i, j in ordered)


def tile_matmul(chip: HardwareConfig, m: int, n: int, k: int, dtype: DType, groups: int = 1,
                operand_bytes: float = 2.0, b_bytes: float | None = None, memo: dict | None = None) -> Tiling:
    """The fastest tiling of ``groups x (m x k) @ (k x n)`` on the arrays (dtype must be supported).

    ``operand_bytes`` is the width of A's elements as they stream from SRAM, ``b_bytes`` of B's
    (packed quantized weights are widened only inside the core); None: the same as A's.
    Each candidate is timed with the same float operations as :meth:`Tiling.choice` (the operands and the output
    moved once, ``own_bytes``, its HBM floor); only the best becomes a Tiling (a serving search tiles a few
    hundred distinct matmuls per chip).
    ``memo`` (one chip's, kept by the caller): a candidate's tiles, waves and array time depend on ``m`` only
    through its row tiles ``ceil(m / tile_m)``, which ``ceil(m / g)`` fixes for ``g`` the common divisor of the
    candidate tile heights; its SRAM bytes (the rows of A it streams), split-K partial sums and the HBM floor grow
    with ``m`` itself. So the candidates are stored under ``ceil(m / g)`` with the parts that do not depend on
    ``m`` and weighed again for another ``m`` of the same row tiles, with the same float operations (a serving run
    prices steps of thousands of distinct token counts).
    """
    b_bytes = operand_bytes if b_bytes is None else b_bytes
    rows, cols, arrays, cores = chip.array_rows, chip.array_cols, chip.arrays_per_core, chip.num_cores
    key = None
    if memo is not None:
        key = (-(-m // _tile_step(rows, cols, arrays)), n, k, dtype, groups, operand_bytes, b_bytes)
        found = memo.get(key)
        if found is not None:
            return _best(found, chip, m, n, k, groups, operand_bytes, b_bytes)
    cycle_s = 1.0 / (chip.freq_Hz * chip.matmul_dtype_rate[dtype.value] * chip.matmul_efficiency)
    fill = rows + cols
    # (tile m, tile n, tiles, waves, compute s, split (0: stream-K), row tiles, column tiles, SRAM scale, SRAM extra
    # bytes), in the search order; SRAM bytes = streamed_bytes(...) x scale + extra, made per m (``_best``)
    candidates = []
    for tm, tn in _core_tiles(rows, cols, arrays):
        row_tiles, col_tiles = math.ceil(m / tm), math.ceil(n / tn)
        out_tiles = row_tiles * col_tiles * groups
        passes = math.ceil((tm // rows) * (tn // cols) / arrays)
        for split in SPLIT_K:
            if split > 1 and (out_tiles >= cores or k < split * MIN_SPLIT_DEPTH):
                break  # enough tiles already, or too little depth to share
            tiles = out_tiles * split
            waves = math.ceil(tiles / cores)
            depth = math.ceil(k / split)
            compute = waves * passes * (depth + fill) * cycle_s
            candidates.append((tm, tn, tiles, waves, compute, split, row_tiles, col_tiles, groups * split * depth, 0))
        if chip.gemm_schedule is GemmSchedule.stream_k and out_tiles % cores:
            tiles, waves, compute, scale, extra = _stream_k_parts(chip, tm, tn, out_tiles, passes, k, cycle_s,
                                                                  operand_bytes, groups)
            candidates.append((tm, tn, tiles, waves, compute, 0, row_tiles, col_tiles, scale, extra))
    if key is not None:
        memo[key] = candidates
    return _best(candidates, chip, m, n, k, groups, operand_bytes, b_bytes)


def streamed_bytes(m: int, n: int, row_tiles: int, col_tiles: int, a_bytes: float, b_bytes: float) -> float:
    """Bytes one k-step of every output tile of one group streams from SRAM: each tile its own rows of A and columns
    of B, never the zeros it pads to fill the arrays (A's ``m`` rows once per column of tiles, B's ``n`` columns once
    per row of tiles)."""
    return m * col_tiles * a_bytes + n * row_tiles * b_bytes


def own_bytes(m: int, n: int, k: int, groups: int, a_bytes: float, b_bytes: float) -> float:
    """HBM bytes a matmul moves however it is tiled: A and B read and the output written once (in A's width)."""
    return groups * (m * k * a_bytes + k * n * b_bytes + m * n * a_bytes)


def _best(candidates: list[tuple], chip: HardwareConfig, m: int, n: int, k: int, groups: int, a_bytes: float,
          b_bytes: float) -> Tiling:
    """The first candidate with the least ``Tiling.choice``, the split-K partial sums added for this ``m``. A
    memory-bound matmul gains nothing from splitting k (its arrays already wait for HBM) and would pay the
    partial sums' traffic and a second launch, so it keeps its cores' tiles (an independent review found split-K
    chosen for decode GEMMs, 1-3 % slower, and more cores or arrays making decode slower)."""
    ideal, sram_bps, hbm_bps = chip.ideal, chip.sram_bandwidth_Bps, chip.hbm_bandwidth_Bps * chip.hbm_efficiency
    latency, launch = chip.hbm_latency_s, chip.kernel_overhead_s
    floor = latency + own_bytes(m, n, k, groups, a_bytes, b_bytes) / hbm_bps
    best: tuple | None = None
    best_key = (0.0, 0.0)
    for tm, tn, tiles, waves, compute, split, row_tiles, col_tiles, scale, extra in candidates:
        sram = (streamed_bytes(m, n, row_tiles, col_tiles, a_bytes, b_bytes) * scale + extra) / sram_bps
        partials = split * m * n * groups * 4 * 2 if split > 1 else 0.0  # fp32 slices written, then read
        if ideal and split > 1:  # an idealised chip adds the partial sums on chip, through SRAM, in the same kernel
            sram += (split - 1) * m * n * groups * 4 * 2 / sram_bps
            partials = 0.0
        seconds = max(compute, sram)
        reduce = partials / hbm_bps
        key = (max(seconds, floor) + reduce + (launch if partials else 0.0), seconds + reduce)  # Tiling.choice
        if best is None or key < best_key:
            best, best_key = (tm, tn, tiles, waves, compute, sram, partials), key
    return Tiling(*best)


@functools.lru_cache(maxsize=256)
def _tile_step(rows: int, cols: int, arrays: int) -> int:
    """The greatest common divisor of the candidate core tiles' heights."""
    return math.gcd(*(tm for tm, _ in _core_tiles(rows, cols, arrays)))


def _stream_k(chip: HardwareConfig, tm: int, tn: int, out_tiles: int, passes: int, k: int, cycle_s: float,
              operand_bytes: float, streamed: float, groups: int = 1) -> Tiling:
    """Stream-K: every busy core runs ``out_tiles * k / cores`` k-steps, over at most ``ceil(out_tiles / cores) + 1``
    tile segments (each with its fill and drain); tiles cut between two cores add their fp32 partials.
    Fewer cores are busy when the work has fewer units of ``SK_MIN_ITERS`` k-tiles than the chip has cores.
    ``streamed``: ``streamed_bytes`` of one group."""
    tiles, waves, compute, scale, extra = _stream_k_parts(chip, tm, tn, out_tiles, passes, k, cycle_s, operand_bytes,
                                                          groups)
    return Tiling(tm, tn, tiles, waves, compute, (streamed * scale + extra) / chip.sram_bandwidth_Bps)


def _stream_k_parts(chip: HardwareConfig, tm: int, tn: int, out_tiles: int, passes: int, k: int, cycle_s: float,
                    operand_bytes: float, groups: int) -> tuple[int, int, float, int, int]:
    """_stream_k's (tiles, waves, compute_s) and its SRAM bytes as ``streamed_bytes`` x scale + extra: every group's
    operands streamed over all ``k`` steps, and the fix-ups' fp32 partials written and read."""
    depth = SK_MIN_ITERS * max(1, SK_K_TILE_BYTES // max(1, int(operand_bytes)))  # k-steps a unit gets at least
    cores = min(chip.num_cores, max(out_tiles, out_tiles * k // depth))
    steps = math.ceil(out_tiles * k / cores)
    segments = math.ceil(out_tiles / cores) + (1 if out_tiles % cores else 0)
    compute = passes * (steps + segments * (chip.array_rows + chip.array_cols)) * cycle_s
    shared = cores if out_tiles % cores else 0  # at most one cut tile per core boundary
    return out_tiles, math.ceil(out_tiles / cores), compute, groups * k, shared * tm * tn * 4 * 2


def matmul_time(
    chip: HardwareConfig, m: int, n: int, k: int, dtype: DType, groups: int = 1, flops: float | None = None,
    operand_bytes: float = 2.0, b_bytes: float | None = None, memo: dict | None = None,
) -> ComputeCost:
    """Time of ``groups`` matmuls of ``(m x k) @ (k x n)`` in ``dtype`` on the matrix arrays.

    ``flops`` defaults to ``2*m*n*k*groups``; kernels that skip work (causal attention skips
    masked blocks) pass what they execute, and the time shrinks in proportion.
    ``operand_bytes`` and ``b_bytes`` are the widths of A and B elements as they stream from
    SRAM (B defaults to A's width). ``memo``: one chip's store of tilings (``tile_matmul``).
    """
    dense = 2.0 * m * n * k * groups
    if flops is None:
        flops = dense
    run_as = chip.matmul_dtype(dtype)
    if min(m, n, k, groups) <= 0 or flops <= 0:
        return ComputeCost(0.0, 1.0, run_as)
    if run_as is None:  # no matrix format fits: the vector unit does the multiply-adds
        return ComputeCost(flops / (chip.vector_flops * chip.vector_efficiency), chip.vector_efficiency, None)
    tiling = tile_matmul(chip, m, n, k, run_as, groups, operand_bytes, b_bytes, memo)
    seconds = tiling.seconds * (flops / dense)
    return ComputeCost(seconds, flops / (chip.peak_flops(run_as) * seconds), run_as, tiling.partial_bytes)


def overlapped(chip: HardwareConfig, compute_s: float, memory_s: float) -> float:
    """Time of a GEMM whose arrays need ``compute_s`` and whose HBM traffic needs ``memory_s``.

    A GEMM's k-loop streams operand panels while the arrays multiply the previous ones; with a
    few buffers in flight, the two overlap well when one side dominates and poorly when both are
    near saturation (a stall on either side stalls the other). The time is the p-norm of the two,
    ``(c^p + m^p)^(1/p)`` with ``p = 1 / matmul_overlap_loss``: the larger of the two for a loss of
    0, their sum for 1, and at balance ``2^loss`` times either.
    """
    big, small = max(compute_s, memory_s), min(compute_s, memory_s)
    loss = chip.matmul_overlap_loss
    if loss == 0 or small == 0:
        return big
    return big * (1.0 + (small / big) ** (1.0 / loss)) ** loss


def vector_time(chip: HardwareConfig, flops: float) -> ComputeCost:
    """Time of ``flops`` elementwise/reduction operations on the vector unit."""
    seconds = flops / (chip.vector_flops * chip.vector_efficiency) if flops > 0 else 0.0
    return ComputeCost(seconds, chip.vector_efficiency, DType.fp32)
