"""Building blocks of the operator graphs: the DAG builder, tensors, projections, norms, MLPs and
tensor-parallel all-reduces, shared by the pass (graph.py), attention, MoE and serving-step builders.

Names are private to the ``workloads`` package (underscored); what the rest of the code uses is
re-exported from ``workloads`` and ``workloads.graph``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import networkx as nx

from workloads.model import Activation, ModelConfig, Norm
from workloads.ops import Op, OpKind, Role, Tensor, Unit, matmul, vector

if TYPE_CHECKING:
    from workloads.graph import Execution

DEQUANT_ROWS = 128  # token rows per GEMM block; weight-only kernels dequantize once per block


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
    if ex.gemm_dtype is not ex.activations:  # the input arrives quantized by the kernel before
        x = Tensor(x.name, x.nbytes * ex.gemm_dtype.bytes / ex.activations.bytes, x.role)
    op = matmul(name, kind, tokens, n, k, ex.gemm_dtype, [x, _weight(f"w_{name}", params, ex)], [out])
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


OVERLAP_MAX_CHUNKS = 4  # pieces a GEMM is split into for overlap when the shapes allow


def overlap_chunks(ex: Execution, gemm: Op, payload_bytes: float) -> int:
    """Pieces the GEMM ``gemm`` is split into so that its all-reduce of ``payload_bytes`` overlaps it.

    Overlap of a collective with the GEMM producing its input exists only as chunked
    (decomposed) overlap: piece i's reduction runs beside piece i+1's GEMM. 1 means no split
    (the all-reduce after the whole GEMM, exactly the graph without overlap). The rule:

    * ``overlap_comm`` off, or a producer that is not a single (ungrouped) GEMM: 1;
    * ``ex.overlap_chunks`` when set (> 0), else
      ``min(4, payload_bytes // ex.overlap_min_chunk_bytes)``: every piece's all-reduce moves at
      least ``overlap_min_chunk_bytes`` (the run sets it to the payload from which the chip's
      collectives reach their plateau bandwidth, ``hardware.link_saturation_MB``). A smaller piece
      moves its bytes slower than the whole would, and each extra piece adds a collective's
      latency and a kernel launch, so splitting below it costs more than it hides: decode steps
      (KB to a few MB per all-reduce) stay unsplit by default, large prefills split into 2-4;
    * never more pieces than rows of the dimension that is split.
    """
    if not ex.overlap_comm or gemm.unit is not Unit.matrix or gemm.groups != 1 or len(gemm.reads) < 2:
        return 1
    chunks = ex.overlap_chunks or min(OVERLAP_MAX_CHUNKS, int(payload_bytes // ex.overlap_min_chunk_bytes))
    return max(1, min(chunks, max(gemm.m, gemm.n)))


def _split_gemm(op: Op, chunks: int) -> list[Op]:
    """``op`` (reads: activations, weights; writes: output) as ``chunks`` GEMMs along its larger
    output dimension, so that the operand every piece reads again is the smaller one: along N
    (output columns) each piece reads all the activations and 1/chunks of the weights; along M
    (token rows) each piece reads 1/chunks of the activations and all the weights. Pieces
    differ by at most one row or column; their FLOPs, outputs and split operand add up to the op's.
    """
    along_n = op.n >= op.m
    size = op.n if along_n else op.m
    parts = [size // chunks + (1 if i < size % chunks else 0) for i in range(chunks)]
    x, w, y = op.reads[0], op.reads[1], op.writes[0]
    pieces = []
    for i, part in enumerate(parts):
        f = part / size
        m, n = (op.m, part) if along_n else (part, op.n)
        reads = (x, replace(w, nbytes=w.nbytes * f)) if along_n else (replace(x, nbytes=x.nbytes * f), w)
        rows = -(-part // DEQUANT_ROWS)  # M split: each piece dequantizes per block of its own rows
        dequant = op.dequant_flops * f if along_n or not op.dequant_flops else 2.0 * op.k * op.n * rows
        pieces.append(replace(op, name=f"{op.name}.{i}", flops=op.flops * f, m=m, n=n,
                              reads=reads + op.reads[2:], writes=(replace(y, nbytes=y.nbytes * f), *op.writes[1:]),
                              dequant_flops=dequant))
    return pieces


def _reduce(dag: _Dag, name: str, ex: Execution, elems: float, producer: str) -> None:
    """The all-reduce after a row-parallel GEMM ``producer`` (the op just added).

    Without overlap (or with one piece, ``overlap_chunks``) it follows the GEMM. With chunked
    overlap the GEMM is replaced by its pieces: piece i's all-reduce reduces what piece i
    produced while piece i+1 computes. Edges: GEMM_i -> GEMM_i+1 (one compute stream),
    GEMM_i -> allreduce_i (its input), allreduce_i -> allreduce_i+1 (collectives run in order
    on one communication stream); what follows waits for the last all-reduce, which is the
    exposed part. No op can start before its inputs exist, by construction.
    """
    op = _allreduce(name, ex, elems)
    gemm: Op = dag.graph.nodes[producer]["op"]
    chunks = overlap_chunks(ex, gemm, op.comm_bytes)
    if chunks == 1:
        dag.add(op)
        return
    before = tuple(dag.graph.predecessors(producer))
    dag.graph.remove_node(producer)
    prev_gemm, prev_reduce = None, None
    for i, piece in enumerate(_split_gemm(gemm, chunks)):
        prev_gemm = dag.add(piece, after=before if prev_gemm is None else (prev_gemm,))
        share = _allreduce(f"{name}.{i}", ex, elems * (piece.n * piece.m) / (gemm.n * gemm.m))
        prev_reduce = dag.add(share, after=(prev_gemm,) if prev_reduce is None else (prev_gemm, prev_reduce))
    dag.last = (prev_reduce,)
