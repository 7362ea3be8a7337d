"""Time on the compute arrays and the vector unit.

Matmul model (one kernel computing ``groups`` independent ``m x k @ k x n`` products):

* the output is cut into tiles of ``array_rows x array_cols`` (one tile per array pass), so
  ``m`` and ``n`` are padded up to the array size: ``pad = m*n / (ceil(m/R)*R * ceil(n/C)*C)``;
* the tiles are spread over all arrays of the chip in waves; the last wave may be partly idle:
  ``wave = tiles / (ceil(tiles / arrays) * arrays)``;
* a large, perfectly tiled matmul reaches ``matmul_efficiency`` of peak.

``time = 2*m*n*k*groups / (peak(dtype) * matmul_efficiency * pad * wave)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwmodels.chip import HardwareConfig
from hwmodels.numerics import DType


@dataclass(frozen=True, slots=True)
class ComputeCost:
    """Seconds on a compute unit and why."""

    seconds: float
    efficiency: float  # achieved fraction of the format's peak
    dtype_run: DType | None  # the format the arrays computed in; None: on the vector unit


def tile_utilisation(chip: HardwareConfig, m: int, n: int, groups: int = 1) -> tuple[float, float]:
    """Padding and wave-quantisation utilisation of a ``groups x (m x n)`` output on the arrays."""
    rows, cols = chip.array_rows, chip.array_cols
    tiles_m, tiles_n = math.ceil(m / rows), math.ceil(n / cols)
    padding = (m * n) / (tiles_m * rows * tiles_n * cols)
    tiles = tiles_m * tiles_n * groups
    waves = math.ceil(tiles / chip.num_arrays)
    wave = tiles / (waves * chip.num_arrays)
    return padding, wave


def matmul_time(
    chip: HardwareConfig, m: int, n: int, k: int, dtype: DType, groups: int = 1, flops: float | None = None
) -> ComputeCost:
    """Time of ``groups`` matmuls of ``(m x k) @ (k x n)`` in ``dtype`` on the matrix arrays.

    ``flops`` defaults to ``2*m*n*k*groups``; kernels that skip work (causal attention skips
    masked blocks) pass what they execute, and the shape still sets the tile utilisation.
    """
    if min(m, n, k, groups) <= 0:
        return ComputeCost(0.0, 1.0, chip.matmul_dtype(dtype))
    if flops is None:
        flops = 2.0 * m * n * k * groups
    run_as = chip.matmul_dtype(dtype)
    if run_as is None:  # no matrix format fits: the vector unit does the multiply-adds
        return ComputeCost(flops / (chip.vector_flops * chip.vector_efficiency), chip.vector_efficiency, None)
    padding, wave = tile_utilisation(chip, m, n, groups)
    efficiency = chip.matmul_efficiency * padding * wave
    return ComputeCost(flops / (chip.peak_flops(dtype) * efficiency), efficiency, run_as)


def vector_time(chip: HardwareConfig, flops: float) -> ComputeCost:
    """Time of ``flops`` elementwise/reduction operations on the vector unit."""
    seconds = flops / (chip.vector_flops * chip.vector_efficiency) if flops > 0 else 0.0
    return ComputeCost(seconds, chip.vector_efficiency, DType.fp32)
