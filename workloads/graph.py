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

Here: ``Execution``, ``PassGraph``, ``build_pass`` and the pre / layer / post DAGs. The parts live
beside it: ``workloads/attention.py`` (phase, kernel choice, attention ops), ``workloads/moe.py``
(mixture of experts), ``workloads/blocks.py`` (DAG builder, projections, norms, MLP, all-reduces);
``workloads/step.py`` builds a serving step from the same parts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import networkx as nx

from hwmodels.numerics import DType
from workloads.attention import AttentionKernel, MlaForm, Phase, pass_attention
from workloads.blocks import _act, _allreduce, _Dag, _dense, _mlp, _norm_op, _proj, _reduce
from workloads.context import add_ring, rank_tokens, ring_attention
from workloads.model import LayerKind, ModelConfig, Positional
from workloads.moe import _moe
from workloads.ops import Op, OpKind, Role, Tensor, Unit, matmul, vector
from workloads.ssm import ssm_mixer

# AttentionKernel and Phase are defined with the attention ops and re-exported here.
__all__ = ["AttentionKernel", "Execution", "MlaForm", "PassGraph", "Phase", "build_pass"]

SsmShape = tuple[tuple[int, ...], int, int]  # (new tokens of each prefilling sequence, of them resumed, decodes)


# fp4 weights are OCP MXFP4 (OCP Microscaling Formats (MX) Specification v1.0, 2023): blocks of 32 E2M1 values
# share one E8M0 (1-byte) scale. It is the fp4 that Blackwell (B200, GB200) and CDNA 4 (MI355X) both run and
# that gpt-oss ships in. NVIDIA's NVFP4 (16 values per E4M3 scale) carries twice the scale bytes.
MX_BLOCK = 32


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
    group_size: int = 128  # weights per fp16 scale for integer weights (fp4 is MXFP4: ``MX_BLOCK``)
    ep: int = 1  # expert-parallel degree: 1 (experts split by width over tp) or a multiple of tp (spread over chips)
    attention_groups: int = 1  # ep / tp when ep > tp: tp-chip groups of the EP group, each with its own tokens
    ep_nodes: int = 1  # scale-up domains the EP group spans (its all-to-alls cross the network when > 1)
    moe_imbalance: float = 1.0  # tokens of the busiest expert over the mean (the straggler sets the time)
    moe_redundant_experts: int = 0  # copies of hot experts beside the experts, spread over the ep chips
    kv_block_tokens: int = 0  # paged KV cache block size in tokens; 0: contiguous
    cp: int = 1  # context-parallel ranks: a prefill's sequence split over them (ring attention), the KV cache too
    kv_host_fraction: float = 0.0  # share of the attention KV cache held in the host tier (memory.kv_offload)
    overlap_comm: bool = False  # tensor-parallel all-reduces overlapped with the GEMMs that produce them, chunked
    overlap_chunks: int = 0  # pieces each such GEMM is split into; 0: from the shapes (blocks.overlap_chunks)
    overlap_min_chunk_bytes: float = 2**20  # all-reduce payload per piece below which a split does not pay
    mla_form: MlaForm = MlaForm.auto  # multi-head latent attention: absorbed or naive (workloads/mla.py)
    # Projection GEMMs take their activation input in the weights' 8-bit format, quantized by the kernel
    # before (TensorRT-LLM fp8): 8-bit GEMMs with 16-bit activations, KV and all-reduce elsewhere.
    quantized_gemm_inputs: bool = False

    @property
    def gemm_dtype(self) -> DType:
        """Format of the projection GEMMs' arithmetic and of their activation input."""
        if self.quantized_gemm_inputs and self.weights.bits == 8:
            return self.weights
        return self.activations

    @property
    def dense_dtype(self) -> DType:
        """Format of the tensors quantization leaves alone (embeddings, LM head, norm scales)."""
        return self.weights if self.weights.bits >= 16 else DType.bf16

    def weight_bytes(self, params: float) -> float:
        """Bytes of ``params`` projection weights: packed values plus their scales: one fp16 scale per
        ``group_size`` integer weights (GPTQ/AWQ); fp4 is MXFP4, one 8-bit scale per ``MX_BLOCK`` weights
        (0.25 bit per weight); fp8 uses one scale per tensor, negligible."""
        if self.weights is DType.fp4:
            return params * self.weights.bytes + params / MX_BLOCK
        scales = 2.0 * params / self.group_size if self.weights.is_integer else 0.0
        return params * self.weights.bytes + scales

    @property
    def weight_only(self) -> bool:
        """Weights narrower than the activations: dequantized to the activation format in the GEMM."""
        return self.weights.bits < self.gemm_dtype.bits


@dataclass(frozen=True)
class PassGraph:
    """One forward pass: ``batch`` sequences, ``new_tokens`` each, attending to ``context`` keys.

    A model whose layers all have the same kind has one layer DAG, ``layer``. A model with several
    kinds (dense and MoE layers, local and global attention, Mamba and attention) has a DAG per kind:
    ``layer`` for the most common one, the others in ``extra`` (segment name, DAG), and ``pattern``
    names each layer's segment in order. Layers run one after another, so a pass runs the layers
    of each kind as one repeated segment (in order of first appearance); the total is the same as
    in the model's order.
    """

    phase: Phase
    step: int
    batch: int
    new_tokens: int
    context: int
    num_layers: int
    pre: nx.DiGraph
    layer: nx.DiGraph
    post: nx.DiGraph
    extra: tuple[tuple[str, nx.DiGraph], ...] = ()
    pattern: tuple[str, ...] = ()
    steps: int = 1  # decode steps the pass stands for: a closed-form segment's mean step (sim/batch/closed_form.py)
    model: str = ""  # whose pass it is (``ModelConfig.name``): a speculative run's ops.csv tells draft from target

    def layer_segments(self, first: int = 0, count: int | None = None) -> list[tuple[str, nx.DiGraph, int]]:
        """(segment name, DAG, repeat count) of layers ``first`` .. ``first + count - 1``."""
        count = self.num_layers - first if count is None else count
        if not self.pattern:
            return [("layer", self.layer, count)] if count else []
        dags = {"layer": self.layer, **dict(self.extra)}
        counts: dict[str, int] = {}
        for name in self.pattern[first:first + count]:
            counts[name] = counts.get(name, 0) + 1
        return [(name, dags[name], n) for name, n in counts.items()]

    def segments(self) -> Iterator[tuple[str, nx.DiGraph, int]]:
        """(segment name, DAG, repeat count) in execution order."""
        yield "pre", self.pre, 1
        yield from self.layer_segments()
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
        """The expanded DAG with every layer's ops (nodes named ``L<i>.<op>``), in the model's layer order."""
        full = nx.DiGraph()
        last: list[str] = []
        dags = {"layer": self.layer, **dict(self.extra)}
        names = self.pattern or ("layer",) * self.num_layers
        blocks = [("pre", self.pre)] + [(f"L{i}", dags[n]) for i, n in enumerate(names)] + [("post", self.post)]
        for prefix, dag in blocks:
            names = {n: f"{prefix}.{n}" for n in dag.nodes}
            for node, data in dag.nodes(data=True):
                full.add_node(names[node], **data)
            full.add_edges_from((names[a], names[b]) for a, b in dag.edges)
            sources = [names[n] for n in dag.nodes if dag.in_degree(n) == 0]
            full.add_edges_from((a, b) for a in last for b in sources)
            last = [names[n] for n in dag.nodes if dag.out_degree(n) == 0]
        return full


_NAMES: dict[int, tuple[tuple[LayerKind, ...], dict[LayerKind, str]]] = {}  # id(kinds) -> (kinds, their names)


def segment_names(kinds: tuple[LayerKind, ...]) -> dict[LayerKind, str]:
    """A segment name per distinct layer kind: ``layer`` for the most common (the first on a tie),
    ``layer_<what>`` for the others (ssm or attention window, moe or mlp, kvshared). Found once per
    tuple of kinds (``ModelConfig.layer_kinds`` gives the same tuple each time); a copy is returned."""
    found = _NAMES.get(id(kinds))
    if found is None or found[0] is not kinds:
        if len(_NAMES) > 256:
            _NAMES.clear()
        found = _NAMES[id(kinds)] = (kinds, _segment_names(kinds))
    return dict(found[1])


def _segment_names(kinds: tuple[LayerKind, ...]) -> dict[LayerKind, str]:
    counts: dict[LayerKind, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    main = max(counts, key=lambda k: counts[k])
    names = {}
    for kind in counts:
        mixer = "ssm" if kind.ssm else f"swa{kind.window}" if kind.window else f"chunk{kind.chunk}" if kind.chunk \
            else "attn"
        names[kind] = "layer" if kind == main else \
            f"layer_{mixer}_{'moe' if kind.moe else 'mlp'}{'' if kind.kv_owner else '_kvshared'}"
    return names


def build_layers(model: ModelConfig, ex: Execution, tokens: int, attention_for, ssm: SsmShape) -> dict:
    """``PassGraph`` layer fields: ``layer`` (and ``extra``, ``pattern`` for mixed kinds); ``attention_for(kind)``
    gives a kind's attention ops, ``ssm`` the shape of its Mamba layers' work."""
    kinds = model.layer_kinds()
    names = segment_names(kinds)
    dags = {name: _layer(model, ex, tokens, () if kind.ssm else attention_for(kind), kind, ssm)
            for kind, name in names.items()}
    if len(dags) == 1:
        return {"layer": dags["layer"]}
    return {"layer": dags["layer"], "extra": tuple((n, d) for n, d in dags.items() if n != "layer"),
            "pattern": tuple(names[k] for k in kinds)}


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
    resumed = phase is Phase.decode or context > new_tokens
    ssm = ((), 0, batch) if phase is Phase.decode and new_tokens == 1 else ((new_tokens,) * batch, batch * resumed, 0)
    local, attention = new_tokens, lambda kind: pass_attention(model, ex, phase, batch, new_tokens, context, kind)
    if ex.cp > 1 and phase is Phase.prefill and not resumed:  # this rank's share of the prompt, ring attention
        local = rank_tokens(new_tokens, ex.cp)
        attention = lambda kind: ring_attention(model, ex, batch, new_tokens, kind.kv_owner)  # noqa: E731
    layers = build_layers(model, ex, batch * local, attention, ssm)
    return PassGraph(phase, step, batch, new_tokens, context, model.num_layers, _pre(model, ex, batch * local),
                     post=_post(model, ex, batch * logits_per_seq, batch * local), model=model.name, **layers)


def _pre(model: ModelConfig, ex: Execution, tokens: int) -> nx.DiGraph:
    d, t = model.hidden_size, ex.tp
    dag = _Dag()
    rows = tokens * d * (2 if model.positional is Positional.learned else 1)
    dag.add(vector("embedding", OpKind.embedding, tokens * d if model.positional is Positional.learned else 0,
                   [_dense("table_rows", rows / t, ex)], [_act("x", tokens * d, ex)]))
    if t > 1:  # vocabulary-parallel table: each chip holds V/t rows, partial sums are all-reduced
        dag.add(_allreduce("embedding_allreduce", ex, tokens * d))
    return dag.graph


def _layer(model: ModelConfig, ex: Execution, tokens: int, attention: Sequence[Op], kind: LayerKind | None = None,
           ssm: SsmShape = ((), 0, 0)) -> nx.DiGraph:
    """One layer of ``kind`` (default: the model's last layer's) over ``tokens`` tokens; ``attention`` is its
    attention kernel(s), in order; ``ssm`` the work of a Mamba layer (prefill lengths, resumed, decodes)."""
    kind = kind or model.layer_kinds()[-1]
    d, t = model.hidden_size, ex.tp
    dag = _Dag()
    fused = ex.fused_elementwise
    # Fused: the previous layer's MLP residual add happens in this norm kernel (add + norm).
    dag.add(_norm_op("attn_norm", model, ex, tokens, add_residual=fused))
    if kind.ssm:
        proj = ssm_mixer(dag, model, ex, *ssm)
    elif model.is_mla:
        proj = _mla_mixer(dag, model, ex, tokens, attention)
    else:
        proj = _attention_mixer(dag, model, ex, tokens, attention, kind)
    if t > 1:
        _reduce(dag, "attn_allreduce", ex, tokens * d, proj)
    if fused:
        res1 = dag.add(_norm_op("mlp_norm", model, ex, tokens, add_residual=True))
    else:
        res1 = dag.add(vector("attn_residual", OpKind.residual, tokens * d,
                              [_act("x", tokens * d, ex), _act("y", tokens * d, ex)], [_act("h", tokens * d, ex)]))
        dag.add(_norm_op("mlp_norm", model, ex, tokens))
    if kind.moe:
        down = _moe(dag, model, ex, tokens)
    else:
        width = (2 if model.gated_mlp else 1) * kind.ffn_size
        produced = _mlp(dag, "mlp", width // t, kind.ffn_size // t, model, ex, tokens, model.bias)
        if t > 1:
            _reduce(dag, "mlp_allreduce", ex, tokens * d, produced)
        down = dag.last
    if fused:  # the residual add moves into the next layer's (or the final) norm
        return dag.graph
    dag.add(vector("mlp_residual", OpKind.residual, tokens * d,
                   [_act("h", tokens * d, ex), _act("y", tokens * d, ex)], [_act("x", tokens * d, ex)]),
            after=(res1, *down))
    return dag.graph


def _attention_mixer(dag: _Dag, model: ModelConfig, ex: Execution, tokens: int, attention: Sequence[Op],
                     kind: LayerKind) -> str:
    """QKV projection (Q only in a layer reusing an earlier layer's KV cache), rotary, attention, out-projection."""
    d, t, hd = model.hidden_size, ex.tp, model.head_dim
    heads, kv_heads = model.num_heads // t, model.num_kv_heads // t
    qkv_out = (heads + (2 * kv_heads if kind.kv_owner else 0)) * hd
    dag.add(_proj("qkv_proj", OpKind.qkv_proj, tokens, qkv_out, d, ex, _act("x", tokens * d, ex), model.bias,
                  _act("qkv", tokens * qkv_out, ex)))
    if model.positional is Positional.rope and not ex.fused_elementwise:  # fused: applied as attention loads Q, K
        qk = tokens * (heads + kv_heads) * hd
        dag.add(vector("rope", OpKind.rope, 3 * qk, [_act("qk", qk, ex)], [_act("qk_rot", qk, ex)]))
    if any(op.kind is OpKind.send for op in attention):  # context parallelism's ring (workloads/context.py)
        add_ring(dag, list(attention))
    else:
        for op in attention:
            dag.add(op)
    out = _act("o", tokens * heads * hd, ex)  # the attention output
    return dag.add(_proj("out_proj", OpKind.out_proj, tokens, d, heads * hd, ex, out, model.bias,
                         _act("y", tokens * d, ex)))


def _mla_mixer(dag: _Dag, model: ModelConfig, ex: Execution, tokens: int, attention: Sequence[Op]) -> str:
    """MLA (workloads/mla.py): one replicated down-projection to the Q latent, the KV latent and the
    rotary key (every chip computes all of it, as vLLM's replicated fused_qkv_a_proj), their norms,
    Q's up-projection to this chip's heads, the attention ops, the out-projection."""
    d, t = model.hidden_size, ex.tp
    heads, rank = model.num_heads // t, model.q_lora_rank
    down = rank + model.latent_size
    dag.add(_proj("qkv_a_proj", OpKind.qkv_proj, tokens, down, d, ex, _act("x", tokens * d, ex), False,
                  _act("latents", tokens * down, ex)))
    normed = rank + model.kv_lora_rank
    dag.add(vector("latent_norm", OpKind.norm, 5 * tokens * normed, [_act("latents", tokens * normed, ex)],
                   [_act("latents_n", tokens * normed, ex)]))
    q_in = rank or d
    dag.add(_proj("q_b_proj" if rank else "q_proj", OpKind.qkv_proj, tokens, heads * model.head_dim, q_in, ex,
                  _act("q_latent", tokens * q_in, ex), False, _act("q", tokens * heads * model.head_dim, ex)))
    if model.positional is Positional.rope and not ex.fused_elementwise:
        qk = tokens * (heads + 1) * model.qk_rope_head_dim
        dag.add(vector("rope", OpKind.rope, 3 * qk, [_act("qk", qk, ex)], [_act("qk_rot", qk, ex)]))
    for op in attention:
        dag.add(op)
    out = _act("o", tokens * heads * model.v_head_dim, ex)
    return dag.add(_proj("out_proj", OpKind.out_proj, tokens, d, heads * model.v_head_dim, ex, out, False,
                         _act("y", tokens * d, ex)))


def final_norm(model: ModelConfig, ex: Execution, tokens: int) -> Op:
    """The final norm over the pass's ``tokens`` (with the last layer's residual add when elementwise ops are fused)."""
    return _norm_op("final_norm", model, ex, tokens, add_residual=ex.fused_elementwise)


def _post(model: ModelConfig, ex: Execution, batch: int, tokens: int) -> nx.DiGraph:
    """Final norm over ``tokens``, then LM head, gather and sampling for ``batch`` rows of logits."""
    d, t, vocab = model.hidden_size, ex.tp, model.vocab_size
    shard = -(-vocab // t)  # vocabulary rows per chip, the last shard padded
    dag = _Dag()
    dag.add(final_norm(model, ex, tokens))  # the post's first op, and the only one that depends on ``tokens``
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
