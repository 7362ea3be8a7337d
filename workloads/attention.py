"""Attention: the pass phase, the kernel choice, the (query, key) pairs computed and the kernel ops.

A fused kernel (FlashAttention-style) is one op that reads Q, K and V once and skips masked
blocks; an unfused one is three (scores, softmax, context) with the whole score matrix in HBM.
Attention is the only part of a layer that depends on the phase: decode reads the KV cache.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from workloads.blocks import _act
from workloads.mla import mla_attention
from workloads.model import LayerKind, ModelConfig
from workloads.ops import Op, OpKind, Role, Tensor, Unit, matmul, tiered, vector

if TYPE_CHECKING:
    from workloads.graph import Execution

LSE_BYTES = 4  # one fp32 log-sum-exp per query row and head, sent beside a partial output (context parallelism)


class AttentionKernel(str, Enum):
    """The attention kernel family. Every family but ``unfused`` is one fused op (tiles stay on chip,
    Q, K, V read once, masked blocks skipped); the family names which published efficiency its
    time follows on the chip's architecture (hwmodels/kernels.py)."""

    fused = "fused"  # the best fused family published for the chip's architecture (FlashAttention-style)
    flash2 = "flash2"  # FlashAttention-2 (Dao 2023): Ampere-era kernels
    flash3 = "flash3"  # FlashAttention-3 (Shah et al. 2024): Hopper-native (TMA, WGMMA, fp8)
    unfused = "unfused"  # scores materialised in HBM, softmax as its own pass


class Phase(str, Enum):
    prefill = "prefill"
    decode = "decode"


class MlaForm(str, Enum):
    """How multi-head latent attention runs (workloads/mla.py)."""

    auto = "auto"  # naive for prefill, absorbed for decode (DeepSeek's and vLLM's choice)
    absorbed = "absorbed"  # W_UK into the query, W_UV into the output: attention over the cached latents
    naive = "naive"  # every key's latent expanded to per-head K and V, then multi-head attention


def mla_absorbed(ex: Execution, phase: Phase) -> bool:
    return ex.mla_form is MlaForm.absorbed or (ex.mla_form is MlaForm.auto and phase is Phase.decode)


def chunked_keys(position: int, chunk: int) -> int:
    """Keys query ``position`` (1-based) sees under chunked-local attention: its chunk's, up to itself."""
    return (position - 1) % chunk + 1


def chunked_pairs(tokens: int, chunk: int) -> float:
    """(query, key) pairs of positions 1..``tokens`` under chunked-local attention (causal within each chunk)."""
    whole, rest = divmod(tokens, chunk)
    return whole * chunk * (chunk + 1) / 2 + rest * (rest + 1) / 2


def attention_pairs(phase: Phase, new_tokens: int, context: int, window: int, kernel: AttentionKernel,
                    chunk: int = 0) -> float:
    """(query, key) pairs per sequence and head that the attention kernel computes."""
    if phase is Phase.decode:
        if chunk:
            return float(sum(chunked_keys(context - j, chunk) for j in range(new_tokens)))
        keys = min(context, window) if window else context
        return float(new_tokens * keys)
    if kernel is AttentionKernel.unfused:
        return float(new_tokens * context)
    s = new_tokens
    if chunk:
        return chunked_pairs(s, chunk)
    if window and window < s:
        return window * (window + 1) / 2 + (s - window) * window
    return s * (s + 1) / 2


def layer_window(model: ModelConfig, kind: LayerKind | None) -> tuple[int, int]:
    """(sliding window, chunk) of a layer of ``kind``; without a kind, the model-wide window."""
    return (kind.window, kind.chunk) if kind is not None else (model.sliding_window, model.attention_chunk)


def decode_keys(model: ModelConfig, ex: Execution, context: int, kind: LayerKind | None = None) -> tuple[int, int]:
    """(keys a decode step's query attends to, keys this chip reads from the cache) in a layer of ``kind``
    at ``context``: the window or chunk clips the keys; with context parallelism each rank holds its share
    of the cache; a paged cache reads whole blocks, the last one partly empty. Both never decrease with
    ``context`` between two resets of a chunk."""
    window, chunk = layer_window(model, kind)
    keys = chunked_keys(context, chunk) if chunk else min(context, window) if window else context
    cached = -(-keys // ex.cp)  # context parallelism: each rank holds its share of the cache
    block = ex.kv_block_tokens
    return keys, (-(-cached // block) * block if block else cached)


def pass_attention(model: ModelConfig, ex: Execution, phase: Phase, batch: int, s: int, context: int,
                   kind: LayerKind | None = None) -> list[Op]:
    """The attention kernel(s) of a pass: ``batch`` sequences of ``s`` new tokens attending to ``context`` keys
    in a layer of ``kind`` (default: the model-wide window)."""
    t, hd = ex.tp, model.head_dim
    kv_heads = model.num_kv_heads // t
    tokens = batch * s
    window, chunk = layer_window(model, kind)
    pairs = attention_pairs(phase, s, context, window, ex.attention, chunk)
    owner = kind is None or kind.kv_owner
    cached = decode_keys(model, ex, context, kind)[1] if phase is Phase.decode else 0
    if model.is_mla:
        return mla_attention(model, ex, absorbed=mla_absorbed(ex, phase), seqs=batch, queries=tokens,
                             pairs=pairs * batch, cached=batch * cached, score_pairs=batch * s * context,
                             decode=phase is Phase.decode)
    if phase is Phase.decode:
        kv_read = tiered(Tensor("kv_cache", batch * cached * 2 * kv_heads * hd * ex.kv_cache.bytes, Role.kv),
                         ex.kv_host_fraction)
    else:  # the prompt's K and V come straight from the projection output
        kv_read = (_act("kv", tokens * 2 * kv_heads * hd, ex),)
    if ex.cp > 1:  # each rank attends to its share; the partial outputs are gathered (workloads/context.py)
        return attention_kernel(model, ex, seqs=batch, queries=tokens, pairs=pairs * batch / ex.cp,
                                kv_read=kv_read, context=-(-context // ex.cp), score_pairs=batch * s * context // ex.cp,
                                writes_kv=owner) + [decode_combine(model, ex, tokens)]
    return attention_kernel(model, ex, seqs=batch, queries=tokens, pairs=pairs * batch, kv_read=kv_read,
                            context=context, score_pairs=batch * s * context, writes_kv=owner)


def decode_combine(model: ModelConfig, ex: Execution, queries: int) -> Op:
    """Context parallelism's decode (workloads/context.py): the all-gather that joins the cp ranks'
    partial attention outputs (and log-sum-exps) of ``queries`` new tokens; each rank contributes
    ``queries x heads/tp x (head_dim x activation bytes + LSE_BYTES)``, the payload is the gathered total."""
    heads = model.num_heads // ex.tp
    part = queries * heads * (model.head_dim * ex.activations.bytes + LSE_BYTES)
    total = part * ex.cp
    return Op("cp_combine", OpKind.allgather, Unit.link, 0.0, (Tensor("partial", part, Role.activation),),
              (Tensor("partials", total, Role.activation),), ex.activations, comm_bytes=total, comm_chips=ex.cp)


def attention_kernel(model: ModelConfig, ex: Execution, *, seqs: int, queries: int, pairs: float,
                     kv_read: tuple[Tensor, ...], context: int, score_pairs: int, prefix: str = "",
                     writes_kv: bool = True) -> list[Op]:
    """The attention of ``seqs`` sequences done by one kernel (fused) or three (unfused), on one chip.

    Args:
        seqs: sequences the kernel serves.
        queries: their new tokens, all together (Q rows; their K and V are written to the cache).
        pairs: (query, key) pairs per query head the kernel computes, summed over the sequences.
        kv_read: the keys and values it reads: the KV cache, or the projection's output for new tokens.
        context: keys per sequence (the mean), the width of an unfused kernel's score matrix.
        score_pairs: (query, key) pairs per head an unfused kernel writes as scores, summed.
        prefix: put before the op names (a serving step with both prefill and decode attention).
        writes_kv: the layer stores its new tokens' K and V (False: cross-layer sharing, a later
            layer of a group reads the first one's cache).
    """
    t, hd = ex.tp, model.head_dim
    heads, kv_heads = model.num_heads // t, model.num_kv_heads // t
    group = heads // kv_heads  # query heads sharing one KV head
    rows = max(1, round(queries / seqs))  # query rows per sequence
    new_kv = tiered(Tensor("kv_new", queries * 2 * kv_heads * hd * ex.kv_cache.bytes * writes_kv, Role.kv),
                    ex.kv_host_fraction)
    q = _act("q", queries * heads * hd, ex)
    out = _act("o", queries * heads * hd, ex)
    if ex.attention is not AttentionKernel.unfused:
        return [Op(f"{prefix}attention", OpKind.attention, Unit.matrix, 4.0 * hd * pairs * heads, (q, *kv_read),
                   (out, *new_kv), ex.activations, m=rows * group, n=max(1, round(pairs / queries)), k=hd,
                   groups=2 * seqs * kv_heads, kernel=ex.attention.value)]
    scores = heads * score_pairs
    k_read = tuple(Tensor("k", kv.nbytes / 2, kv.role) for kv in kv_read)
    v_read = tuple(Tensor("v", kv.nbytes / 2, kv.role) for kv in kv_read)
    return [
        matmul(f"{prefix}attn_score", OpKind.attn_score, rows * group, context, hd, ex.activations,
               [q, *k_read], [_act("scores", scores, ex), *new_kv], groups=seqs * kv_heads),
        vector(f"{prefix}softmax", OpKind.softmax, 5 * scores, [_act("scores", scores, ex)],
               [_act("probs", scores, ex)]),
        matmul(f"{prefix}attn_context", OpKind.attn_context, rows * group, hd, context, ex.activations,
               [_act("probs", scores, ex), *v_read], [out], groups=seqs * kv_heads),
    ]
