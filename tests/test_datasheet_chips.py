"""The 2024-25 chip presets (issue 18): the simulator derives each chip's headline datasheet figures.

Peak matrix rates are never typed into a preset; they follow from cores x arrays x array size x
clock x format rate (hwmodels/chip.py). These tests compose each preset as the CLI does and check
what comes out against the vendor's own numbers, so a slip in the array structure, the clock or a
format's rate is caught. Sources are in each preset's comments.
"""

from __future__ import annotations

import pytest

from hwmodels.kernels import attention_efficiency, attention_family
from hwmodels.numerics import DType
from sim.batch.run import simulate
from sim.config.schema import RunError, check_run
from tests.conftest import make_config

# name -> (dense TFLOP/s by format, HBM TB/s, HBM GB, per-direction link GB/s), as the vendors state them.
DATASHEET: dict[str, tuple[dict[DType, float], float, float, float]] = {
    # HGX B200 specifications (per GPU, sparse halved); NVLink5 1.8 TB/s bidirectional.
    "b200": ({DType.bf16: 2250.0, DType.fp8: 4500.0, DType.fp4: 9000.0, DType.int8: 4500.0}, 7.7, 180.0, 900.0),
    # MI325X datasheet 2024; 7 x 128 GB/s bidirectional Infinity Fabric links.
    "mi325x": ({DType.bf16: 1307.4, DType.fp8: 2614.9}, 6.0, 256.0, 448.0),
    # MI355X datasheet 2025; 7 x 153.6 GB/s bidirectional Infinity Fabric links.
    "mi355x": ({DType.bf16: 2516.6, DType.fp8: 5033.2, DType.fp4: 10066.3}, 8.0, 288.0, 537.6),
    # "TPU v6e" docs page: 918 TFLOPS bf16, 1836 TOPS int8, 800 GB/s bidirectional ICI.
    "tpu_v6e": ({DType.bf16: 918.0, DType.int8: 1836.0}, 1.64, 32.0, 400.0),
    # Hot Chips 2024: bf16 = fp8 = 1835 TFLOPS; 21 of 24 x 200GbE ports for scale-up (Gaudi docs).
    "gaudi3": ({DType.bf16: 1835.0, DType.fp8: 1835.0}, 3.67, 128.0, 525.0),
}
NEW_CHIPS = tuple(DATASHEET)


@pytest.fixture(scope="module", params=NEW_CHIPS)
def chip(request):
    return make_config(f"hardware={request.param}").hardware


def test_peaks_capacity_and_bandwidth_match_the_datasheet(chip):
    peaks, hbm_TBps, hbm_GB, link_GBps = DATASHEET[chip.name]
    for dtype, tflops in peaks.items():
        assert chip.supports(dtype), (chip.name, dtype)
        assert chip.peak_flops(dtype) / 1e12 == pytest.approx(tflops, rel=0.005), (chip.name, dtype)
    assert chip.hbm_bandwidth_Bps / 1e12 == pytest.approx(hbm_TBps, rel=1e-9)
    assert chip.hbm_capacity_bytes / 1e9 == pytest.approx(hbm_GB, rel=1e-9)
    assert chip.link_bandwidth_GBps == pytest.approx(link_GBps, rel=1e-9)


def test_fp4_only_where_the_arrays_have_it(chip):
    assert chip.supports(DType.fp4) == (chip.name in ("b200", "mi355x"))


def test_new_architectures_cost_attention_by_tiling():
    """No published attention-kernel efficiency for Blackwell, CDNA 4 or Gaudi: fused means tiled."""
    for architecture in ("blackwell", "cdna4", "gaudi"):
        assert attention_family("fused", architecture) == ""
        assert attention_efficiency("fused", architecture, DType.bf16) is None
        assert attention_efficiency("flash2", architecture, DType.bf16) is None


def test_flash3_is_refused_off_hopper():
    cfg = make_config("hardware=b200", "attention.kernel=flash3")
    with pytest.raises(RunError, match="runs only on hopper"):
        check_run(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW_CHIPS)
def test_a_tensor_parallel_llama3_70b_runs_on_each(name):
    cfg = make_config(f"hardware={name}", "model=llama3_70b", "parallel.tp=8", "workload.prompt_tokens=128",
                      "workload.decode_tokens=4")
    result = simulate(cfg)
    assert result.timeline.end_s > 0
