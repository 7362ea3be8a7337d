"""Operator graphs (networkx DAGs) of a prefill pass and a decode step, sharded for tensor parallelism.

A pass is three DAGs: ``pre`` (embedding), ``layer`` (one transformer layer, run
``num_layers`` times) and ``post`` (final norm, LM head, sampling). Identical layers are one
DAG with a repeat count, so building, costing and simulating a pass grows with the ops of one
layer, not with layers x ops; ``PassGraph.full_graph()`` expands it for inspection.

FLOP conventions (per chip; matrix FLOPs are 2 per multiply-accumulate):

* projections: ``2 * tokens * in * out``;
* attention: ``4 * head_dim * pairs`` per query head (QK^T and PV), where ``pairs`` counts the
  (query, key) pairs the kernel computes: a fused kernel skips masked blocks (causal prefill:
  S(S+1)/2 per sequence, clipped by a sliding window), an unfused one computes the whole S x S;
* the LM head runs on the last token of each sequence only;
* vector ops: norm 5, residual add 1, rope 3 (per element of Q and K), gated activation 5
  (gelu 8), softmax 5, sampling 2 FLOP per element.

Fusion (``Execution.fused_elementwise``, on by default as in current serving engines): each
residual add is done by the norm that follows it (add + norm in one kernel) and the rotary
embedding is applied by the attention kernel as it loads Q and K (its few FLOPs are not
counted), so a layer is 8 kernels instead of 11.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Iterator, Sequence

import math

import networkx as nx

from hwmodels.numerics import DType
from workloads.model import Activation, ModelConfig, Norm, Positional
from workloads.ops import Op, OpKind, Role, Tensor, Unit, matmul, vector


DEQUANT_ROWS = 128  # token rows per GEMM block; weight-only kernels dequantize once per block


class AttentionKernel(str, Enum):
    fused = "fused"  # FlashAttention-style: tiles stay on chip, Q, K, V read once
    unfused = "unfused"  # scores materialised in HBM, softmax as its own pass


class Phase(str, Enum):
    prefill = "prefill"
    decode = "decode"


@dataclass(frozen=True, kw_only=True)
class Execution:
    """How the model is run: number formats, attention kernel, tensor-parallel degree.

    Built by keyword only: several fields are ints (tp, group_size, ep, kv_block_tokens) that a
    positional call could swap without an error.
    """

    weights: DType = DType.bf16
    activations: DType = DType.bf16
    kv_cache: DType = DType.bf16
    attention: AttentionKernel = AttentionKernel.fused
    tp: int = 1
    fused_elementwise: bool = True  # residual adds fused into the next norm, rotary into attention
    group_size: int = 128  # weights per scale for integer / fp4 weights (fp16 scales)
    ep: int = 1  # expert-parallel degree: 1 (experts split by width over tp) or tp (experts spread over chips)
    moe_imbalance: float = 1.0  # tokens of the busiest expert over the mean (the straggler sets the time)
    kv_block_tokens: int = 0  # paged KV cache block size in tokens; 0: contiguous
    overlap_comm: bool = False  # tensor-parallel all-reduces overlapped with the GEMMs that produce them

    @property
    def dense_dtype(self) -> DType:
        """Format of the tensors quantization leaves alone (embeddings, LM head, norm scales)."""
        return self.weights if self.weights.bits >= 16 else DType.bf16

    def weight_bytes(self, params: float) -> float:
        """Bytes of ``params`` projection weights: packed values plus fp16 group scales for
        integer and fp4 formats (fp8 uses one scale per tensor, negligible)."""
        scales = 2.0 * params / self.group_size if (self.weights.is_integer or self.weights is DType.fp4) else 0.0
        return params * self.weights.bytes + scales

    @property
    def weight_only(self) -> bool:
        """Weights narrower than the activations: dequantized to the activation format in the GEMM."""
        return self.weights.bits < self.activations.bits


@dataclass(frozen=True)
class PassGraph:
    """One forward pass: ``batch`` sequences, ``new_tokens`` each, attending to ``context`` keys."""

    phase: Phase
    step: int
    batch: int
    new_tokens: int
    context: int
    num_layers: int
    pre: nx.DiGraph
    layer: nx.DiGraph
    post: nx.DiGraph

    def segments(self) -> Iterator[tuple[str, nx.DiGraph, int]]:
        """(segment name, DAG, repeat count) in execution order."""
        yield "pre", self.pre, 1
        yield "layer", self.layer, self.num_layers
        yield "post", self.post, 1

    def ops(self) -> Iterator[tuple[Op, int]]:
        """Every distinct op with how many times the pass runs it."""
        for _, dag, repeat in self.segments():
            for node in nx.topological_sort(dag):
                yield dag.nodes[node]["op"], repeat

    @property
    def kernels(self) -> int:
        """Kernels (ops) the pass launches."""
        return sum(dag.number_of_nodes() * repeat for _, dag, repeat in self.segments())

    def total(self, attr: str, unit: Unit | None = None) -> float:
        """Sum of ``op.<attr>`` over the pass, optionally only ops on ``unit``."""
        return sum(getattr(op, attr) * r for op, r in self.ops() if unit is None or op.unit is unit)

    def full_graph(self) -> nx.DiGraph:
        """The expanded DAG with every layer's ops (nodes named ``L<i>.<op>``)."""
        full = nx.DiGraph()
        last: list[str] = []
        blocks = [("pre", self.pre)] + [(f"L{i}", self.layer) for i in range(self.num_layers)] + [("post", self.post)]
        for prefix, dag in blocks:
            names = {n: f"{prefix}.{n}" for n in dag.nodes}
            for node, data in dag.nodes(data=True):
                full.add_node(names[node], **data)
            full.add_edges_from((names[a], names[b]) for a, b in dag.edges)
            sources = [names[n] for n in dag.nodes if dag.in_degree(n) == 0]
            full.add_edges_from((a, b) for a in last for b in sources)
            last = [names[n] for n in dag.nodes if dag.out_degree(n) == 0]
        return full


class _Dag:
    """Adds ops in order; each op depends on the previous one unless told otherwise."""

    def __init__(self) -> None:
        self.graph = nx.DiGraph()
        self.last: tuple[str, ...] = ()

    def add(self, op: Op, after: tuple[str, ...] | None = None) -> str:
        self.graph.add_node(op.name, op=op)
        deps = after if after is not None else self.last
        self.graph.add_edges_from((d, op.name) for d in deps)
        self.last = (op.name,)
        return op.name

    def add_beside(self, op: Op, producer: str) -> str:
        """Add ``op`` to run alongside ``producer`` (same inputs); what follows waits for both."""
        self.add(op, after=tuple(self.graph.predecessors(producer)))
        self.last = (producer, op.name)
        return op.name


def attention_pairs(phase: Phase, new_tokens: int, context: int, window: int, kernel: AttentionKernel) -> float:
    """(query, key) pairs per sequence and head that the attention kernel computes."""
    if phase is Phase.decode:
        keys = min(context, window) if window else context
        return float(new_tokens * keys)
    if kernel is AttentionKernel.unfused:
        return float(new_tokens * context)
    s = new_tokens
    if window and window < s:
        return window * (window + 1) / 2 + (s - window) * window
    return s * (s + 1) / 2


def pass_attention(model: ModelConfig, ex: Execution, phase: Phase, batch: int, s: int, context: int) -> list[Op]:
    """The attention kernel(s) of a pass: ``batch`` sequences of ``s`` new tokens attending to ``context`` keys."""
    t, hd = ex.tp, model.head_dim
    kv_heads = model.num_kv_heads // t
    tokens = batch * s
    pairs = attention_pairs(phase, s, context, model.sliding_window, ex.attention)
    if phase is Phase.decode:
        cached = min(context, model.sliding_window) if model.sliding_window else context
        if ex.kv_block_tokens:  # paged cache: whole blocks are read, the last one partly empty
            cached = -(-cached // ex.kv_block_tokens) * ex.kv_block_tokens
        kv_read = Tensor("kv_cache", batch * cached * 2 * kv_heads * hd * ex.kv_cache.bytes, Role.kv)
    else:  # the prompt's K and V come straight from the projection output
        kv_read = _act("kv", tokens * 2 * kv_heads * hd, ex)
    return attention_kernel(model, ex, seqs=batch, queries=tokens, pairs=pairs * batch, kv_read=(kv_read,),
                            context=context, score_pairs=batch * s * context)


def attention_kernel(model: ModelConfig, ex: Execution, *, seqs: int, queries: int, pairs: float,
                     kv_read: tuple[Tensor, ...], context: int, score_pairs: int, prefix: str = "") -> list[Op]:
    """The attention of ``seqs`` sequences done by one kernel (fused) or three (unfused), on one chip.

    Args:
        seqs: sequences the kernel serves.
        queries: their new tokens, all together (Q rows; their K and V are written to the cache).
        pairs: (query, key) pairs per query head the kernel computes, summed over the sequences.
        kv_read: the keys and values it reads: the KV cache, or the projection's output for new tokens.
        context: keys per sequence (the mean), the width of an unfused kernel's score matrix.
        score_pairs: (query, key) pairs per head an unfused kernel writes as scores, summed.
        prefix: put before the op names (a serving step with both prefill and decode attention).
    """
    t, hd = ex.tp, model.head_dim
    heads, kv_heads = model.num_heads // t, model.num_kv_heads // t
    group = heads // kv_heads  # query heads sharing one KV head
    rows = max(1, round(queries / seqs))  # query rows per sequence
    new_kv = Tensor("kv_new", queries * 2 * kv_heads * hd * ex.kv_cache.bytes, Role.kv)
    q = _act("q", queries * heads * hd, ex)
    out = _act("o", queries * heads * hd, ex)
    if ex.attention is AttentionKernel.fused:
        return [Op(f"{prefix}attention", OpKind.attention, Unit.matrix, 4.0 * hd * pairs * heads, (q, *kv_read),
                   (out, new_kv), ex.activations, m=rows * group, n=max(1, round(pairs / queries)), k=hd,
                   groups=2 * seqs * kv_heads)]
    scores = heads * score_pairs
    k_read = tuple(Tensor("k", kv.nbytes / 2, kv.role) for kv in kv_read)
    v_read = tuple(Tensor("v", kv.nbytes / 2, kv.role) for kv in kv_read)
    return [
        matmul(f"{prefix}attn_score", OpKind.attn_score, rows * group, context, hd, ex.activations,
               [q, *k_read], [_act("scores", scores, ex), new_kv], groups=seqs * kv_heads),
        vector(f"{prefix}softmax", OpKind.softmax, 5 * scores, [_act("scores", scores, ex)],
               [_act("probs", scores, ex)]),
        matmul(f"{prefix}attn_context", OpKind.attn_context, rows * group, hd, context, ex.activations,
               [_act("probs", scores, ex), *v_read], [out], groups=seqs * kv_heads),
    ]


def build_pass(model: ModelConfig, ex: Execution, phase: Phase, batch: int, new_tokens: int, context: int,
               step: int = 0, logits_per_seq: int = 1) -> PassGraph:
    """The operator graph of one pass on one chip of a tensor-parallel group.

    Args:
        model: the transformer.
        ex: number formats, attention kernel and tensor-parallel degree.
        phase: prefill (``new_tokens == context``: the prompt) or decode (``new_tokens`` = 1).
        batch: sequences in the pass.
        new_tokens: tokens per sequence computed in this pass.
        context: keys each sequence attends to, including the new tokens.
        step: decode step number (0 for the prefill), for the records.
        logits_per_seq: tokens per sequence that get logits (a speculative verification
            scores every drafted token; otherwise only the last one).
    """
    return PassGraph(
        phase, step, batch, new_tokens, context, model.num_layers,
        _pre(model, ex, batch * new_tokens),
        _layer(model, ex, batch * new_tokens, pass_attention(model, ex, phase, batch, new_tokens, context)),
        _post(model, ex, batch * logits_per_seq, batch * new_tokens),
    )


def _act(name: str, elems: float, ex: Execution) -> Tensor:
    return Tensor(name, elems * ex.activations.bytes, Role.activation)


def _weight(name: str, params: float, ex: Execution) -> Tensor:
    """A projection weight in the quantized format (values plus scales)."""
    return Tensor(name, ex.weight_bytes(params), Role.weight)


def _dense(name: str, params: float, ex: Execution) -> Tensor:
    """A weight quantization leaves in 16 bits: embeddings, LM head, norm scales."""
    return Tensor(name, params * ex.dense_dtype.bytes, Role.weight)


def _proj(name: str, kind: OpKind, tokens: int, n: int, k: int, ex: Execution, x: Tensor, bias: bool,
          out: Tensor) -> Op:
    """A projection GEMM ``(tokens x k) @ (k x n)``. Weight-only quantization dequantizes each
    weight tile once per 128-row block of tokens: 2 FLOP per weight on the vector unit."""
    params = k * n + (n if bias else 0)
    op = matmul(name, kind, tokens, n, k, ex.activations, [x, _weight(f"w_{name}", params, ex)], [out])
    if ex.weight_only:
        op = replace(op, dequant_flops=2.0 * k * n * -(-tokens // DEQUANT_ROWS))
    return op


def _norm_op(name: str, model: ModelConfig, ex: Execution, tokens: int, add_residual: bool = False) -> Op:
    """A norm; with ``add_residual`` it first adds the branch output into the residual stream
    and writes both the new stream and its normalised copy (one kernel instead of two)."""
    d = model.hidden_size
    scale = 2 if model.norm is Norm.layernorm else 1
    reads = [_act("x", tokens * d, ex), _dense("gamma", scale * d, ex)]
    writes = [_act("y", tokens * d, ex)]
    if add_residual:
        reads.insert(1, _act("branch", tokens * d, ex))
        writes.insert(0, _act("x_new", tokens * d, ex))
    return vector(name, OpKind.norm, (6 if add_residual else 5) * tokens * d, reads, writes)


def _allreduce(name: str, ex: Execution, elems: float) -> Op:
    payload = elems * ex.activations.bytes
    return Op(name, OpKind.allreduce, Unit.link, 0.0,
              (Tensor("in", payload, Role.activation),), (Tensor("out", payload, Role.activation),),
              ex.activations, comm_bytes=payload, comm_chips=ex.tp)


def _pre(model: ModelConfig, ex: Execution, tokens: int) -> nx.DiGraph:
    d, t = model.hidden_size, ex.tp
    dag = _Dag()
    rows = tokens * d * (2 if model.positional is Positional.learned else 1)
    dag.add(vector("embedding", OpKind.embedding, tokens * d if model.positional is Positional.learned else 0,
                   [_dense("table_rows", rows / t, ex)], [_act("x", tokens * d, ex)]))
    if t > 1:  # vocabulary-parallel table: each chip holds V/t rows, partial sums are all-reduced
        dag.add(_allreduce("embedding_allreduce", ex, tokens * d))
    return dag.graph


def _layer(model: ModelConfig, ex: Execution, tokens: int, attention: Sequence[Op]) -> nx.DiGraph:
    """One layer over ``tokens`` tokens; ``attention`` is its attention kernel(s), in order."""
    d, t, hd = model.hidden_size, ex.tp, model.head_dim
    heads, kv_heads = model.num_heads // t, model.num_kv_heads // t
    qkv_out = (heads + 2 * kv_heads) * hd
    bias = model.bias
    dag = _Dag()

    fused = ex.fused_elementwise
    # Fused: the previous layer's MLP residual add happens in this norm kernel (add + norm).
    dag.add(_norm_op("attn_norm", model, ex, tokens, add_residual=fused))
    dag.add(_proj("qkv_proj", OpKind.qkv_proj, tokens, qkv_out, d, ex, _act("x", tokens * d, ex), bias,
                  _act("qkv", tokens * qkv_out, ex)))
    if model.positional is Positional.rope and not fused:  # fused: applied as attention loads Q and K
        qk = tokens * (heads + kv_heads) * hd
        dag.add(vector("rope", OpKind.rope, 3 * qk, [_act("qk", qk, ex)], [_act("qk_rot", qk, ex)]))

    for op in attention:
        dag.add(op)

    out = _act("o", tokens * heads * hd, ex)  # the attention output
    proj = dag.add(_proj("out_proj", OpKind.out_proj, tokens, d, heads * hd, ex, out, bias,
                         _act("y", tokens * d, ex)))
    if t > 1:
        _reduce(dag, "attn_allreduce", ex, tokens * d, proj)
    if fused:
        res1 = dag.add(_norm_op("mlp_norm", model, ex, tokens, add_residual=True))
    else:
        res1 = dag.add(vector("attn_residual", OpKind.residual, tokens * d,
                              [_act("x", tokens * d, ex), _act("y", tokens * d, ex)], [_act("h", tokens * d, ex)]))
        dag.add(_norm_op("mlp_norm", model, ex, tokens))
    if model.is_moe:
        down = _moe(dag, model, ex, tokens)
    else:
        produced = _mlp(dag, "mlp", model.mlp_in_size // t, model.ffn_size // t, model, ex, tokens, bias)
        if t > 1:
            _reduce(dag, "mlp_allreduce", ex, tokens * d, produced)
        down = dag.last
    if fused:  # the residual add moves into the next layer's (or the final) norm
        return dag.graph
    dag.add(vector("mlp_residual", OpKind.residual, tokens * d,
                   [_act("h", tokens * d, ex), _act("y", tokens * d, ex)], [_act("x", tokens * d, ex)]),
            after=(res1, *down))
    return dag.graph


def _mlp(dag: _Dag, prefix: str, up: int, f: int, model: ModelConfig, ex: Execution, tokens: int,
         bias: bool) -> str:
    """A (gated) MLP of width ``f`` on this chip: up (gate and up together), activation, down."""
    d = model.hidden_size
    dag.add(_proj(f"{prefix}_up", OpKind.mlp_up, tokens, up, d, ex, _act("h", tokens * d, ex), bias,
                  _act("u", tokens * up, ex)))
    per_elem = 8 if model.activation is Activation.gelu else 5
    dag.add(vector(f"{prefix}_activation", OpKind.activation, per_elem * tokens * f,
                   [_act("u", tokens * up, ex)], [_act("a", tokens * f, ex)]))
    return dag.add(_proj(f"{prefix}_down", OpKind.mlp_down, tokens, d, f, ex, _act("a", tokens * f, ex), bias,
                         _act("y", tokens * d, ex)))


def _reduce(dag: _Dag, name: str, ex: Execution, elems: float, producer: str) -> None:
    """The all-reduce after a row-parallel GEMM: after it, or chunked alongside it when
    ``overlap_comm`` (async tensor parallelism: the GEMM's finished chunks are reduced while the
    rest compute; the two share the chip's HBM bandwidth in the simulation)."""
    op = _allreduce(name, ex, elems)
    if ex.overlap_comm:
        dag.add_beside(op, producer)
    else:
        dag.add(op)


def _alltoall(name: str, ex: Execution, nbytes: float) -> Op:
    return Op(name, OpKind.alltoall, Unit.link, 0.0, (Tensor("in", nbytes, Role.activation),),
              (Tensor("out", nbytes, Role.activation),), ex.activations, comm_bytes=nbytes, comm_chips=ex.ep)


def _moe(dag: _Dag, model: ModelConfig, ex: Execution, tokens: int) -> tuple[str, ...]:
    """Mixture of experts on one chip: router, the experts that received tokens, shared expert.

    With ``ep == 1`` every chip holds every expert, split by width over tp; with ``ep == tp``
    each chip holds ``num_experts / ep`` whole experts, takes ``1/ep`` of the tokens and sends
    them to their experts' chips (all-to-all dispatch), and gets the results back (combine).
    Of the chip's E_local experts, ``E_local * (1 - (1 - k/E) ** tokens)`` receive at least one
    token (each token picks k of E); only their weights are read. The busiest expert gets
    ``moe_imbalance`` times the mean load and sets the grouped GEMM's time.
    """
    d, t, ep = model.hidden_size, ex.tp, ex.ep
    experts, k = model.num_experts, model.experts_per_token
    dag.add(matmul("router", OpKind.router, tokens, experts, d, ex.activations,
                   [_act("h", tokens * d, ex), _dense("w_router", d * experts, ex)],
                   [_act("scores", tokens * experts, ex)]))
    split = 1 if ep > 1 else t  # expert width divisor on this chip
    up, f = model.mlp_in_size // split, model.ffn_size // split
    local = experts // ep
    hit = max(1, math.ceil(local * (1 - (1 - k / experts) ** tokens)))
    pairs = tokens * k / ep  # token-expert pairs this chip computes
    rows = max(1, math.ceil(pairs / hit * ex.moe_imbalance))
    if ep > 1:
        dag.add(_alltoall("moe_dispatch", ex, -(-tokens // ep) * k * d * ex.activations.bytes))
    dag.add(_experts("expert_up", OpKind.expert_up, rows, up, d, hit, ex))
    per_elem = 8 if model.activation is Activation.gelu else 5
    dag.add(vector("expert_activation", OpKind.activation, per_elem * rows * hit * f,
                   [_act("u", rows * hit * up, ex)], [_act("a", rows * hit * f, ex)]))
    last = dag.add(_experts("expert_down", OpKind.expert_down, rows, d, f, hit, ex))
    if ep > 1:
        last = dag.add(_alltoall("moe_combine", ex, -(-tokens // ep) * k * d * ex.activations.bytes))
    if model.shared_ffn_size:
        width = (2 if model.gated_mlp else 1) * model.shared_ffn_size
        last = _mlp(dag, "shared", width // t, model.shared_ffn_size // t, model, ex, tokens, False)
    if t > 1:  # sums the experts' (or shards') outputs and replicates them over the group
        _reduce(dag, "mlp_allreduce", ex, tokens * d, last)
    return dag.last


def _experts(name: str, kind: OpKind, rows: int, n: int, k: int, groups: int, ex: Execution) -> Op:
    """A grouped GEMM: ``groups`` experts, each ``(rows x k) @ (k x n)``, each reading its weights."""
    op = matmul(name, kind, rows, n, k, ex.activations,
                [_act("x", groups * rows * k, ex), _weight(f"w_{name}", groups * k * n, ex)],
                [_act("y", groups * rows * n, ex)], groups=groups)
    if ex.weight_only:
        op = replace(op, dequant_flops=2.0 * k * n * groups * -(-rows // DEQUANT_ROWS))
    return op


def _post(model: ModelConfig, ex: Execution, batch: int, tokens: int) -> nx.DiGraph:
    """Final norm over ``tokens``, then LM head, gather and sampling for ``batch`` rows of logits."""
    d, t, vocab = model.hidden_size, ex.tp, model.vocab_size
    shard = -(-vocab // t)  # vocabulary rows per chip, the last shard padded
    dag = _Dag()
    dag.add(_norm_op("final_norm", model, ex, tokens, add_residual=ex.fused_elementwise))
    dag.add(matmul("lm_head", OpKind.lm_head, batch, shard, d, ex.activations,
                   [_act("h_last", batch * d, ex), _dense("w_vocab", d * shard, ex)],
                   [_act("logits", batch * shard, ex)]))
    if t > 1:
        payload = batch * shard * t * ex.activations.bytes
        dag.add(Op("logits_allgather", OpKind.allgather, Unit.link, 0.0,
                   (Tensor("logits", payload / t, Role.activation),), (Tensor("all_logits", payload, Role.activation),),
                   ex.activations, comm_bytes=payload, comm_chips=t))
    dag.add(vector("sampling", OpKind.sampling, 2 * batch * vocab,
                   [_act("all_logits", batch * vocab, ex)], [Tensor("token_ids", batch * 4, Role.activation)]))
    return dag.graph
