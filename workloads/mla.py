"""Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434, Sec. 2.1; DeepSeek-V3, arXiv 2412.19437).

Each token caches one latent ``c_KV`` of ``kv_lora_rank`` values plus one rotary key of
``qk_rope_head_dim`` values, shared by all heads: 576 values per layer for DeepSeek-V3 instead of
2 x 128 heads x 128. The cache is not split by head, so every chip of a tensor-parallel group keeps
(and reads) all of it. The latent becomes per-head K (nope part) and V through ``W_UK`` and
``W_UV`` (the ``kv_b_proj`` weight, ``kv_lora_rank x heads x (nope + v)``). Two ways to run it:

* naive: expand every key's latent to per-head K and V (a GEMM over all keys), then ordinary
  multi-head attention with QK head dim nope + rope and V head dim ``v_head_dim``; cheap for a
  prompt (each key expanded once, used by many queries), ruinous for decode (the whole context
  expanded again every step);
* absorbed (DeepSeek-V2 Sec. 2.1.2, "W_UK can be absorbed into W_Q, W_UV into W_O"): each
  query head is mapped into the latent space (nope x kv_lora per head), attention runs as
  multi-query attention over the cached latents (QK dim kv_lora + rope, V dim kv_lora), and the
  latent output is mapped back to ``v_head_dim`` per head; the cache is read once and never
  expanded, so decode reads 576 values per key for all heads.

``MlaForm.auto`` runs prefill naive and decode absorbed, as DeepSeek's and vLLM's kernels do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workloads.blocks import _act, _weight
from workloads.model import ModelConfig
from workloads.ops import Op, OpKind, Role, Tensor, Unit, matmul, tiered, vector

if TYPE_CHECKING:
    from workloads.graph import Execution


def mla_attention(model: ModelConfig, ex: Execution, *, absorbed: bool, seqs: int, queries: int, pairs: float,
                  cached: int, score_pairs: float, prefix: str = "", decode: bool = False) -> list[Op]:
    """The attention ops of one MLA layer on one chip, after the Q and latent projections.

    Args:
        absorbed: the absorbed-weight form (else naive).
        seqs: sequences; queries: their new tokens together; pairs: (query, key) pairs per head summed.
        cached: keys read from the cache, all sequences together. In a prefill the new tokens' latents come
            from the projection besides; a decode (``decode``) reads every key from the cache, its own
            included, as the other attention kernels count it.
        score_pairs: (query, key) pairs per head an unfused kernel writes as scores.
    """
    heads = model.num_heads // ex.tp
    rank, rope, v = model.kv_lora_rank, model.qk_rope_head_dim, model.v_head_dim
    nope = model.head_dim - rope
    latent = model.latent_size
    reads = () if decode else (_act("latent_new", queries * latent, ex),)
    if cached:
        reads += tiered(Tensor("latent_cache", cached * latent * ex.kv_cache.bytes, Role.kv), ex.kv_host_fraction)
    new_kv = tiered(Tensor("latent_write", queries * latent * ex.kv_cache.bytes, Role.kv), ex.kv_host_fraction)
    rows = max(1, round(queries / seqs))
    keys = max(1, round(pairs / queries))
    if absorbed:
        q_in = matmul(f"{prefix}q_absorb", OpKind.mla_absorb, queries, rank, nope, ex.activations,
                      [_act("q_nope", queries * heads * nope, ex), _weight("w_uk", heads * nope * rank, ex)],
                      [_act("q_latent", queries * heads * rank, ex)], groups=heads)
        core = _core(ex, prefix, seqs, queries * heads * latent, reads, queries * heads * rank, new_kv,
                     qk=latent, vd=rank, heads=heads, kv_heads=1, rows=rows, keys=keys, pairs=pairs,
                     score_pairs=score_pairs)
        out = matmul(f"{prefix}v_absorb", OpKind.mla_absorb, queries, v, rank, ex.activations,
                     [_act("o_latent", queries * heads * rank, ex), _weight("w_uv", heads * rank * v, ex)],
                     [_act("o", queries * heads * v, ex)], groups=heads)
        return [q_in, *core, out]
    expanded = cached + (0 if decode else queries)  # every key's latent, up-projected to this chip's heads
    expand = matmul(f"{prefix}kv_expand", OpKind.kv_expand, expanded, heads * (nope + v), rank, ex.activations,
                    [*reads, _weight("w_kv_b", rank * heads * (nope + v), ex)],
                    [_act("kv_heads", expanded * heads * (nope + v), ex)])
    kv = (_act("kv_heads", expanded * heads * (nope + v), ex), _act("k_rope", expanded * rope, ex))
    core = _core(ex, prefix, seqs, queries * heads * model.head_dim, kv, queries * heads * v, new_kv,
                 qk=model.head_dim, vd=v, heads=heads, kv_heads=heads, rows=rows, keys=keys, pairs=pairs,
                 score_pairs=score_pairs)
    return [expand, *core]


def _core(ex: Execution, prefix: str, seqs: int, q_elems: float, kv_reads: tuple[Tensor, ...], o_elems: float,
          new_kv: tuple[Tensor, ...], *,
          qk: int, vd: int, heads: int, kv_heads: int, rows: int, keys: int, pairs: float,
          score_pairs: float) -> list[Op]:
    """Scores (QK dim ``qk``) and context (V dim ``vd``) for ``heads`` query heads over ``kv_heads``
    key heads: one fused kernel, or scores, softmax and context through HBM (unfused)."""
    from workloads.attention import AttentionKernel  # the kernel choice lives with the attention ops

    q, out = _act("q", q_elems, ex), _act("o", o_elems, ex)
    group = heads // kv_heads
    if ex.attention is not AttentionKernel.unfused:
        return [Op(f"{prefix}attention", OpKind.attention, Unit.matrix, 2.0 * (qk + vd) * pairs * heads,
                   (q, *kv_reads), (out, *new_kv), ex.activations, m=rows * group, n=keys, k=qk,
                   groups=2 * seqs * kv_heads, kernel=ex.attention.value)]
    scores = heads * score_pairs
    context = max(1, round(score_pairs / (rows * seqs)))  # keys per query row, the score matrix's width
    return [
        matmul(f"{prefix}attn_score", OpKind.attn_score, rows * group, context, qk, ex.activations,
               [q, *kv_reads], [_act("scores", scores, ex), *new_kv], groups=seqs * kv_heads),
        vector(f"{prefix}softmax", OpKind.softmax, 5 * scores, [_act("scores", scores, ex)],
               [_act("probs", scores, ex)]),
        matmul(f"{prefix}attn_context", OpKind.attn_context, rows * group, vd, context, ex.activations,
               [_act("probs", scores, ex)], [out], groups=seqs * kv_heads),
    ]
