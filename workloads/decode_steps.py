"""Decode steps without rebuilding their graphs: a step differs from the next only in its attention.

Decode step ``j`` attends to ``prompt + j`` keys; every other op of the step (projections, norms,
MLP, LM head) is the same at every step. So a run's decode steps are one template pass (built
once) with the attention ops of each step's context put in (``at_context``), and a run of steps
whose attention ops are affine in the step's keys is one *mean* step: ``mean_op`` combines ops
field by field (FLOPs, bytes) with weights that sum to one, so an op whose cost is affine in its
FLOPs and bytes costs, at the mean op, the mean of its costs over the steps.

``pieces`` cuts the steps where an attention layer's keys stop being non-decreasing (a chunk of
chunked-local attention restarts) or stop growing (a sliding window fills up); inside a piece each
layer kind's keys and cached keys (``attention.decode_keys``) never decrease.
"""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from workloads.attention import Phase, pass_attention
from workloads.graph import Execution, PassGraph, segment_names
from workloads.model import LayerKind, ModelConfig
from workloads.ops import Op, Tensor


def attention_kinds(model: ModelConfig) -> dict[str, LayerKind]:
    """Segment name -> layer kind, for the kinds that attend (Mamba layers have no keys)."""
    return {name: kind for kind, name in segment_names(model.layer_kinds()).items() if not kind.ssm}


def at_context(template: PassGraph, model: ModelConfig, ex: Execution, context: int, step: int,
               steps: int = 1, ops: dict[str, list[Op]] | None = None) -> PassGraph:
    """``template`` (a decode pass) with the attention ops of ``context`` (or ``ops``: segment name ->
    that segment's attention ops), numbered ``step``, standing for ``steps`` steps."""
    kinds = attention_kinds(model)
    if ops is None:
        ops = {name: step_attention(model, ex, template.batch, context, kind) for name, kind in kinds.items()}
    dags = {"layer": template.layer, **dict(template.extra)}
    for name, new in ops.items():
        dag = dags[name] = nx.DiGraph(dags[name])  # a copy: the template stays as built
        for op in new:
            dag.nodes[op.name]["op"] = op
    extra = tuple((name, dags[name]) for name, _ in template.extra)
    return replace(template, step=step, context=context, layer=dags["layer"], extra=extra, steps=steps)


def step_attention(model: ModelConfig, ex: Execution, batch: int, context: int, kind: LayerKind) -> list[Op]:
    """The attention ops of one decode step at ``context`` in a layer of ``kind``."""
    return pass_attention(model, ex, Phase.decode, batch, 1, context, kind)


def pieces(model: ModelConfig, ex: Execution, first: int, last: int) -> list[tuple[int, int]]:
    """Contexts ``first .. last`` cut into (first, last) pieces inside which every attention kind's keys
    are non-decreasing: cuts where a chunk restarts and after a window fills (its keys then stay)."""
    cuts = {first}
    for kind in attention_kinds(model).values():
        if kind.chunk:
            cuts.update(range(first + (1 - first) % kind.chunk, last + 1, kind.chunk))
        if kind.window and first < kind.window + 1 <= last:
            cuts.add(kind.window + 1)
    starts = sorted(c for c in cuts if first <= c <= last)
    return [(a, b - 1) for a, b in zip(starts, [*starts[1:], last + 1], strict=True)]


def mean_op(ops: list[Op], weights: list[float]) -> Op:
    """The op whose FLOPs, bytes and shape are ``sum(w * field)`` of ``ops`` (same kind and tensors;
    the weights sum to one; integer shapes are rounded, only the FLOPs and bytes are costed)."""
    first = ops[0]

    def mix(get) -> float:
        return sum(w * get(op) for op, w in zip(ops, weights, strict=True))

    def tensors(which: str) -> tuple[Tensor, ...]:
        return tuple(Tensor(t.name, mix(lambda op, i=i, which=which: getattr(op, which)[i].nbytes), t.role)
                     for i, t in enumerate(getattr(first, which)))

    return replace(first, flops=mix(lambda op: op.flops), reads=tensors("reads"), writes=tensors("writes"),
                   n=round(mix(lambda op: op.n)), comm_bytes=mix(lambda op: op.comm_bytes),
                   dequant_flops=mix(lambda op: op.dequant_flops))
