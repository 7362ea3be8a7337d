"""What is computed: model specs, operator graphs (networkx) and their memory footprint.

Knows nothing about hardware; number formats come from ``hwmodels.numerics``, shared vocabulary.
"""

from workloads.graph import AttentionKernel, Execution, PassGraph, Phase, build_pass
from workloads.model import ModelConfig, ModelError
from workloads.ops import Op, OpKind, Role, Tensor, Unit

__all__ = [
    "AttentionKernel",
    "Execution",
    "ModelConfig",
    "ModelError",
    "Op",
    "OpKind",
    "PassGraph",
    "Phase",
    "Role",
    "Tensor",
    "Unit",
    "build_pass",
]
