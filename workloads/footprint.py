"""HBM capacity a model needs per chip: weights, KV cache and activation workspace."""

from __future__ import annotations

from workloads.graph import Execution, PassGraph
from workloads.model import ModelConfig, Norm
from workloads.ops import Role


def replicated_params(model: ModelConfig) -> int:
    """Parameters every chip of a tensor-parallel group holds in full (the norms' scales)."""
    per_norm = model.hidden_size * (2 if model.norm is Norm.layernorm else 1)
    norms = (2 * model.num_layers + 1) * per_norm
    return norms + (model.num_layers * (model.q_lora_rank + model.kv_lora_rank) if model.is_mla else 0)


def replicated_projection_params(model: ModelConfig) -> int:
    """Projection weights every chip holds in full: MLA's down-projection to the Q and KV latents and
    the rotary key (replicated, as vLLM's fused_qkv_a_proj; each chip needs the whole latent)."""
    return model.num_layers * model.hidden_size * (model.q_lora_rank + model.latent_size) if model.is_mla else 0


def weight_bytes_per_chip(model: ModelConfig, ex: Execution) -> float:
    """Weight bytes on one chip: the layers' projections in the weight format (with scales), split
    over tp except MLA's replicated down-projections; embeddings and LM head in 16 bits, split over
    tp; the norm scales replicated; copies of hot experts spread over the EP chips."""
    replicated, whole = replicated_params(model), replicated_projection_params(model)
    dense = model.embedding_params() + model.lm_head_params()
    projections = model.num_params() - dense - replicated - whole
    copies = ex.moe_redundant_experts * model.expert_params() * sum(k.moe for k in model.layer_kinds()) / ex.ep \
        if ex.moe_redundant_experts else 0
    if ex.ep > ex.tp:  # routed experts spread over ep chips, the rest split over tp
        routed = model.expert_params() * model.num_experts * sum(k.moe for k in model.layer_kinds())
        split = (projections - routed) / ex.tp + routed / ex.ep
    else:
        split = projections / ex.tp
    return ex.weight_bytes(split + whole + copies) + (dense / ex.tp + replicated) * ex.dense_dtype.bytes


def kv_bytes_per_chip(model: ModelConfig, ex: Execution, tokens: int, seqs: int = 0) -> float:
    """KV-cache bytes on one chip holding ``tokens`` tokens of ``seqs`` sequences: the KV cache split
    over tp by KV heads (MLA's latent is shared by all heads, so every chip holds all of it), plus
    each sequence's fixed-size state in the SSM layers of a hybrid (split over tp by channel); with context
    parallelism the KV cache split over the cp ranks too."""
    kv = model.kv_bytes_per_token(ex.kv_cache.bytes) * tokens / (1 if model.is_mla else ex.tp)
    if ex.cp > 1:  # context parallelism: each rank holds its share of every sequence's cache
        kv /= ex.cp
    return kv + model.ssm_state_bytes_per_seq(ex.kv_cache.bytes) * seqs / ex.tp if seqs else kv


def activation_bytes(graph: PassGraph) -> float:
    """Workspace for activations: the largest activation set one op reads plus writes.

    Activations live only between consecutive ops, so the peak is set by the largest op, not
    by the sum over the pass.
    """
    return max(op.bytes_by_role(Role.activation) for op, _ in graph.ops())
