"""The dynamic energy of one op instance on one chip: the energy model (hwmodels/energy.py) applied
to the op's work as costed, so batch and serving runs count energy the same way.

FLOPs on the arrays (in the format they ran) or the vector unit, HBM bytes as scheduled
(``OpCost.hbm_bytes``) and the bytes the op put on its links (``OpCost.link_bytes``).
"""

from __future__ import annotations

from hwmodels.energy import ChipEnergy, EnergyParts
from sim.engine.records import OpRecord
from workloads.ops import Unit


def record_energy(r: OpRecord, energy: ChipEnergy) -> EnergyParts:
    """Dynamic energy of one instance of the op of record ``r`` on one chip."""
    op, c = r.op, r.cost
    matrix = op.flops if op.unit is Unit.matrix else 0.0
    return energy.work(matrix_flops=matrix, matrix_dtype=c.dtype_run, vector_flops=op.flops - matrix,
                       hbm_bytes=c.hbm_bytes, link_bytes=c.link_bytes)
