"""The physical range of every chip figure: a typo or a unit slip is stopped before it yields numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType


class HardwareError(ValueError):
    """An impossible or inconsistent chip description."""


# Upper ends of the physical range of each figure: (largest value accepted, why). Generous on
# purpose, an order of magnitude or more beyond any chip built or announced by 2024, so that a
# what-if design passes and only a typo or a unit slip (GHz for MHz, 1e30) is stopped before it
# yields numbers that look like results.
LIMITS: Mapping[str, tuple[float, str]] = MappingProxyType({
    "num_cores": (1e6, "a wafer-scale engine has 0.9 million cores (Cerebras WSE-3)"),
    "arrays_per_core": (1024, "a GPU SM has 4 tensor cores, a TPU core 4 MXUs"),
    "array_rows": (4096, "the largest systolic arrays are 256 x 256 (TPU v1)"),
    "array_cols": (4096, "the largest systolic arrays are 256 x 256 (TPU v1)"),
    "max_chips": (1e6, "the largest pods join 8,960 chips (TPU v5p)"),
    "freq_GHz": (10.0, "no logic clocks above 10 GHz; accelerators run at 1-3 GHz"),
    "vector_TFLOPS": (1e6, "an exaFLOP/s of vector math, 10,000 x an H100's"),
    "vector_lanes": (1e9, "a billion FMA lanes; an H100 has 16,896"),
    "sram_MiB": (1e6, "a wafer-scale engine holds 44 GB of SRAM (Cerebras WSE-3)"),
    "sram_bandwidth_TBps": (1e6, "a wafer-scale engine reaches 21,000 TB/s (Cerebras WSE-3)"),
    "sram_bytes_per_cycle": (1e9, "a wafer-scale engine's 21,000 TB/s is about 2e7 bytes per cycle (Cerebras WSE-3)"),
    "hbm_capacity_GB": (1e5, "100 TB; the largest packages hold 288 GB (MI325X)"),
    "hbm_bandwidth_GBps": (1e6, "1 PB/s; the fastest packages reach 8,000 GB/s (B200)"),
    "link_bandwidth_GBps": (1e6, "1 PB/s per direction; NVLink 5 gives 900 GB/s"),
    "host_link_GBps": (1e5, "100 TB/s; PCIe 6.0 x16 gives 128 GB/s"),
    "link_latency_us": (1e6, "a second per hop is no chip-to-chip link"),
    "hbm_latency_us": (1e6, "a second per access is no memory"),
    "kernel_overhead_us": (1e6, "a second per kernel launch is no runtime"),
    "matmul_overhead_cycles": (1e9, "a second of clock cycles per matrix kernel is no GEMM library"),
    "collective_latency_us": (1e6, "a second per collective is no collective library"),
    "hbm_stacks": (64, "packages carry up to 12 stacks"),
    "num_dies": (1024, "the largest packages join a few dozen chiplets"),
    "spare_cores": (1e6, "as num_cores"),
    "board_power_W": (1e6, "a megawatt; a wafer-scale engine draws 23 kW"),
    "published_die_area_mm2": (1e5, "a 300 mm wafer is 70,000 mm^2"),
    "core_sram_KiB": (1e6, "a GB per core; GPU SMs have 256 KiB of registers and 256 KiB of L1"),
    "other_sram_MiB": (1e6, "as sram_MiB"),
    "matmul_dtype_rate": (64, "4-bit formats run at 4 x the bf16 rate"),
})
# Lower ends, as generous: a million times below any chip's figure, so that a very slow what-if chip still
# runs (a test runs one with 1 MB/s of HBM) while 1e-30 (a slip of units or sign of the exponent), whose run
# would print 0 tokens/s and times of 1e28 s as if they were results, is stopped. Checked after the field's
# own test (> 0, finite).
FLOORS: Mapping[str, tuple[float, str]] = MappingProxyType({
    "freq_GHz": (1e-3, "1 MHz; accelerators clock at 1-3 GHz"),
    "vector_TFLOPS": (1e-3, "a GFLOP/s; an H100's vector units give 67 TFLOP/s"),
    "vector_lanes": (1e-2, "a hundredth of an FMA lane per cycle"),
    "sram_MiB": (1e-3, "a KiB; accelerators hold 32-256 MiB"),
    "sram_bandwidth_TBps": (1e-3, "a GB/s; on-chip SRAM gives tens of TB/s"),
    "sram_bytes_per_cycle": (1e-2, "a hundredth of a byte per cycle"),
    "hbm_capacity_GB": (1e-3, "a MB; packages hold 16-288 GB"),
    "hbm_bandwidth_GBps": (1e-3, "a MB/s; packages give 800-8,000 GB/s"),
    "link_bandwidth_GBps": (1e-3, "a MB/s; chip-to-chip links give 100-900 GB/s"),
    "host_link_GBps": (1e-3, "a MB/s; PCIe 4.0 x16 gives 32 GB/s"),
    "matmul_dtype_rate": (1e-3, "a thousandth of the bf16 rate"),
})
MIN_EFFICIENCY = 1e-3  # an efficiency below it (1e-30) is a slip, whose run would print 0 tokens/s as a result


def check_limit(where: str, key: str, value: float) -> None:
    """Raise HardwareError when ``hardware.<key>`` is outside its physical range (``LIMITS``, ``FLOORS``)."""
    limit, why = LIMITS[key.split(".")[0]]
    if value > limit:
        raise HardwareError(f"{where}: hardware.{key}={plain_number(value)} is out of range: at most "
                            f"{plain_number(limit)} ({why})")
    floor, why = FLOORS.get(key.split(".")[0], (-math.inf, ""))
    if value < floor:
        raise HardwareError(f"{where}: hardware.{key}={value:g} is out of range: at least {floor:g} ({why})")


def plain_number(value: float) -> str:
    """``2,000,000`` for a whole number a person would write out, ``1e+30`` otherwise."""
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"
