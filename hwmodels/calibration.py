"""Fitted efficiency parameters: the defaults of every chip that does not set its own.

The values live in hwmodels/calibration.yaml, written by ``llmsim-calibrate`` from measured A100
data with their provenance in its header. They describe how close a chip's kernels come to its
datasheet peaks and what fixed latencies they pay; they are applied to every chip through its
own architecture parameters, never as per-chip factors.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import yaml

CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.yaml"
FITTED_KEYS = ("matmul_efficiency", "hbm_efficiency", "hbm_latency_us", "kernel_overhead_us", "matmul_overhead_us",
               "link_efficiency",
               "link_latency_us", "collective_latency_us", "link_saturation_MB", "link_ramp_exponent")


def _load() -> MappingProxyType:
    values = yaml.safe_load(CALIBRATION_FILE.read_text()) or {}
    missing = [k for k in FITTED_KEYS if k not in values]
    if missing:
        raise RuntimeError(f"{CALIBRATION_FILE} lacks {', '.join(missing)}; re-run llmsim-calibrate")
    return MappingProxyType({k: float(values[k]) for k in FITTED_KEYS})


FITTED = _load()
