"""HBM capacity a model needs per chip: weights, KV cache and activation workspace."""

from __future__ import annotations

from workloads.graph import Execution, PassGraph
from workloads.model import ModelConfig, Norm
from workloads.ops import Role


def replicated_params(model: ModelConfig) -> int:
    """Parameters every chip of a tensor-parallel group holds in full (the norms' scales)."""
    per_norm = model.hidden_size * (2 if model.norm is Norm.layernorm else 1)
    return (2 * model.num_layers + 1) * per_norm


def weight_bytes_per_chip(model: ModelConfig, ex: Execution) -> float:
    """Weight bytes on one chip: the layers' projections in the weight format (with scales),
    embeddings and LM head in 16 bits, all split over tp; the norm scales replicated."""
    replicated = replicated_params(model)
    dense = model.embedding_params() + model.lm_head_params()
    projections = model.num_params() - dense - replicated
    return ex.weight_bytes(projections / ex.tp) + (dense / ex.tp + replicated) * ex.dense_dtype.bytes


def kv_bytes_per_chip(model: ModelConfig, ex: Execution, tokens: int) -> float:
    """KV-cache bytes on one chip holding ``tokens`` tokens (all sequences together)."""
    return model.kv_bytes_per_token(ex.kv_cache.bytes) * tokens / ex.tp


def activation_bytes(graph: PassGraph) -> float:
    """Workspace for activations: the largest activation set one op reads plus writes.

    Activations live only between consecutive ops, so the peak is set by the largest op, not
    by the sum over the pass.
    """
    return max(op.bytes_by_role(Role.activation) for op, _ in graph.ops())
