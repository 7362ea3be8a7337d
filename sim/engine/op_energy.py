"""The dynamic energy of one op instance on one chip: the energy model (hwmodels/energy.py) applied
to the op's work as costed, so batch and serving runs count energy the same way.

FLOPs on the arrays (in the format they ran) or the vector unit, HBM bytes as scheduled
(``OpCost.hbm_bytes``), the bytes the op put on its links (``OpCost.link_bytes``) and the spilled KV
cache it moved over the host link (``Op.host_bytes``, the link's energy; the host DRAM's is not counted). A matrix
kernel that ran below the boost clock under the power budget (``OpCost.clock_ratio`` r) ran at a
voltage lowered in proportion, so its arithmetic and SRAM energy is r^2 of the boost-clock figure
(hwmodels/power.py).
"""

from __future__ import annotations

from dataclasses import replace

from hwmodels.energy import SRAM_PASSES_PER_HBM_BYTE, ChipEnergy, EnergyParts
from sim.engine.records import OpRecord
from workloads.ops import Unit


def record_energy(r: OpRecord, energy: ChipEnergy) -> EnergyParts:
    """Dynamic energy of one instance of the op of record ``r`` on one chip."""
    return op_energy(r.op, r.cost, energy)


def op_energy(op, c, energy: ChipEnergy) -> EnergyParts:
    """Dynamic energy of one instance of ``op`` (workloads.ops.Op) costed as ``c`` (sim.engine.costing.OpCost)."""
    matrix = op.flops if op.unit is Unit.matrix else 0.0
    parts = energy.work(matrix_flops=matrix, matrix_dtype=c.dtype_run, vector_flops=op.flops - matrix,
                        hbm_bytes=c.hbm_bytes, link_bytes=c.link_bytes, host_bytes=op.host_bytes)
    if c.clock_ratio == 1.0:
        return parts
    core = parts.compute_J * c.clock_ratio ** 2
    sram_hbm = energy.sram_J_per_byte * c.hbm_bytes * SRAM_PASSES_PER_HBM_BYTE  # the HBM bytes' SRAM passes
    sram = sram_hbm + (parts.sram_J - sram_hbm) * c.clock_ratio ** 2
    return replace(parts, compute_J=core, sram_J=sram)
