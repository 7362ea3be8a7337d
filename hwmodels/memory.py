"""Time to move bytes between HBM and the chip.

``time = hbm_latency + bytes / (hbm_bandwidth * hbm_efficiency)``: the latency term makes small
transfers fall short of the streaming bandwidth (a 1 MB transfer with 1 us latency on a
2 TB/s part reaches a third of it); long transfers reach ``hbm_efficiency`` of the peak.
"""

from __future__ import annotations

from hwmodels.chip import HardwareConfig


def hbm_time(chip: HardwareConfig, nbytes: float) -> float:
    """Seconds to read plus write ``nbytes`` of HBM traffic."""
    if nbytes <= 0:
        return 0.0
    return chip.hbm_latency_s + nbytes / (chip.hbm_bandwidth_Bps * chip.hbm_efficiency)


def achieved_hbm_bandwidth(chip: HardwareConfig, nbytes: float) -> float:
    """Bytes per second a single transfer of ``nbytes`` achieves."""
    return nbytes / hbm_time(chip, nbytes) if nbytes > 0 else 0.0
