"""Hardware cost functions against closed forms worked out by hand."""

from __future__ import annotations

import math

import pytest

from hwmodels import Collective, DType, HardwareConfig, HardwareError, collective_time, hbm_time, matmul_time
from hwmodels.compute import tile_utilisation, vector_time


def npu(**changes) -> HardwareConfig:
    """The teaching chip: 4 cores x one 128x128 array at 1 GHz, 1 TB/s, ideal efficiencies."""
    base = dict(name="npu", num_cores=4, arrays_per_core=1, array_rows=128, array_cols=128, freq_GHz=1.0,
                matmul_dtype_rate={"bf16": 1.0, "int8": 2.0}, vector_TFLOPS=10.0, hbm_bandwidth_GBps=1000.0,
                link_bandwidth_GBps=100.0, link_latency_us=1.0, matmul_efficiency=1.0, vector_efficiency=1.0,
                hbm_efficiency=1.0)
    base.update(changes)
    return HardwareConfig(**base)


def test_peak_is_derived_from_the_arrays():
    chip = npu()
    assert chip.peak_flops(DType.bf16) == 4 * 128 * 128 * 2 * 1e9  # 131.072 TFLOP/s
    assert chip.peak_flops(DType.int8) == 2 * chip.peak_flops(DType.bf16)
    assert chip.ridge_flop_per_byte == pytest.approx(131.072)


def test_large_aligned_matmul_runs_at_peak():
    chip = npu()
    m, n, k = 4096, 4096, 4096
    cost = matmul_time(chip, m, n, k, DType.bf16)
    assert cost.efficiency == 1.0
    assert cost.seconds == pytest.approx(2 * m * n * k / 131.072e12)


def test_padding_and_wave_quantisation():
    chip = npu()
    # m=1 pads to 128 rows: 1/128 of the array does useful work.
    padding, wave = tile_utilisation(chip, 1, 128 * 4)
    assert padding == pytest.approx(1 / 128) and wave == 1.0
    # 5 tiles on 4 arrays: two waves, the second one quarter full -> 5/8.
    padding, wave = tile_utilisation(chip, 128, 5 * 128)
    assert padding == 1.0 and wave == pytest.approx(5 / 8)
    cost = matmul_time(chip, 128, 5 * 128, 1024, DType.bf16)
    assert cost.seconds == pytest.approx(2 * 128 * 640 * 1024 / (131.072e12 * 5 / 8))


def test_bigger_array_wastes_more_on_a_small_matmul():
    small, huge = npu(), npu(array_rows=256, array_cols=256, num_cores=1)
    assert small.peak_flops(DType.bf16) == huge.peak_flops(DType.bf16)
    # 128 x 512 output: four 128x128 tiles fill the four small arrays in one wave; on the one
    # 256x256 array it pads to 256 rows (half wasted) and takes two passes.
    t_small = matmul_time(small, 128, 512, 4096, DType.bf16).seconds
    t_huge = matmul_time(huge, 128, 512, 4096, DType.bf16).seconds
    assert t_huge == pytest.approx(2 * t_small)


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
        ({"hbm_bandwidth_GBps": -1.0}, "hbm_bandwidth_GBps must be > 0"),
        ({"num_cores": 0}, "num_cores must be a whole number >= 1"),
        ({"array_rows": 0}, "array_rows"),
        ({"link_bandwidth_GBps": 0.0}, "link_bandwidth_GBps must be > 0"),
        ({"hbm_efficiency": 1.5}, "hbm_efficiency must be in (0, 1]"),
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
