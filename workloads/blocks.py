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

    def add_beside(self, op: Op, producer: str) -> str:
        """Add ``op`` to run alongside ``producer`` (same inputs); what follows waits for both."""
        self.add(op, after=tuple(self.graph.predecessors(producer)))
        self.last = (producer, op.name)
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
