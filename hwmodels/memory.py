"""Time to move bytes between HBM and the chip.

``time = hbm_latency + bytes / (hbm_bandwidth * hbm_efficiency)``: the latency term makes small
transfers fall short of the streaming bandwidth (a 1 MB transfer with 1 us latency on a
2 TB/s part reaches a third of it); long transfers reach ``hbm_efficiency`` of the peak.
"""

from __future__ import annotations

import math

from hwmodels.chip import HardwareConfig


def hbm_time(chip: HardwareConfig, nbytes: float) -> float:
    """Seconds to read plus write ``nbytes`` of HBM traffic."""
    if nbytes <= 0:
        return 0.0
    return chip.hbm_latency_s + nbytes / (chip.hbm_bandwidth_Bps * chip.hbm_efficiency)


def achieved_hbm_bandwidth(chip: HardwareConfig, nbytes: float) -> float:
    """Bytes per second a single transfer of ``nbytes`` achieves."""
    return nbytes / hbm_time(chip, nbytes) if nbytes > 0 else 0.0


ACCUMULATOR_BYTES = 4  # partial sums are kept in fp32
K_CHUNK = 128  # depth of the A and B panels staged per step (double-buffered)


def matmul_hbm_bytes(chip: HardwareConfig, m: int, n: int, k: int, a_bytes: float, b_bytes: float,
                     c_bytes: float) -> float:
    """HBM traffic of ``C (m x n) = A (m x k) @ B (k x n)`` blocked for the chip's SRAM.

    The cheapest of three schedules that fit in ``sram_MiB``:

    * A resident (it fits in half the SRAM; B streams past it): ``A + B + C``;
    * B resident, likewise: ``A + B + C``;
    * square blocking: output blocks of ``T x T`` fp32 accumulators plus double-buffered
      ``T x 128`` panels of A and B fill the SRAM, so ``T = sqrt(S / (4 + 4 * 128 * e / T))``;
      every block row re-reads A once per block column and vice versa:
      ``A * ceil(n / T) + B * ceil(m / T) + C``.

    With a large SRAM this is the compulsory traffic (each operand once); with a small one
    the operands are re-read, the classic blocking analysis.
    """
    sram = chip.sram_bytes
    compulsory = a_bytes + b_bytes + c_bytes
    if min(a_bytes, b_bytes) <= sram / 2:
        return compulsory
    elem = max(a_bytes / (m * k), b_bytes / (k * n))
    # Solve T^2 * acc + 4 * T * K_CHUNK * elem = sram for the block side T.
    bb = 4 * K_CHUNK * elem
    side = (-bb + math.sqrt(bb * bb + 4 * ACCUMULATOR_BYTES * sram)) / (2 * ACCUMULATOR_BYTES)
    side = max(1, int(side))
    return a_bytes * math.ceil(n / min(side, n)) + b_bytes * math.ceil(m / min(side, m)) + c_bytes
