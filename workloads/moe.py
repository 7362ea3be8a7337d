"""Mixture of experts in a layer: router, the experts that received tokens (a grouped GEMM),
expert-parallel all-to-all dispatch and combine, and the shared expert."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from workloads.blocks import DEQUANT_ROWS, _act, _Dag, _dense, _mlp, _reduce, _weight
from workloads.model import Activation, ModelConfig
from workloads.ops import Op, OpKind, Role, Tensor, Unit, matmul, vector

if TYPE_CHECKING:
    from workloads.graph import Execution


def _alltoall(name: str, ex: Execution, nbytes: float) -> Op:
    return Op(name, OpKind.alltoall, Unit.link, 0.0, (Tensor("in", nbytes, Role.activation),),
              (Tensor("out", nbytes, Role.activation),), ex.activations, comm_bytes=nbytes, comm_chips=ex.ep,
              comm_nodes=ex.ep_nodes)


def _moe(dag: _Dag, model: ModelConfig, ex: Execution, tokens: int) -> tuple[str, ...]:
    """Mixture of experts on one chip: router, the experts that received tokens, shared expert.

    With ``ep == 1`` every chip holds every expert, split by width over tp; with ``ep > 1`` (a
    multiple of tp) each chip holds ``num_experts / ep`` whole experts. ``tokens`` are those of this
    chip's tensor-parallel group; the EP group holds ``g = ep / tp`` such groups (``attention_groups``),
    so ``T = g * tokens`` tokens in all. Each chip takes ``T / ep`` of them, sends them to their
    experts' chips (all-to-all dispatch, on the network tier the group spans: ``ep_nodes``) and gets
    the results back (combine). Of the chip's E_local experts, ``E_local * (1 - (1 - k/E) ** T)``
    receive at least one token (each token picks k of E); only their weights are read. The busiest
    expert gets ``moe_imbalance`` times the mean load (at most the ``T`` tokens) and sets the grouped GEMM's time.
    """
    d, t, ep, g = model.hidden_size, ex.tp, ex.ep, ex.attention_groups
    experts, k = model.num_experts, model.experts_per_token
    dag.add(matmul("router", OpKind.router, tokens, experts, d, ex.activations,
                   [_act("h", tokens * d, ex), _dense("w_router", d * experts, ex)],
                   [_act("scores", tokens * experts, ex)]))
    split = 1 if ep > 1 else t  # expert width divisor on this chip
    up, f = model.mlp_in_size // split, model.ffn_size // split
    local = (experts + ex.moe_redundant_experts) // ep  # expert slots on this chip, copies included
    hit = max(1, math.ceil(local * (1 - (1 - k / experts) ** (tokens * g))))
    pairs = tokens * g * k / ep  # token-expert pairs this chip computes
    # the busiest expert's rows; a token picks an expert once, so no expert gets more than the T tokens there are
    rows = min(tokens * g, max(1, math.ceil(pairs / hit * replicated_imbalance(ex))))
    copies = dispatch_copies(model, ep)
    if ep > 1:
        dag.add(_alltoall("moe_dispatch", ex, -(-(tokens * g) // ep) * copies * d * ex.activations.bytes))
    dag.add(_experts("expert_up", OpKind.expert_up, rows, up, d, hit, ex))
    per_elem = 8 if model.activation is Activation.gelu else 5
    dag.add(vector("expert_activation", OpKind.activation, per_elem * rows * hit * f,
                   [_act("u", rows * hit * up, ex)], [_act("a", rows * hit * f, ex)]))
    last = dag.add(_experts("expert_down", OpKind.expert_down, rows, d, f, hit, ex))
    if ep > 1:
        last = dag.add(_alltoall("moe_combine", ex, -(-(tokens * g) // ep) * copies * d * ex.activations.bytes))
    if model.shared_ffn_size:
        width = (2 if model.gated_mlp else 1) * model.shared_ffn_size
        last = _mlp(dag, "shared", width // t, model.shared_ffn_size // t, model, ex, tokens, False)
    if t > 1:  # sums the experts' (or shards') outputs and replicates them over the group
        _reduce(dag, "mlp_allreduce", ex, tokens * d, last)
    return dag.last


def replicated_imbalance(ex: Execution) -> float:
    """The busiest expert's load over the mean once hot experts have copies (EPLB, DeepSeek-V3 Sec. 3.4).

    ESTIMATE: a copy takes half of a hot expert's tokens, and a balancer places one copy per chip
    on the chips that are the busiest; with ``r`` copies over ``ep`` chips, the excess over the mean,
    ``moe_imbalance - 1``, shrinks by ``r / ep`` (all of it once every chip holds a copy). Real
    balancers leave some imbalance (LMSYS 2025, "Deploying DeepSeek with PD disaggregation and
    large-scale expert parallelism": "even with EPLB, some imbalance is inevitable"), so this is
    the best case a given number of copies allows.
    """
    if not ex.moe_redundant_experts or ex.ep == 1:
        return ex.moe_imbalance
    share = min(1.0, ex.moe_redundant_experts / ex.ep)
    return 1.0 + (ex.moe_imbalance - 1.0) * (1.0 - share)


def dispatch_copies(model: ModelConfig, ep: int) -> int:
    """Copies of a token's hidden state the all-to-all dispatch sends (and combine returns).

    One per routed expert (``experts_per_token``), unless routing is group-limited (DeepSeek-V3
    n_group / topk_group, arXiv 2412.19437 Sec. 2.1.2: a token's experts lie in at most
    ``expert_groups_per_token`` groups, so that it goes to at most that many nodes, and is sent once
    per destination): then at most ``expert_groups_per_token`` x the chips a group spans, and never
    more than the ``ep`` chips there are.
    """
    k = model.experts_per_token
    if not model.expert_groups:
        return k
    return min(k, ep, model.expert_groups_per_token * -(-ep // model.expert_groups))


def _experts(name: str, kind: OpKind, rows: int, n: int, k: int, groups: int, ex: Execution) -> Op:
    """A grouped GEMM: ``groups`` experts, each ``(rows x k) @ (k x n)``, each reading its weights."""
    op = matmul(name, kind, rows, n, k, ex.activations,
                [_act("x", groups * rows * k, ex), _weight(f"w_{name}", groups * k * n, ex)],
                [_act("y", groups * rows * n, ex)], groups=groups)
    if ex.weight_only:
        op = replace(op, dequant_flops=2.0 * k * n * groups * -(-rows // DEQUANT_ROWS))
    return op
