"""What an operation costs on a chip: compute arrays, vector unit, HBM and links.

Knows nothing about LLMs: callers ask for the time of a matmul, of a vector op, of some HBM
bytes or of a collective.
"""

from hwmodels.chip import HardwareConfig, HardwareError, Topology
from hwmodels.compute import ComputeCost, matmul_time, vector_time
from hwmodels.links import Collective, CollectiveCost, collective_time
from hwmodels.memory import hbm_time
from hwmodels.numerics import DType

__all__ = [
    "Collective",
    "CollectiveCost",
    "ComputeCost",
    "DType",
    "HardwareConfig",
    "HardwareError",
    "Topology",
    "collective_time",
    "hbm_time",
    "matmul_time",
    "vector_time",
]
