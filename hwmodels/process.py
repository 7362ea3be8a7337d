"""Technology tables: what a logic process node and an HBM generation cost in energy, area, money.

Two small tables of frozen records, read by ``energy.py``, ``area.py`` and ``cost.py``:

* ``NODES``: logic process nodes (TSMC names; ``"4nm"`` is NVIDIA's 4N, an N5-family node).
  Energy and area are given *relative to 7 nm* (N7), where ``energy.py`` and ``area.py`` keep
  their absolute reference coefficients, so each node needs only its scaling and a source;
* ``HBM``: HBM generations: access energy, background power, price.

Every figure is public or an estimate derived from public figures; the comment beside each
says which. Estimates are marked ESTIMATE. No figure here was fitted to the check chips
except where a comment says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class ProcessNode:
    """Per-node coefficients.

    Attributes:
        name: the key (``"7nm"``).
        energy_scale: dynamic energy per operation (arithmetic, operand and SRAM access) relative
            to 7 nm, at the node's nominal voltage.
        leakage_W_per_mm2: static (leakage plus clock-gated idle) power of logic at operating
            temperature, W per mm^2 of die.
        link_pJ_per_bit: chip-to-chip SerDes energy per bit sent (transmitter plus receiver).
        host_pJ_per_bit: host interface (PCIe) energy per bit moved, both ends.
        logic_area_scale: logic area relative to 7 nm (1 / logic density gain).
        sram_bitcell_um2: high-density 6T SRAM bit cell, um^2.
        analog_area_scale: PHY and SerDes area relative to 7 nm (bump- and analog-limited,
            scales far less than logic).
        wafer_usd: foundry sale price of one processed 300 mm wafer, USD.
        defect_density_per_cm2: random defect density D0 of a mature process, per cm^2.
        nominal_clock_GHz: the fastest clock logic of this node reaches at its nominal voltage
            (the energy coefficients hold up to it). Above it the voltage rises with the clock
            (dynamic energy per operation x (f / f_nom)^2) and logic is upsized and pipelined
            deeper (area, hwmodels/area.py ``timing_factor``).
    """

    name: str
    energy_scale: float
    leakage_W_per_mm2: float
    link_pJ_per_bit: float
    host_pJ_per_bit: float
    logic_area_scale: float
    sram_bitcell_um2: float
    analog_area_scale: float
    wafer_usd: float
    defect_density_per_cm2: float
    nominal_clock_GHz: float = 1.8


# Sources (short names used in the comments below):
#   TSMC-PPA: TSMC's published node-to-node claims at iso-speed (technology symposium / press
#     releases): N7 vs 16FF+ -60% power, 3.3x logic density; N6 vs N7 +18% logic density, same
#     power; N5 vs N7 -30% power, 1.84x logic density; N4 vs N5 ~+6% density, a few % power;
#     N3E vs N5 -34% power, 1.6x logic density.
#   BITCELL: TSMC HD SRAM bit cells: 16FF+ 0.074 um^2, N7 0.027 um^2, N5 0.021 um^2, N3E 0.021
#     um^2 (IEDM 2022, "SRAM scaling stalls"), as reported by WikiChip Fuse and Tom's Hardware.
#   CSET: Khan & Mann, "AI Chips: What They Are and Why They Matter", CSET 2020, table of
#     foundry sale price per 300 mm wafer: 16/12 nm $3,984, 7 nm $9,346, 5 nm $16,988.
#   D0: TSMC defect densities reported at its 2020 technology symposium (AnandTech, Aug 2020):
#     N7 ~0.09/cm^2 mature, N5 ~0.10/cm^2 at ramp and falling; older nodes lower.
#   LEAK: ESTIMATE from idle board power read by nvidia-smi on an idle A100 SXM (~50-60 W) and
#     H100 SXM (~70 W), less HBM background power, over the die area, times ~1.4 for the higher
#     junction temperature under load.
#   SERDES: ESTIMATE from ISSCC long-reach SerDes papers 2019-2023 (56-112 Gb/s at 4-7 pJ/bit
#     at 7/5 nm, ~8-10 pJ/bit at 16 nm); host PCIe Gen4/5 links taken as ~1.5x that with the
#     controller.
#   CLOCK: ESTIMATE (range +-15%): the highest sustained boost clocks of large accelerator dies
#     on each node without a vendor-declared overclock: 16/12 nm V100 1.53 GHz; 7/6 nm MI250X
#     1.70 GHz, A100 1.41 GHz; 5/4 nm MI300X 2.10 GHz, H100 1.98 GHz max boost; 3 nm MI355X
#     2.40 GHz (vendor datasheets 2017-2025), rounded up to the node's figure below.
_N16 = ProcessNode("16nm", energy_scale=2.5, leakage_W_per_mm2=0.06, link_pJ_per_bit=9.0, host_pJ_per_bit=14.0,
                   logic_area_scale=2.5, sram_bitcell_um2=0.074, analog_area_scale=1.5, wafer_usd=3984.0,
                   defect_density_per_cm2=0.05, nominal_clock_GHz=1.6)
# _N16: TSMC-PPA (1/0.4 power), CHIPS (GV100 -> GA100), BITCELL, CSET, D0, CLOCK
NODES: dict[str, ProcessNode] = {
    "16nm": _N16,
    "12nm": replace(_N16, name="12nm"),  # 12FFN: a 16FF+ variant, same coefficients
    # The reference node: absolute coefficients in energy.py and area.py are for N7.
    "7nm": ProcessNode("7nm", energy_scale=1.0, leakage_W_per_mm2=0.085, link_pJ_per_bit=5.0, host_pJ_per_bit=8.0,
                       logic_area_scale=1.0, sram_bitcell_um2=0.027, analog_area_scale=1.0, wafer_usd=9346.0,
                       defect_density_per_cm2=0.09, nominal_clock_GHz=1.8),  # BITCELL, CSET, D0, LEAK, SERDES, CLOCK
    # N6: N7 design rules with EUV layers; wafer price ESTIMATE at the N7 price.
    "6nm": ProcessNode("6nm", energy_scale=1.0, leakage_W_per_mm2=0.085, link_pJ_per_bit=5.0, host_pJ_per_bit=8.0,
                       logic_area_scale=1 / 1.18, sram_bitcell_um2=0.027, analog_area_scale=1.0, wafer_usd=9346.0,
                       defect_density_per_cm2=0.08, nominal_clock_GHz=1.8),  # TSMC-PPA, BITCELL, CLOCK
    "5nm": ProcessNode("5nm", energy_scale=0.70, leakage_W_per_mm2=0.09, link_pJ_per_bit=4.5, host_pJ_per_bit=7.0,
                       logic_area_scale=1 / 1.55, sram_bitcell_um2=0.021, analog_area_scale=0.85, wafer_usd=16988.0,
                       defect_density_per_cm2=0.08, nominal_clock_GHz=2.2),  # TSMC-PPA, BITCELL, CSET, D0, CLOCK
    # NVIDIA 4N: custom N5-family node; TSMC-PPA N4 figures over N5; wafer price ESTIMATE = N5 (CSET).
    "4nm": ProcessNode("4nm", energy_scale=0.66, leakage_W_per_mm2=0.09, link_pJ_per_bit=4.5, host_pJ_per_bit=7.0,
                       logic_area_scale=1 / 1.6, sram_bitcell_um2=0.021, analog_area_scale=0.85, wafer_usd=16988.0,
                       defect_density_per_cm2=0.07, nominal_clock_GHz=2.2),  # CLOCK
    # N3E: TSMC-PPA vs N5; BITCELL 0.021; wafer ESTIMATE ~$20,000 (2023 trade-press reports).
    "3nm": ProcessNode("3nm", energy_scale=0.46, leakage_W_per_mm2=0.095, link_pJ_per_bit=4.0, host_pJ_per_bit=6.5,
                       logic_area_scale=1 / (1.55 * 1.3), sram_bitcell_um2=0.021, analog_area_scale=0.8,
                       wafer_usd=20000.0, defect_density_per_cm2=0.10, nominal_clock_GHz=2.5),  # CLOCK
}
KNOWN_NODES = tuple(NODES)


@dataclass(frozen=True, slots=True)
class HbmGeneration:
    """Per-generation HBM coefficients.

    Attributes:
        name: the key (``"hbm3"``).
        pJ_per_bit: energy per bit read or written, DRAM core plus I/O on both sides.
        static_W_per_stack: background power of one stack (refresh, standby, idle PHY).
        usd_per_GB: price per GB of stacked memory of the generation's top speed bin (slower bins:
            hwmodels/cost.py HBM_SPEED_PREMIUM).
        stream_fraction: fraction of a chip's datasheet bandwidth that a long streaming kernel
            reaches with memory of this generation and its controller: a published STREAM-class
            result of a named chip (below). A fact about the memory, never fitted.
        max_GBps_per_stack: the fastest speed bin of the generation that has shipped, x the
            1024-bit stack interface, GB/s per stack: no stack of it delivers more.
        max_GB_per_stack: the largest stack of the generation that has shipped, GB.
    """

    name: str
    pJ_per_bit: float
    static_W_per_stack: float
    usd_per_GB: float
    stream_fraction: float
    max_GBps_per_stack: float = 1e9
    max_GB_per_stack: float = 1e9


# Energy: HBM2 3.9 pJ/bit from O'Connor et al., "Fine-Grained DRAM", MICRO 2017 (NVIDIA's
# measurement-based model of HBM2). Later generations: ESTIMATE, ~10-15% less per generation
# from lower I/O voltage (HBM3 VDDQ 0.4 V vs HBM2 1.2 V, JEDEC JESD238/JESD235) against faster
# signalling. Static: ESTIMATE (refresh and standby of 8-12 dies plus an idle PHY, 1.5-3 W).
# Price (top speed bin): ESTIMATE from 2023-24 analyst estimates (HBM3 ~$15/GB, ~$1,200 for 80 GB;
# HBM3e ~$20/GB; HBM2/2e ~$10-12/GB).
# Streaming fraction: BabelStream Triad, the same benchmark for every generation, as published
# in Azure/AI-benchmarking-guide @ 8fd0c6e (Azure_Results/ND_*_results.md):
#   hbm2e: A100-SXM4-80GB (ND A100 v4), 1.70 TB/s of 2.039 TB/s = 0.834 (copy 1.61, dot 1.75; the
#          gpu-stream read kernel in data/calibration/stream reaches 1.77);
#   hbm3:  H100-SXM5-80GB (ND H100 v5), 2.97 TB/s of 3.35 TB/s = 0.887;
#   hbm3e: H200-SXM-141GB (ND H200 v5), 4.15 TB/s of 4.8 TB/s = 0.865.
#   hbm2:  ESTIMATE, taken as HBM2e's (no STREAM-class result of an HBM2 part was collected).
# Per-stack limits (a stack has a 1024-bit interface: GB/s = Gb/s per pin x 128), GB = 1e9 bytes:
#   hbm2:  2.43 Gb/s per pin (A100 40GB runs its HBM2 at 1215 MHz DDR: 1,555 GB/s on 5 stacks,
#          A100 whitepaper 2020; Samsung Aquabolt 2.4 Gb/s, 2018) -> 311 GB/s; 8-high of 8 Gb dies
#          = 8 GiB = 8.59 GB (JEDEC JESD235A);
#   hbm2e: 4.2 Gb/s (Samsung Flashbolt's top bin, press release 2020; SK hynix HBM2E 3.6 Gb/s)
#          -> 537.6 GB/s; 8-high of 16 Gb dies = 16 GiB = 17.18 GB;
#   hbm3:  6.4 Gb/s (JEDEC JESD238, 2022) -> 819.2 GB/s; 12-high of 16 Gb dies = 24 GiB = 25.77 GB;
#   hbm3e: 9.6 Gb/s (SK hynix / Micron HBM3E, 2024 press releases; Samsung 9.8) -> 1,228.8 GB/s;
#          12-high of 24 Gb dies = 36 GiB = 38.65 GB (Micron / Samsung 12-high 36 GB, 2024).
# PHY area per stack: hwmodels/area.py HBM_PHY_MM2; PHY power: its I/O energy is inside
# pJ_per_bit (both sides) and its idle power inside static_W_per_stack.
HBM: dict[str, HbmGeneration] = {
    "hbm2": HbmGeneration("hbm2", pJ_per_bit=3.9, static_W_per_stack=1.5, usd_per_GB=10.0, stream_fraction=0.834,
                          max_GBps_per_stack=2.43 * 128, max_GB_per_stack=8 * 2**30 / 1e9),
    "hbm2e": HbmGeneration("hbm2e", pJ_per_bit=3.5, static_W_per_stack=2.0, usd_per_GB=12.0, stream_fraction=0.834,
                           max_GBps_per_stack=4.2 * 128, max_GB_per_stack=16 * 2**30 / 1e9),
    "hbm3": HbmGeneration("hbm3", pJ_per_bit=3.1, static_W_per_stack=2.5, usd_per_GB=15.0, stream_fraction=0.887,
                          max_GBps_per_stack=6.4 * 128, max_GB_per_stack=24 * 2**30 / 1e9),
    "hbm3e": HbmGeneration("hbm3e", pJ_per_bit=2.8, static_W_per_stack=3.0, usd_per_GB=20.0, stream_fraction=0.865,
                           max_GBps_per_stack=9.6 * 128, max_GB_per_stack=36 * 2**30 / 1e9),
}
KNOWN_HBM = tuple(HBM)


def process_node(name: str) -> ProcessNode:
    """The coefficients of node ``name``; ValueError listing the known nodes otherwise."""
    try:
        return NODES[name]
    except KeyError:
        raise ValueError(f"unknown process node '{name}'; known nodes: {', '.join(KNOWN_NODES)}") from None


def hbm_generation(name: str) -> HbmGeneration:
    """The coefficients of HBM generation ``name``; ValueError listing the known ones otherwise."""
    try:
        return HBM[name]
    except KeyError:
        raise ValueError(f"unknown HBM generation '{name}'; known: {', '.join(KNOWN_HBM)}") from None
