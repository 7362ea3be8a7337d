"""Hardware cost functions against closed forms worked out by hand."""

from __future__ import annotations

import math

import pytest

from hwmodels import Collective, DType, HardwareConfig, HardwareError, collective_time, hbm_time, matmul_time
from hwmodels.compute import tile_matmul, vector_time


def npu(**changes) -> HardwareConfig:
    """The teaching chip: 4 cores x one 128x128 array at 1 GHz, 1 TB/s, ideal efficiencies."""
    base = dict(name="npu", num_cores=4, arrays_per_core=1, array_rows=128, array_cols=128, freq_GHz=1.0,
                matmul_dtype_rate={"bf16": 1.0, "int8": 2.0}, vector_TFLOPS=10.0, hbm_bandwidth_GBps=1000.0,
                link_bandwidth_GBps=100.0, link_latency_us=1.0, link_efficiency=1.0, collective_latency_us=0.0,
                link_ramp_exponent=0.0, matmul_efficiency=1.0, vector_efficiency=1.0,
                hbm_efficiency=1.0, hbm_latency_us=0.0, kernel_overhead_us=0.0,
                matmul_overhead_cycles=0.0)
    base.update(changes)
    return HardwareConfig(**base)


def test_peak_is_derived_from_the_arrays():
    chip = npu()
    assert chip.peak_flops(DType.bf16) == 4 * 128 * 128 * 2 * 1e9  # 131.072 TFLOP/s
    assert chip.peak_flops(DType.int8) == 2 * chip.peak_flops(DType.bf16)
    assert chip.ridge_flop_per_byte == pytest.approx(131.072)


def test_large_aligned_matmul_runs_at_peak_less_fill_and_drain():
    chip = npu()
    m, n, k = 4096, 4096, 4096
    cost = matmul_time(chip, m, n, k, DType.bf16)
    # every tile takes k + R + C cycles for k useful ones: the systolic pipeline fills and drains
    fill = (k + 128 + 128) / k
    assert cost.seconds == pytest.approx(2 * m * n * k / 131.072e12 * fill)
    assert cost.efficiency == pytest.approx(1 / fill)


def test_padding_to_the_array():
    chip = npu()
    # m=1 pads to a 128-row tile: 1/128 of each array pass is useful; 4 tiles on 4 cores, one wave
    cost = matmul_time(chip, 1, 512, 1024, DType.bf16)
    assert cost.seconds == pytest.approx((1024 + 256) / 1e9)
    assert cost.efficiency == pytest.approx(1 / 128 * 1024 / 1280)


def test_wave_quantisation():
    chip = npu()
    # 5 tiles of 128x128 on 4 cores: two waves, the second a quarter full
    cost = matmul_time(chip, 128, 5 * 128, 1024, DType.bf16)
    tiling = tile_matmul(chip, 128, 5 * 128, 1024, DType.bf16)
    assert cost.seconds == pytest.approx(2 * (1024 + 256) / 1e9)
    assert tiling.waves * chip.num_cores >= tiling.tiles


def test_stream_k_shares_a_lone_tile_over_the_cores_without_an_hbm_workspace():
    """One 128x128 output tile, k = 4096, 4 cores. Its operands take 2.1 us to read at 1 TB/s whatever the
    tiling, so split-K 4 (1024 + 256 cycles, 1.28 us) would wait on them and write and read back 4 fp32 slices
    (0.52 us); split-K 2 runs 2048 + 256 cycles, about that floor, with 2 slices (0.26 us): the chooser takes it.
    Stream-K gives each core 1024 k-steps over two tile segments (two fills and drains, 1024 + 2 x 256 cycles)
    and adds the partials in SRAM."""
    waves = tile_matmul(npu(), 128, 128, 4096, DType.bf16)
    assert waves.partial_bytes == 2 * 128 * 128 * 4 * 2 and waves.compute_s == pytest.approx(2304e-9)
    streamed = tile_matmul(npu(gemm_schedule="stream_k"), 128, 128, 4096, DType.bf16)
    assert streamed.partial_bytes == 0.0 and streamed.compute_s == pytest.approx((1024 + 2 * 256) * 1e-9)


def test_a_stream_k_unit_gets_at_least_eight_k_tiles():
    """k = 1024 in 16-bit is 16 k-tiles of 64: two units of 8, so only 2 of the 4 cores share the tile."""
    from hwmodels.compute import _stream_k

    tiling = _stream_k(npu(gemm_schedule="stream_k"), 128, 128, 1, 1, 1024, 1e-9, 2.0, 128 * 2.0 + 128 * 2.0)
    assert tiling.compute_s == pytest.approx((512 + 2 * 256) * 1e-9)


def test_bigger_array_wastes_more_on_a_small_matmul():
    small, huge = npu(), npu(array_rows=256, array_cols=256, num_cores=1)
    assert small.peak_flops(DType.bf16) == huge.peak_flops(DType.bf16)
    # 128 x 512 output: four 128x128 tiles fill the four small arrays in one pass of k+256 cycles;
    # the one 256x256 array pads 128 rows to 256 and needs two passes of k+512 cycles.
    t_small = matmul_time(small, 128, 512, 4096, DType.bf16).seconds
    t_huge = matmul_time(huge, 128, 512, 4096, DType.bf16).seconds
    assert t_small == pytest.approx((4096 + 256) / 1e9)
    assert t_huge == pytest.approx(2 * (4096 + 512) / 1e9)


def test_small_tiles_can_be_sram_bound():
    chip = npu(sram_bandwidth_TBps=0.1)
    tiling = tile_matmul(chip, 4096, 4096, 4096, DType.bf16)
    assert tiling.sram_s > tiling.compute_s
    # the tuner then prefers the largest tiles: fewer panel re-reads
    assert (tiling.tile_m, tiling.tile_n) == (512, 512)
    assert tiling.sram_s == pytest.approx(64 * (512 + 512) * 4096 * 2 / 0.1e12)


def test_missing_format_falls_back_within_its_kind():
    chip = npu(matmul_dtype_rate={"bf16": 1.0, "int8": 2.0})
    assert chip.matmul_dtype(DType.int4) is DType.int8
    assert chip.matmul_dtype(DType.fp8) is DType.bf16
    assert chip.matmul_dtype(DType.fp32) is None  # no fp32 arrays: the vector unit does it
    cost = matmul_time(chip, 256, 256, 256, DType.fp32)
    assert cost.dtype_run is None
    assert cost.seconds == pytest.approx(2 * 256**3 / 10e12)


def test_hbm_time_is_latency_plus_streaming():
    chip = npu(hbm_latency_us=1.0, hbm_efficiency=0.8)
    assert hbm_time(chip, 0) == 0.0
    assert hbm_time(chip, 1e9) == pytest.approx(1e-6 + 1e9 / (1e12 * 0.8))


def test_vector_time():
    assert vector_time(npu(), 1e10).seconds == pytest.approx(1e-3)


@pytest.mark.parametrize("p", [2, 4, 8])
def test_ring_allreduce_alpha_beta(p):
    chip = npu()
    nbytes = 64e6
    cost = collective_time(chip, Collective.allreduce, nbytes, p)
    assert cost.latency_s == pytest.approx(2 * (p - 1) * 1e-6)
    assert cost.transfer_s == pytest.approx(2 * (p - 1) / p * nbytes / 100e9)
    gather = collective_time(chip, Collective.allgather, nbytes, p)
    assert gather.transfer_s == pytest.approx(cost.transfer_s / 2)


def test_collective_over_one_chip_is_free():
    assert collective_time(npu(), Collective.allreduce, 1e9, 1).seconds == 0.0


def test_allreduce_goes_from_latency_bound_to_bandwidth_bound():
    chip = npu()
    small = collective_time(chip, Collective.allreduce, 1e3, 8)
    large = collective_time(chip, Collective.allreduce, 1e9, 8)
    assert small.latency_s > small.transfer_s
    assert large.transfer_s > 100 * large.latency_s
    # bus bandwidth approaches the link bandwidth for large messages
    busbw = 2 * 7 / 8 * 1e9 / large.seconds
    assert busbw == pytest.approx(100e9, rel=1e-3)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"hbm_bandwidth_GBps": -1.0}, "hbm_bandwidth_GBps must be a finite number > 0"),
        ({"num_cores": 0}, "num_cores must be a whole number >= 1"),
        ({"array_rows": 0}, "array_rows"),
        ({"link_bandwidth_GBps": 0.0}, "link_bandwidth_GBps must be a finite number > 0"),
        ({"hbm_efficiency": 1.5}, "hbm_efficiency must be in [0.001, 1]"),
        ({"matmul_efficiency": 1e-30}, "matmul_efficiency must be in [0.001, 1]"),  # ran: 0.0 tokens/s
        ({"matmul_dtype_rate": {"bf17": 1.0}}, "unknown number format 'bf17'"),
        ({"matmul_dtype_rate": {}}, "matmul_dtype_rate is empty"),
    ],
)
def test_impossible_hardware_is_rejected(change, words):
    with pytest.raises(HardwareError, match=re_escape(words)):
        npu(**change)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_units_convert_once():
    chip = npu(sram_MiB=2.0, hbm_capacity_GB=80.0)
    assert chip.sram_bytes == 2 * 2**20
    assert chip.hbm_capacity_bytes == 80e9
    assert math.isclose(chip.link_bandwidth_Bps, 100e9)


@pytest.mark.parametrize("rows", [16, 64, 128, 256])
def test_a_tile_streams_the_rows_it_holds_not_its_padding(rows):
    """A GEMV (m = 1) streams one row of A per column tile and all of B, whatever the arrays' height: its SRAM time
    is the closed form, the same for every array height (an independent review found the padded rows streamed too,
    so taller arrays made decode slower: GB200 +0.4 % per doubling)."""
    chip = npu(array_rows=rows, sram_bytes_per_cycle=64.0)  # a narrow SRAM, so its time shows
    m, n, k = 1, 4096, 4096
    got = tile_matmul(chip, m, n, k, DType.bf16)
    col_tiles, row_tiles = -(-n // got.tile_n), -(-m // got.tile_m)
    assert row_tiles == 1
    streamed = (m * col_tiles * 2.0 + n * row_tiles * 2.0) * k  # bytes: A's one row per column tile, B once
    assert got.sram_s == pytest.approx(streamed / chip.sram_bandwidth_Bps, rel=1e-12)
    assert got.sram_s == pytest.approx(tile_matmul(npu(array_rows=16, sram_bytes_per_cycle=64.0), m, n, k,
                                                   DType.bf16).sram_s, rel=0.01)
