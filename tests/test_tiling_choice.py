"""hwmodels.compute.tile_matmul picks, bit for bit, the first candidate tiling with the least
``Tiling.choice``: the autotuner's rule, checked here against every candidate built as a Tiling."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.compute import MIN_SPLIT_DEPTH, SPLIT_K, Tiling, _stream_k, core_tiles, own_bytes, tile_matmul
from hwmodels.numerics import DType
from tests.conftest import make_config

CHIPS = {name: make_config(f"hardware={name}").hardware for name in ("h100_sxm", "teaching_npu", "tpu_v5e")}


def candidates(chip, m, n, k, dtype, groups, a_bytes, b_bytes):
    """Every tiling the autotuner weighs, in its order, each built as a Tiling."""
    cycle_s = 1.0 / (chip.freq_Hz * chip.matmul_dtype_rate[dtype.value] * chip.matmul_efficiency)
    for tm, tn in core_tiles(chip):
        out_tiles = math.ceil(m / tm) * math.ceil(n / tn) * groups
        passes = math.ceil((tm // chip.array_rows) * (tn // chip.array_cols) / chip.arrays_per_core)
        for split in SPLIT_K:
            if split > 1 and (out_tiles >= chip.num_cores or k < split * MIN_SPLIT_DEPTH):
                break
            tiles, depth = out_tiles * split, math.ceil(k / split)
            waves = math.ceil(tiles / chip.num_cores)
            compute = waves * passes * (depth + chip.array_rows + chip.array_cols) * cycle_s
            partials = split * m * n * groups * 4 * 2 if split > 1 else 0.0
            # each tile streams its own rows of A and columns of B, not the padding (a 1-row tile streams 1 row)
            streamed = m * math.ceil(n / tn) * a_bytes + n * math.ceil(m / tm) * b_bytes
            sram = (streamed * (groups * split * depth) + 0) / chip.sram_bandwidth_Bps
            if chip.ideal:
                sram += (split - 1) * m * n * groups * 4 * 2 / chip.sram_bandwidth_Bps
                partials = 0.0
            yield Tiling(tm, tn, tiles, waves, compute, sram, partials)
        if chip.gemm_schedule.value == "stream_k" and out_tiles % chip.num_cores:
            streamed = m * math.ceil(n / tn) * a_bytes + n * math.ceil(m / tm) * b_bytes
            yield _stream_k(chip, tm, tn, out_tiles, passes, k, cycle_s, a_bytes, streamed, groups)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(CHIPS)), st.sampled_from(["waves", "stream_k"]), st.booleans(),
       st.integers(1, 9000), st.integers(1, 30000), st.integers(1, 9000), st.sampled_from([1, 8, 64]),
       st.sampled_from([1.0, 2.0]), st.sampled_from([0.5, 1.0, 2.0]))
def test_the_fastest_candidate_first_in_order(name, schedule, ideal, m, n, k, groups, a_bytes, b_bytes):
    chip = dataclasses.replace(CHIPS[name], gemm_schedule=schedule, ideal=ideal)
    dtype = chip.matmul_dtype(DType.bf16)
    got = tile_matmul(chip, m, n, k, dtype, groups, a_bytes, b_bytes)
    own = own_bytes(m, n, k, groups, a_bytes, b_bytes)
    best = None
    for cand in candidates(chip, m, n, k, dtype, groups, a_bytes, b_bytes):
        if best is None or cand.choice(chip, own) < best.choice(chip, own):
            best = cand
    assert got == best


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(CHIPS)), st.sampled_from(["waves", "stream_k"]), st.booleans(),
       st.lists(st.integers(1, 9000), min_size=2, max_size=12), st.integers(1, 30000), st.integers(1, 9000),
       st.sampled_from([1, 8]), st.sampled_from([1.0, 2.0]))
def test_a_tiling_given_again_from_the_memo_is_the_one_found_afresh(name, schedule, ideal, ms, n, k, groups,
                                                                   a_bytes):
    """tile_matmul's memo (one per Coster) stores a tiling under its row tiles: every m it gives one to, in any
    order, gets exactly the tiling found without the memo; row counts that round alike share one entry."""
    chip = dataclasses.replace(CHIPS[name], gemm_schedule=schedule, ideal=ideal)
    dtype = chip.matmul_dtype(DType.bf16)
    memo: dict = {}
    step = math.gcd(*(tm for tm, _ in core_tiles(chip)))
    for m in ms + [m - 1 for m in ms if m > 1] + [-(-m // step) * step for m in ms]:
        assert tile_matmul(chip, m, n, k, dtype, groups, a_bytes, None, memo) == \
            tile_matmul(chip, m, n, k, dtype, groups, a_bytes, None)


def test_the_memo_skips_the_search_for_token_counts_with_the_same_row_tiles():
    chip = CHIPS["h100_sxm"]
    memo: dict = {}
    for m in range(4097, 4097 + 64):
        tile_matmul(chip, m, 4096, 4096, DType.bf16, memo=memo)
    assert 1 <= len(memo) <= 64 // math.gcd(*(tm for tm, _ in core_tiles(chip))) + 1


def test_a_few_rows_on_five_arrays_leave_one_idle_rather_than_pad():
    """8 rows x 4096 x 4096 on one core of five 128 x 128 arrays: a tile of 1 x 4 arrays (one idle) computes the
    8 output tiles of 128 x 512 in one pass each; a tile that fills the core (2 x 4 at most, the side limit being
    4 arrays) pads the 8 rows to 256 and takes two passes for each of its 8 tiles, twice the time (found by an
    independent review: decode on a TPU went 65 % slower with a fifth array)."""
    chip = dataclasses.replace(CHIPS["teaching_npu"], num_cores=1, arrays_per_core=5, array_rows=128,
                               array_cols=128, gemm_schedule="waves", ideal=False)
    got = tile_matmul(chip, 8, 4096, 4096, chip.matmul_dtype(DType.bf16))
    assert (got.tile_m, got.tile_n) == (128, 512)
    cycle_s = 1.0 / (chip.freq_Hz * chip.matmul_dtype_rate["bf16"] * chip.matmul_efficiency)
    assert got.compute_s == 8 * 1 * (4096 + 256) * cycle_s  # waves x passes x (k + fill and drain) cycles


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(CHIPS)), st.sampled_from(["waves", "stream_k"]), st.integers(1, 15),
       st.integers(1, 4096), st.integers(1, 16384), st.integers(1, 8192), st.sampled_from([1, 8]))
def test_more_arrays_per_core_never_slow_a_gemm(name, schedule, arrays, m, n, k, groups):
    chip = dataclasses.replace(CHIPS[name], gemm_schedule=schedule, arrays_per_core=arrays, num_dies=8)  # in reticles
    more = dataclasses.replace(chip, arrays_per_core=arrays + 1)
    dtype = chip.matmul_dtype(DType.bf16)
    own = own_bytes(m, n, k, groups, 2.0, 2.0)
    assert tile_matmul(more, m, n, k, dtype, groups).choice(more, own)[0] <= \
        tile_matmul(chip, m, n, k, dtype, groups).choice(chip, own)[0] * (1 + 1e-12)


def test_a_memory_bound_decode_gemm_does_not_split_k():
    """Batch-1 decode's 4096 x 11008 projection on H100 is HBM-bound: splitting k would idle no array less of
    the time that matters and add the partial sums' traffic and a reduction launch (review: TPOT 1 % slower)."""
    chip = CHIPS["h100_sxm"]
    got = tile_matmul(chip, 1, 11008, 4096, DType.bf16)
    assert got.partial_bytes == 0.0
    # a compute-bound small-output GEMM with a deep k still shares k out over the cores
    wide = dataclasses.replace(chip, gemm_schedule="waves")
    assert tile_matmul(wide, 128, 128, 65536, DType.bf16).partial_bytes > 0
