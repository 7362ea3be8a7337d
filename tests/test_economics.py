"""Energy, power, area and cost: closed forms, the A100/H100 checks, bad input, the CLI.

Expected values are worked out here from the coefficient tables (hwmodels/process.py and the
7 nm reference figures in energy.py and area.py), written out as numbers, never read back from
the code under test.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from hwmodels.area import RETICLE_MM2, die_area
from hwmodels.chip import HardwareConfig, HardwareError
from hwmodels.cost import chip_cost, dies_per_wafer, negative_binomial_yield, usd_per_chip_hour
from hwmodels.energy import chip_energy, mac_pJ
from hwmodels.numerics import DType
from sim.batch.run import simulate
from sim.config.schema import CostConfig, RunError
from sim.metrics.summary import summarize
from tests.conftest import make_config, run_cli

TEACHING = ("hardware=teaching_npu", "model=llama2_7b", "workload.batch=4", "workload.prompt_tokens=256",
            "workload.decode_tokens=8")
BIG_PREFILL = ("model=llama2_70b", "parallel.tp=2", "workload.batch=8", "workload.prompt_tokens=2048",
               "workload.decode_tokens=3")
SUMMARY_KEYS = ("energy_J", "avg_power_W", "peak_power_W", "joules_per_output_token", "chip_area_mm2",
                "chip_cost_usd", "usd_per_chip_hour", "usd_per_million_output_tokens",
                "output_tokens_per_s_per_usd", "output_tokens_per_s_per_W")

# Hand formulas with the table's numbers (7 nm, delivery efficiency 0.9 at the board):
#   MAC on an R x C array: arith bf16 0.21 + fp32 add 0.38 = 0.59 pJ, plus operands
#     2 B x (1/R + 1/C) + 2 x 4 B / min(R, C) at 2.0 pJ/B; the teaching chip's 64 x 64 arrays:
#     0.59 + 2.0 x (0.0625 + 0.125) = 0.965 pJ
#   vector FLOP: (1.31 + 0.38) / 2 + 4 B x 2.0 pJ/B = 8.845 pJ
#   SRAM: 12.5 / 1.3 = 9.615 pJ/B; every HBM byte twice; matmul re-reads 2 B x (1/128 + 1/256) per MAC
#   HBM2: 3.9 pJ/bit x 8 = 31.2 pJ/B; SerDes at 7 nm: 5 pJ/bit x 8 = 40 pJ/B
TEACH_VECTOR_PJ = 8.845
SRAM_PJ_7NM = 12.5 / 1.3


def hand_mac_pJ(rows: int, cols: int) -> float:
    return 0.59 + 2.0 * (2 * (1 / rows + 1 / cols) + 8 / min(rows, cols))


def hand_area_mm2(chip) -> float:
    """Area of a 7 nm chip whose formats are bf16, fp16, fp8 and int8 (fp16 sizes the array), mm^2.

    For the teaching chip: 65,536 MACs x 505.4 um^2 (= (870 + 4184) / 20 x 2) x 1.15236 (= 5824 / 5054)
    x 1.15 (3 extra formats at 5%) = 43.89; vector 5,000 lanes x 1188.4 um^2 = 5.94;
    cores 4 x 3.2 = 12.8; SRAM 32 MiB x 8,388,608 bit x 0.027 um^2 x 3 = 21.74; HBM 4 x (9 + 3) = 48;
    SerDes 800 Gb/s x 0.006 = 4.8; listed 137.17, over (1 - 0.20): 171.5 mm^2.
    """
    assert set(chip.matmul_dtype_rate) == {"bf16", "fp16", "fp8", "int8"} and chip.process_node == "7nm"
    matrix = chip.macs_per_cycle * 505.4e-6 * (5824 / 5054) * 1.15
    vector = chip.vector_lanes * 1188.4e-6
    sram = chip.sram_MiB * 8388608 * 0.027e-6 * 3
    listed = matrix + vector + chip.num_cores * 3.2 + sram + chip.hbm_stacks * 12 + chip.link_bandwidth_GBps * 8 * 0.006
    return listed / 0.8


def test_teaching_chip_area_closed_form():
    chip = make_config("hardware=teaching_npu").hardware
    area = die_area(chip)
    assert area.total_mm2 == pytest.approx(hand_area_mm2(chip), rel=1e-3)
    assert area.other_mm2 == pytest.approx(0.2 * area.total_mm2)


def test_teaching_chip_energy_coefficients_closed_form():
    chip = make_config("hardware=teaching_npu").hardware
    area = hand_area_mm2(chip)
    mac = hand_mac_pJ(chip.array_rows, chip.array_cols)
    energy = chip_energy(chip, area)
    assert mac_pJ(DType.bf16, 64, 64) == pytest.approx(0.965)
    assert energy.mac_J[DType.bf16] == pytest.approx(mac / 0.9 * 1e-12)
    assert energy.vector_J_per_flop == pytest.approx(TEACH_VECTOR_PJ / 0.9 * 1e-12)
    assert energy.hbm_J_per_byte == pytest.approx(31.2 / 0.9 * 1e-12)
    assert energy.static_W == pytest.approx((0.085 * area + 4 * 1.5) / 0.9)
    # one 1 TFLOP bf16 GEMM moving 1 GB of HBM
    parts = energy.work(matrix_flops=1e12, matrix_dtype=DType.bf16, hbm_bytes=1e9)
    assert parts.compute_J == pytest.approx(0.5e12 * mac * 1e-12 / 0.9)
    assert parts.sram_J == pytest.approx((2e9 + 0.5e12 * 2 * (1 / 128 + 1 / 256)) * SRAM_PJ_7NM * 1e-12 / 0.9)
    assert parts.hbm_J == pytest.approx(1e9 * 31.2e-12 / 0.9)


@pytest.mark.parametrize("fidelity", ["analytic", "des"])
def test_run_energy_is_the_sum_of_its_parts(fidelity):
    """Energy of a teaching run from the summary's FLOPs and bytes and the hand coefficients."""
    result = simulate(make_config(*TEACHING, "parallel.tp=2", f"fidelity={fidelity}"))
    chip = result.cfg.hardware
    mac, area = hand_mac_pJ(chip.array_rows, chip.array_cols), hand_area_mm2(chip)
    s = summarize(result)
    e = s["energy"]["by_component_J_per_chip"]
    matrix, vector = s["matrix_flops_per_chip"], s["flops_per_chip"] - s["matrix_flops_per_chip"]
    hbm, link = s["hbm_bytes_per_chip"], s["link_bytes_per_chip"]
    assert e["compute_J"] == pytest.approx((matrix / 2 * mac + vector * TEACH_VECTOR_PJ) * 1e-12 / 0.9)
    sram_bytes = 2 * hbm + matrix / 2 * 2 * (1 / 128 + 1 / 256)
    assert e["sram_J"] == pytest.approx(sram_bytes * SRAM_PJ_7NM * 1e-12 / 0.9)
    assert e["hbm_J"] == pytest.approx(hbm * 31.2e-12 / 0.9)
    assert link > 0 and e["link_J"] == pytest.approx(link * 40e-12 / 0.9)
    static_W = (0.085 * area + 4 * 1.5) / 0.9
    assert e["static_J"] == pytest.approx(static_W * s["total_s"], rel=1e-3)
    per_chip = sum(e.values())
    assert s["energy_J"] == pytest.approx(2 * per_chip)
    assert s["avg_power_W"] == pytest.approx(per_chip / s["total_s"])
    assert s["joules_per_output_token"] == pytest.approx(s["energy_J"] / (4 * 8))
    assert static_W < s["avg_power_W"] < s["peak_power_W"]


def _prefill_work(result):
    records = [r for r in result.timeline.records if r.phase.value == "prefill"]
    flops = sum(r.op.flops * r.count for r in records if r.op.unit.value == "matrix")
    hbm = sum(r.cost.hbm_bytes * r.count for r in records)
    return flops, hbm


# Board power of a compute-bound prefill, from the coefficients (W = FLOP/s x J/FLOP + bytes/s x J/B + static):
#   A100 (7 nm, 16 x 16 tensor cores): MAC (0.59 + 2.0 x (2 x 2/16 + 8/16)) = 2.09 pJ -> 1.045 pJ/FLOP;
#     SRAM re-reads 2 B x (1/128 + 1/256) / 2 = 0.01172 B/FLOP x 9.615 = 0.1127 pJ/FLOP;
#     / 0.9 -> 1.286 pJ/FLOP at the board. HBM bytes: (HBM2e 28 + 2 x 9.615) / 0.9 = 52.5 pJ/B.
#     Static: (0.085 W/mm^2 x 826 mm^2 + 5 stacks x 2.0 W) / 0.9 = 89.1 W.
#   H100 (4N, energy x 0.66, 16 x 32): MAC (0.59 + 2.0 x (2/16 + 2/32 + 8/16)) x 0.66 = 1.2969 pJ -> 0.6485 pJ/FLOP;
#     SRAM 0.1127 x 0.66 = 0.0744; / 0.9 -> 0.8032 pJ/FLOP. HBM bytes: (HBM3 24.8 + 2 x 9.615 x 0.66) / 0.9
#     = 41.7 pJ/B. Static: (0.09 x 814 + 5 x 2.5) / 0.9 = 95.3 W.
POWER_CHECK = {
    "a100_80gb": (400.0, 1.286e-12, 52.5e-12, 89.1),
    "h100_sxm": (700.0, 0.8032e-12, 41.7e-12, 95.3),
}


@pytest.mark.parametrize("hardware", sorted(POWER_CHECK))
def test_uncapped_compute_bound_prefill_draws_its_tdp(hardware):
    """power.cap=false: every kernel at the boost clock; a compute-bound prefill then draws the TDP, +-10 %."""
    board, j_per_flop, j_per_byte, static = POWER_CHECK[hardware]
    result = simulate(make_config(f"hardware={hardware}", *BIG_PREFILL, "power.cap=false"))
    s = summarize(result)
    flops, hbm = _prefill_work(result)
    ttft = s["ttft_s"]
    expected = flops / ttft * j_per_flop + hbm / ttft * j_per_byte + static
    power = s["energy"]["power_W_by_phase"]
    assert power["prefill"] == pytest.approx(expected, rel=0.05)  # the model adds vector and link energy
    assert 0.9 * board <= power["prefill"] <= 1.1 * board
    assert power["decode"] < power["prefill"]  # memory-bound decode steps draw less
    assert s["avg_power_W"] <= s["peak_power_W"]
    assert s["sustained_clock_GHz"] == result.cfg.hardware.freq_GHz and not s["energy"]["power_limited"]


@pytest.mark.parametrize("hardware", sorted(POWER_CHECK))
def test_capped_runs_never_draw_more_than_the_budget(hardware):
    """power.cap on (the default): no kernel draws more than the board budget; the clock drops, and the
    summary says so."""
    board = POWER_CHECK[hardware][0]
    capped = summarize(simulate(make_config(f"hardware={hardware}", *BIG_PREFILL)))
    free = summarize(simulate(make_config(f"hardware={hardware}", *BIG_PREFILL, "power.cap=false")))
    assert free["peak_power_W"] > board >= capped["peak_power_W"] * (1 - 1e-9)
    assert capped["energy"]["power_limited"] and capped["energy"]["power_cap"]
    freq = make_config(f"hardware={hardware}").hardware.freq_GHz
    assert 0.8 * freq < capped["energy"]["min_clock_GHz"] <= capped["sustained_clock_GHz"] < freq
    assert capped["ttft_s"] > free["ttft_s"]


@pytest.mark.parametrize("hardware, published", [("a100_80gb", 826.0), ("h100_sxm", 814.0)])
def test_die_area_from_the_architecture_within_20_percent(hardware, published):
    chip = make_config(f"hardware={hardware}").hardware
    assert chip.published_die_area_mm2 == published
    assert die_area(chip).total_mm2 == pytest.approx(published, rel=0.20)


def test_dies_per_wafer_and_yield_closed_form():
    # 100 mm^2: pi 150^2 / 100 - pi 300 / sqrt(200) = 706.86 - 66.64 = 640.2
    assert dies_per_wafer(100.0) == 640
    # 1 cm^2 at 0.1 defects/cm^2, alpha 3: (1 + 0.1 / 3)^-3
    assert negative_binomial_yield(100.0, 0.1) == pytest.approx((1 + 0.1 / 3) ** -3)
    assert negative_binomial_yield(100.0, 0.0) == 1.0


def test_bigger_dies_and_dirtier_processes_cost_more():
    small = HardwareConfig(name="s", num_cores=16, hbm_stacks=2)
    large = HardwareConfig(name="l", num_cores=48, hbm_stacks=2)
    a_small, a_large = die_area(small), die_area(large)
    assert a_large.total_mm2 > a_small.total_mm2
    c_small, c_large = chip_cost(small, a_small), chip_cost(large, a_large)
    assert c_large.die_yield < c_small.die_yield
    assert c_large.silicon_usd / a_large.total_mm2 > c_small.silicon_usd / a_small.total_mm2  # per mm^2, too
    clean, dirty = chip_cost(large, a_large, defects_per_cm2=0.05), chip_cost(large, a_large, defects_per_cm2=0.2)
    assert dirty.total_usd > clean.total_usd and dirty.die_yield < clean.die_yield
    yields = [negative_binomial_yield(a, 0.1) for a in (50, 200, 400, 800)]
    assert yields == sorted(yields, reverse=True)


def test_cost_per_chip_hour_closed_form():
    # $3,000 over 3 years of 8766 h at 50% use, plus 500 W at $0.10/kWh
    got = usd_per_chip_hour(3000.0, 500.0, usd_per_kWh=0.10, amortisation_years=3.0, utilisation=0.5)
    assert got == pytest.approx(3000 / (3 * 8766 * 0.5) + 0.05)


def test_reticle_limit_and_chiplets():
    with pytest.raises(HardwareError, match=r"over the 858 mm\^2 reticle limit .*hardware.num_dies="):
        HardwareConfig(name="huge", num_cores=64)
    split = HardwareConfig(name="huge", num_cores=64, num_dies=2)
    area = die_area(split)
    assert area.total_mm2 > RETICLE_MM2 >= area.die_mm2 == pytest.approx(area.total_mm2 / 2)
    assert chip_cost(split, area).silicon_usd > 0


@pytest.mark.parametrize("change, words", [
    ({"process_node": "2nm"}, "unknown process node '2nm'; known nodes: 16nm, 12nm, 7nm, 6nm, 5nm, 4nm, 3nm"),
    ({"hbm_generation": "hbm9"}, "unknown HBM generation 'hbm9'"),
    ({"hbm_stacks": 0}, "hardware.hbm_stacks must be a whole number >= 1"),
    ({"board_power_W": -1.0}, "hardware.board_power_W must be >= 0"),
])
def test_bad_hardware_economics_fields(change, words):
    with pytest.raises(HardwareError, match=words):
        HardwareConfig(name="x", **change)


@pytest.mark.parametrize("change, words", [
    ({"usd_per_kWh": -0.1}, "cost.usd_per_kWh must be >= 0"),
    ({"usd_per_chip_hour": -2.0}, "cost.usd_per_chip_hour must be >= 0"),
    ({"utilisation": 0.0}, "cost.utilisation must be in"),
])
def test_bad_prices(change, words):
    with pytest.raises(RunError, match=words):
        CostConfig(**change)


def test_price_override_sets_the_cost_per_token():
    s = summarize(simulate(make_config(*TEACHING, "cost.usd_per_chip_hour=2.5")))
    assert s["usd_per_chip_hour"] == 2.5
    assert s["usd_per_million_output_tokens"] == pytest.approx(2.5 * s["total_s"] / 3600 / 32 * 1e6)
    assert s["cost"]["usd_per_chip_hour_source"] == "cost.usd_per_chip_hour"


@pytest.mark.slow
def test_cli_writes_the_new_keys_and_ops_energy(tmp_path):
    proc = run_cli(f"hydra.run.dir={tmp_path}", *TEACHING, "fidelity=analytic")
    assert proc.returncode == 0, proc.stderr
    for words in ("energy ", "J per output token", "per million output tokens", "2023 API prices", "$60",
                  "output tokens/s per W"):
        assert words in proc.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert summary[key] > 0 and math.isfinite(summary[key]), key
    ops = pd.read_parquet(tmp_path / "ops.parquet")
    # analytic: ops never overlap, so instances x per-op energy add up to the run's energy per chip
    assert (ops["energy_J"] * ops["count"]).sum() == pytest.approx(
        summary["energy_J"] - summary["energy"]["by_component_J_per_chip"]["host_J"], rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("args, words", [
    (["hardware.process_node=2nm"], "known nodes: 16nm"),
    (["cost.usd_per_kWh=-1"], "cost.usd_per_kWh must be >= 0"),
    (["hardware.num_cores=400"], "over the 858 mm^2 reticle limit"),
])
def test_bad_economics_input_is_one_line(tmp_path, args, words):
    proc = run_cli(f"hydra.run.dir={tmp_path}", *args)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_phase_power_with_overlapping_pipeline_micro_batches_brackets_the_average():
    """parallel.pp=2: the micro-batches' passes overlap, so a phase's power is its energy over the wall time its
    passes cover (their union), not over their summed durations, which counted the overlap twice and put both
    phases below the run's average (independent review: prefill 272 W, decode 107 W, average 363 W)."""
    result = simulate(make_config("model=llama2_13b", "parallel.pp=2", "workload.batch=8", "workload.prompt_tokens=512",
                                  "workload.decode_tokens=8"))
    s = summarize(result)
    power = s["energy"]["power_W_by_phase"]
    assert min(power.values()) <= s["avg_power_W"] <= max(power.values())
    prefill = sorted((p for p in result.timeline.passes if p.phase.value == "prefill"), key=lambda p: p.start_s)
    assert prefill[0].end_s > prefill[1].start_s  # the micro-batches' prefills overlap
    assert all(w >= s["energy"]["static_power_W"] for w in power.values())
