"""SRAM capacity shapes HBM traffic: a blocking analysis worked by hand, then through whole runs."""

from __future__ import annotations

import math

import pytest

from hwmodels.memory import matmul_hbm_bytes
from sim.batch.run import simulate
from tests.conftest import make_config
from tests.test_hwmodels import npu

MiB = 2**20


def _by_hand(sram_bytes: float, m: int, n: int, k: int, e: int = 2) -> float:
    """Blocking analysis: keep an operand resident if it fits in half the SRAM, else T x T blocks."""
    a, b, c = m * k * e, k * n * e, m * n * e
    if min(a, b) <= sram_bytes / 2:
        return a + b + c
    # T^2 fp32 accumulators + two double-buffered T x 128 panels of A and B fill the SRAM
    t = int((-(4 * 128 * e) + math.sqrt((4 * 128 * e) ** 2 + 16 * sram_bytes)) / 8)
    return a * math.ceil(n / t) + b * math.ceil(m / t) + c


def test_blocking_closed_form():
    chip = npu(sram_MiB=1.0)
    m, n, k = 4096, 12288, 4096  # a Llama-2-7B QKV projection over 8 x 512 prompt tokens
    got = matmul_hbm_bytes(chip, m, n, k, m * k * 2, k * n * 2, m * n * 2)
    # 1 MiB: T = 399 (399^2*4 + 4*399*128*2 = 1,045,380 <= 1,048,576); A re-read 31x, B 11x
    assert got == _by_hand(MiB, m, n, k)
    assert got == m * k * 2 * 31 + k * n * 2 * 11 + m * n * 2


def test_operand_that_fits_is_read_once():
    chip = npu(sram_MiB=64.0)
    m, n, k = 512, 12288, 4096  # A = 4 MiB fits in half of 64 MiB
    assert matmul_hbm_bytes(chip, m, n, k, m * k * 2, k * n * 2, m * n * 2) == (m * k + k * n + m * n) * 2


@pytest.mark.parametrize("m, n, k", [(4096, 12288, 4096), (4096, 22016, 4096), (4096, 4096, 11008)])
def test_more_sram_never_more_traffic(m, n, k):
    sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    traffic = [matmul_hbm_bytes(npu(sram_MiB=s), m, n, k, m * k * 2, k * n * 2, m * n * 2) for s in sizes]
    assert traffic == sorted(traffic, reverse=True)
    assert traffic[0] > 2 * traffic[-1]
    assert traffic == [_by_hand(s * MiB, m, n, k) for s in sizes]


def test_sram_sweep_moves_prefill_gemm_bytes_and_time():
    """Llama-2-7B prefill of 8 x 512 tokens on the teaching chip at 500 GB/s, SRAM from 1 to 256 MiB."""
    rows = {}
    for sram in (1, 256):
        result = simulate(make_config("hardware=teaching_npu", f"hardware.sram_MiB={sram}", "workload.batch=8",
                                      "hardware.hbm_bandwidth_GBps=500",
                                      "workload.decode_tokens=1"))
        qkv = next(r for r in result.timeline.records if r.op.name == "qkv_proj")
        rows[sram] = qkv
    m, n, k = 4096, 12288, 4096
    for sram, rec in rows.items():
        assert rec.cost.hbm_bytes == _by_hand(sram * MiB, m, n, k)
        assert rec.cost.memory_s == pytest.approx(rec.cost.hbm_bytes / 500e9)
    small, large = rows[1], rows[256]
    # with 1 MiB the GEMM re-reads its operands: 2.25 GB instead of 0.23 GB (4.5 ms at 500 GB/s
    # against 3.25 ms of compute), and it turns memory-bound
    assert small.cost.hbm_bytes / large.cost.hbm_bytes == pytest.approx(
        _by_hand(MiB, m, n, k) / ((m * k + k * n + m * n) * 2))
    assert small.cost.bound.value == "memory" and large.cost.bound.value == "compute"
    assert small.duration_s > large.duration_s
