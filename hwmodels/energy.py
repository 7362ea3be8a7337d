"""Energy of work on a chip: joules per MAC, per FLOP, per byte, and static watts.

Dynamic energy of some work (``ChipEnergy.work``), all at the board (divided by the power
delivery efficiency):

* matrix arrays: ``MACs x (arith[fmt] + operand_pJ_per_byte x operand bytes per MAC) x scale``
  where a MAC of an ``R x C`` array fetches its two inputs once per row or column it is reused
  over, ``bytes(fmt) x (1/R + 1/C)``, and reads and writes its fp32 partial sum once per
  ``min(R, C)``-deep dot product, ``8 / min(R, C)`` bytes. Large arrays (TPU MXUs, 128 x 128)
  amortise operand delivery far better than small tensor cores (16 x 16);
* vector unit: ``FLOPs x (fp32 FMA / 2 + 4 bytes of operands x operand_pJ_per_byte) x scale``;
* chip-wide SRAM (L2, VMEM): every HBM byte passes through it twice (written on arrival, read
  by the cores), and a matmul re-reads its inputs from it once per output tile of
  ``SRAM_TILE_M x SRAM_TILE_N`` a core keeps locally: ``MACs x bytes(fmt) x (1/TM + 1/TN)``;
* HBM: bytes x the generation's pJ/bit x 8; links: bytes sent x the node's SerDes pJ/bit x 8
  (covers the sender's transmitter and the peer's receiver); host: bytes x PCIe pJ/bit x 8.

Static power: ``(leakage_W_per_mm2 x die area + HBM background x stacks) / delivery``, drawn for
the whole run whether the units are busy or not.

``scale`` is the node's ``energy_scale`` (7 nm = 1; hwmodels/process.py), times
``voltage_factor``: ``(f / f_nom)^2`` for a chip clocked above its node's nominal clock (the
voltage rises with the clock, ``C V^2`` per operation), 1 at or below it. The 7 nm reference
figures below come from Jouppi et al., "Ten Lessons From Three Generations Shaped Google's
TPUv4i", ISCA 2021, Table 2: Horowitz's ISSCC 2014 energy table re-derived for 7 nm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwmodels.numerics import DType
from hwmodels.process import hbm_generation, process_node

if TYPE_CHECKING:
    from hwmodels.chip import HardwareConfig

PJ = 1e-12

# Arithmetic energy of one multiply-accumulate at 7 nm, pJ: the multiply of the input format
# plus the add into the accumulator (fp32 for floats, int32 for integers). Jouppi 2021 Table 2
# (7 nm): bf16 mult 0.21, fp16 mult 0.34, fp32 mult 1.31, int8 mult 0.07, fp16 add 0.16,
# fp32 add 0.38, int32 add 0.03. ESTIMATES where the table has no entry: tf32 as an fp16-class
# multiply (10-bit mantissa); fp8 and fp4 multiplies ~0.05 / ~0.02 pJ with products summed at
# fp16-class width (0.16) as tensor cores do; int4 multiply ~0.02 pJ with a narrow add.
ARITH_PJ_PER_MAC_7NM: dict[DType, float] = {
    DType.fp32: 1.31 + 0.38,
    DType.tf32: 0.34 + 0.38,
    DType.bf16: 0.21 + 0.38,
    DType.fp16: 0.34 + 0.38,
    DType.fp8: 0.05 + 0.16,
    DType.int8: 0.07 + 0.03,
    DType.int4: 0.02 + 0.02,
    DType.fp4: 0.02 + 0.10,
}
# Operand delivery into the arithmetic (register file or local buffer read, operand network,
# staging through shared memory), pJ per byte at 7 nm. ESTIMATE: about twice Jouppi 2021's 7 nm
# 8 KB SRAM read (7.5 pJ per 64 bits = 0.94 pJ/byte) for larger banks plus wires.
OPERAND_PJ_PER_BYTE_7NM = 2.0
ACCUMULATOR_BYTES = 4.0  # fp32 / int32 partial sums
# Chip-wide SRAM (MB-scale L2 or VMEM plus the on-die network to it), pJ per byte at 7 nm.
# Horowitz 2014: 1 MB SRAM read 100 pJ per 64 bits at 45 nm (12.5 pJ/byte); Jouppi 2021: SRAM
# energy improved only ~1.3x from 45 to 7 nm -> ~9.6 pJ/byte.
SRAM_PJ_PER_BYTE_7NM = 12.5 / 1.3
SRAM_PASSES_PER_HBM_BYTE = 2.0  # written into SRAM on arrival from HBM, read once by the cores
SRAM_TILE_M, SRAM_TILE_N = 128, 256  # output tile a core keeps locally (CUTLASS/XLA-style tiles)
# Power delivery: board voltage regulators convert at ~88-92% under load. ESTIMATE 0.90.
DELIVERY_EFFICIENCY = 0.90


@dataclass(frozen=True, slots=True)
class EnergyParts:
    """Dynamic energy of some work at the board, joules, by where it was spent."""

    compute_J: float = 0.0  # matrix arrays and vector unit, operand delivery included
    sram_J: float = 0.0
    hbm_J: float = 0.0
    link_J: float = 0.0
    host_J: float = 0.0

    @property
    def total_J(self) -> float:
        return self.compute_J + self.sram_J + self.hbm_J + self.link_J + self.host_J


@dataclass(frozen=True, slots=True)
class ChipEnergy:
    """One chip's energy coefficients at the board: joules per unit of work, static watts.

    Attributes:
        mac_J: J per multiply-accumulate on the arrays, by the format the arrays run in.
        vector_J_per_flop: J per FLOP on the vector unit.
        sram_J_per_byte: J per byte read or written in the chip-wide SRAM.
        hbm_J_per_byte: J per byte read or written in HBM.
        link_J_per_byte: J per byte a chip sends to a peer.
        host_J_per_byte: J per byte to or from the host.
        static_W: leakage, idle and HBM background power, W.
    """

    mac_J: dict[DType, float]
    vector_J_per_flop: float
    sram_J_per_byte: float
    hbm_J_per_byte: float
    link_J_per_byte: float
    host_J_per_byte: float
    static_W: float

    def work(self, *, matrix_flops: float = 0.0, matrix_dtype: DType | None = None, vector_flops: float = 0.0,
             hbm_bytes: float = 0.0, link_bytes: float = 0.0, host_bytes: float = 0.0) -> EnergyParts:
        """Dynamic energy of some work.

        Args:
            matrix_flops: FLOPs on the matrix arrays (2 per MAC).
            matrix_dtype: the format the arrays ran them in; None: they ran on the vector unit.
            vector_flops: FLOPs on the vector unit.
            hbm_bytes: HBM bytes read plus written.
            link_bytes: bytes sent over chip-to-chip links.
            host_bytes: bytes to or from the host.

        Returns:
            The energy by component, joules.
        """
        compute = vector_flops * self.vector_J_per_flop
        sram_bytes = SRAM_PASSES_PER_HBM_BYTE * hbm_bytes
        if matrix_flops:
            if matrix_dtype is None:
                compute += matrix_flops * self.vector_J_per_flop
            else:
                macs = matrix_flops / 2
                compute += macs * self.mac_J[matrix_dtype]
                sram_bytes += macs * matrix_dtype.bytes * (1 / SRAM_TILE_M + 1 / SRAM_TILE_N)
        return EnergyParts(compute, sram_bytes * self.sram_J_per_byte, hbm_bytes * self.hbm_J_per_byte,
                           link_bytes * self.link_J_per_byte, host_bytes * self.host_J_per_byte)


def mac_pJ(dtype: DType, rows: int, cols: int, scale: float = 1.0) -> float:
    """Energy of one MAC in ``dtype`` on a ``rows x cols`` array at the chip, pJ (before delivery).

    ``(arith + OPERAND_PJ_PER_BYTE x (bytes(dtype) (1/rows + 1/cols) + 2 x 4 / min(rows, cols))) x scale``.
    """
    operand_bytes = dtype.bytes * (1 / rows + 1 / cols) + 2 * ACCUMULATOR_BYTES / min(rows, cols)
    return (ARITH_PJ_PER_MAC_7NM[dtype] + OPERAND_PJ_PER_BYTE_7NM * operand_bytes) * scale


def vector_pJ_per_flop(scale: float = 1.0) -> float:
    """Energy of one vector-unit FLOP (half an fp32 FMA plus 4 operand bytes), pJ (before delivery)."""
    return (ARITH_PJ_PER_MAC_7NM[DType.fp32] / 2 + 4 * OPERAND_PJ_PER_BYTE_7NM) * scale


def static_power_W(chip: HardwareConfig, die_area_mm2: float) -> float:
    """Leakage and idle power of the logic plus HBM background power, at the board, W."""
    node, hbm = process_node(chip.process_node), hbm_generation(chip.hbm_generation)
    return (node.leakage_W_per_mm2 * die_area_mm2 + hbm.static_W_per_stack * chip.hbm_stacks) / DELIVERY_EFFICIENCY


def voltage_factor(chip: HardwareConfig) -> float:
    """Dynamic energy per operation at ``chip``'s clock over that at the node's nominal clock.

    ``C V^2`` with the voltage rising in proportion to the clock above the node's nominal clock
    (``(f / f_nom)^2``); at or below it the logic runs at the nominal voltage (1).
    """
    ratio = chip.freq_GHz / process_node(chip.process_node).nominal_clock_GHz
    return ratio * ratio if ratio > 1 else 1.0


def chip_energy(chip: HardwareConfig, die_area_mm2: float) -> ChipEnergy:
    """The energy coefficients of ``chip`` whose logic covers ``die_area_mm2`` (all dies)."""
    node, hbm = process_node(chip.process_node), hbm_generation(chip.hbm_generation)
    s, d = node.energy_scale * voltage_factor(chip), DELIVERY_EFFICIENCY
    mac = {DType(name): mac_pJ(DType(name), chip.array_rows, chip.array_cols, s) * PJ / d
           for name in chip.matmul_dtype_rate}
    return ChipEnergy(
        mac_J=mac,
        vector_J_per_flop=vector_pJ_per_flop(s) * PJ / d,
        sram_J_per_byte=SRAM_PJ_PER_BYTE_7NM * s * PJ / d,
        hbm_J_per_byte=hbm.pJ_per_bit * 8 * PJ / d,
        link_J_per_byte=node.link_pJ_per_bit * 8 * PJ / d,
        host_J_per_byte=node.host_pJ_per_bit * 8 * PJ / d,
        static_W=static_power_W(chip, die_area_mm2),
    )
