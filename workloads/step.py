"""The operator graph of one serving step: prefill chunks and decodes in one forward pass.

A continuous-batching server runs one forward pass per step over every token it schedules:
some sequences add a chunk of their prompt (``new`` tokens, attending to ``context`` keys,
which include the earlier chunks), the others decode one token each (attending to their whole
context). The projections, the MLP and the norms see only the step's total tokens; attention
depends on each sequence. The attention of all prefill chunks is one kernel and that of all
decodes another (as in vLLM: a variable-length prefill kernel and a paged decode kernel), each
an op with the summed FLOPs and bytes, so the graph has the same size for any batch.

A step holding one sequence reproduces ``build_pass`` exactly: one decode at context ``c`` is
``build_pass(model, ex, Phase.decode, 1, 1, c)``, one whole prompt of ``P`` tokens is
``build_pass(model, ex, Phase.prefill, 1, P, P)`` (the tests hold them to it).
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from workloads.attention import (
    AttentionKernel,
    Phase,
    attention_kernel,
    attention_pairs,
    chunked_keys,
    chunked_pairs,
    mla_absorbed,
)
from workloads.blocks import _act
from workloads.graph import Execution, PassGraph, _layer, _post, _pre, build_layers
from workloads.mla import mla_attention
from workloads.model import LayerKind, ModelConfig
from workloads.ops import Op, Role, Tensor


def chunk_pairs(new: int, context: int, window: int, kernel: AttentionKernel, chunk: int = 0) -> float:
    """(query, key) pairs per head of a prefill chunk: ``new`` tokens ending at ``context`` keys.

    Query j (1-based) of the chunk sees ``context - new + j`` keys (causal), at most ``window``
    of them with a sliding window, only those of its own aligned ``chunk`` with chunked-local
    attention; an unfused kernel computes the whole ``new x context`` block.
    """
    prior = context - new
    if prior == 0:
        return attention_pairs(Phase.prefill, new, context, window, kernel, chunk)
    if kernel is AttentionKernel.unfused:
        return float(new * context)
    if chunk:
        return chunked_pairs(context, chunk) - chunked_pairs(prior, chunk)
    if not window or window >= context:
        return (context * (context + 1) - prior * (prior + 1)) / 2
    below = (window * (window + 1) - prior * (prior + 1)) / 2 if prior < window else 0.0
    return below + (context - max(prior, window)) * window


def decode_keys(context: int, model: ModelConfig) -> int:
    """Keys one decode attends to: its context, clipped to the sliding window (or its chunk) when every
    attention layer is local; with interleaved global layers each local layer clips the totals itself."""
    if model.global_layer_period:
        return context
    if model.attention_chunk:
        return chunked_keys(context, model.attention_chunk)
    return min(context, model.sliding_window) if model.sliding_window else context


def cached_keys(keys: int, ex: Execution) -> int:
    """Keys a decode reads from the cache: ``keys`` rounded up to whole blocks in a paged cache."""
    block = ex.kv_block_tokens
    return -(-keys // block) * block if block else keys


def build_step(model: ModelConfig, ex: Execution, prefill_chunks: Sequence[tuple[int, int]],
               decode_contexts: Sequence[int], samples: int | None = None, step: int = 0) -> PassGraph:
    """The pass of one serving step on one chip of a tensor-parallel group.

    Args:
        model: the transformer.
        ex: number formats, attention kernel, tensor-parallel degree, KV block size.
        prefill_chunks: (new tokens, context) per sequence prefilling a chunk; context counts the
            keys after the chunk (earlier chunks plus this one).
        decode_contexts: keys each decoding sequence attends to, its new token included.
        samples: sequences that produce a token (get logits); default every one in the step.
        step: the step's number, for the records.
    """
    keys = [decode_keys(c, model) for c in decode_contexts]
    return build_step_totals(model, ex, tuple(prefill_chunks), len(keys), sum(keys),
                             sum(cached_keys(k, ex) for k in keys), samples, step, sum(decode_contexts))


def build_step_totals(model: ModelConfig, ex: Execution, prefill_chunks: tuple[tuple[int, int], ...], decodes: int,
                      decode_pairs: int, decode_cached: int, samples: int | None = None, step: int = 0,
                      decode_contexts: int | None = None, attention: tuple[LayerKind, list[Op]] | None = None
                      ) -> PassGraph:
    """``build_step`` from the decodes' totals: ``decodes`` sequences attending to ``decode_pairs``
    keys together (``decode_keys``) and reading ``decode_cached`` of them from the cache
    (``cached_keys``); an unfused kernel computes scores over their whole contexts,
    ``decode_contexts`` (default ``decode_pairs``: no sliding window). What a step costs depends
    only on these numbers and the chunks. ``attention``: a layer kind and its attention ops from
    ``step_attention`` with these arguments, already built (they are used as they are)."""
    if not prefill_chunks and not decodes:
        raise ValueError("a step needs at least one prefill chunk or one decode")
    if any(new < 1 or context < new for new, context in prefill_chunks):
        raise ValueError(f"prefill chunks need 1 <= new tokens <= context (got {prefill_chunks})")

    def attention_for(kind: LayerKind) -> list[Op]:
        if attention is not None and attention[0] is kind:
            return attention[1]
        return step_attention(model, ex, prefill_chunks, decodes, decode_pairs, decode_cached, decode_contexts, kind)

    tokens = sum(new for new, _ in prefill_chunks) + decodes
    seqs = len(prefill_chunks) + decodes
    logits = max(1, seqs if samples is None else samples)
    phase = Phase.prefill if prefill_chunks else Phase.decode
    longest = max([new for new, _ in prefill_chunks] or [1])
    context = max([c for _, c in prefill_chunks] + [decode_pairs // max(decodes, 1)])
    ssm = (tuple(new for new, _ in prefill_chunks), sum(1 for new, c in prefill_chunks if c > new), decodes)
    return PassGraph(phase, step, seqs, longest, context, model.num_layers, _pre(model, ex, tokens),
                     post=_post(model, ex, logits, tokens), **build_layers(model, ex, tokens, attention_for, ssm))


def step_segment(model: ModelConfig, ex: Execution, segment: str, tokens: int, samples: int = 1,
                 kind: LayerKind | None = None, attention: Sequence[Op] = ()) -> nx.DiGraph:
    """One segment of ``build_step_totals``'s pass, for a model whose layers are all of ``kind`` (not Mamba):
    ``pre`` depends only on the step's ``tokens``, ``layer`` on them and its attention ops (``step_attention``'s),
    ``post`` on them and the ``samples`` that get logits (its first op, ``workloads.graph.final_norm``, is the only
    one that depends on ``tokens``). It is the DAG the pass holds, so a
    caller that stores segments (sim/serving/step_cost.py) builds only those it has not seen."""
    if segment == "pre":
        return _pre(model, ex, tokens)
    if segment == "post":
        return _post(model, ex, max(1, samples), tokens)
    if segment == "layer" and kind is not None and not kind.ssm:
        return _layer(model, ex, tokens, attention, kind)
    raise ValueError(f"no step segment {segment!r} for layer kind {kind}")


def step_attention(model: ModelConfig, ex: Execution, prefill_chunks: tuple[tuple[int, int], ...], decodes: int,
                   decode_pairs: int, decode_cached: int, decode_contexts: int | None = None,
                   kind: LayerKind | None = None) -> list[Op]:
    """The attention kernel(s) of a step in a layer of ``kind`` (default: the model's first layer's), in order
    (``build_step_totals`` puts them in its layers; a serving step's cost reuses the rest of a layer of the
    same tokens when the model has one layer kind, sim/serving/step_cost.py)."""
    kind = model.layer_kinds()[0] if kind is None else kind
    both = bool(prefill_chunks) and decodes > 0
    attention: list[Op] = []
    if prefill_chunks:
        attention += _prefill_attention(model, ex, prefill_chunks, "prefill_" if both else "", kind)
    if decodes:
        scores = decode_pairs if decode_contexts is None else decode_contexts
        attention += _decode_attention(model, ex, decodes, decode_pairs, decode_cached, scores,
                                       "decode_" if both else "", kind)
    return attention


def _prefill_attention(model: ModelConfig, ex: Execution, chunks: tuple[tuple[int, int], ...], prefix: str,
                       kind: LayerKind) -> list[Op]:
    """One kernel over every chunk: new K and V from the projection, earlier ones from the cache."""
    kv_heads, hd = model.num_kv_heads // ex.tp, model.head_dim
    queries = sum(new for new, _ in chunks)
    window, chunk = kind.window, kind.chunk
    pairs = sum(chunk_pairs(new, c, window, ex.attention, chunk) for new, c in chunks)
    # keys before each chunk its queries see: all, the window's, or those of the first query's own chunk
    cached = sum(min(c - new, window) if window else (c - new) % chunk if chunk else c - new for new, c in chunks)
    score_pairs = sum(new * c for new, c in chunks)
    if model.is_mla:
        return mla_attention(model, ex, absorbed=mla_absorbed(ex, Phase.prefill), seqs=len(chunks), queries=queries,
                             pairs=pairs, cached=cached, score_pairs=score_pairs, prefix=prefix)
    kv_read = (_act("kv", queries * 2 * kv_heads * hd, ex),)
    if cached:
        kv_read += (Tensor("kv_cache", cached * 2 * kv_heads * hd * ex.kv_cache.bytes, Role.kv),)
    return attention_kernel(model, ex, seqs=len(chunks), queries=queries, pairs=pairs, kv_read=kv_read,
                            context=max(1, round(score_pairs / queries)), score_pairs=score_pairs, prefix=prefix,
                            writes_kv=kind.kv_owner)


def _decode_attention(model: ModelConfig, ex: Execution, decodes: int, pairs: int, cached: int, scores: int,
                      prefix: str, kind: LayerKind) -> list[Op]:
    """One kernel over every decode: each reads its keys from the (paged) cache. A local layer of a model
    with global layers sees, per decode, the window (or chunk) keys of the decodes' mean context: exact
    for one sequence or equal contexts, for a sliding window an upper bound otherwise (a step carries
    the totals, not each sequence's context)."""
    if (kind.window or kind.chunk) and model.global_layer_period:
        mean = max(1, round(pairs / decodes))
        keys = chunked_keys(mean, kind.chunk) if kind.chunk else min(mean, kind.window)
        pairs, cached = decodes * keys, decodes * cached_keys(keys, ex)
    if model.is_mla:
        return mla_attention(model, ex, absorbed=mla_absorbed(ex, Phase.decode), seqs=decodes, queries=decodes,
                             pairs=float(pairs), cached=cached, score_pairs=scores, prefix=prefix, decode=True)
    kv_heads, hd = model.num_kv_heads // ex.tp, model.head_dim
    kv_read = Tensor("kv_cache", cached * 2 * kv_heads * hd * ex.kv_cache.bytes, Role.kv)
    return attention_kernel(model, ex, seqs=decodes, queries=decodes, pairs=float(pairs), kv_read=(kv_read,),
                            context=max(1, round(scores / decodes)), score_pairs=scores, prefix=prefix,
                            writes_kv=kind.kv_owner)
