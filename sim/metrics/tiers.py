"""Where a multi-chip run's time goes: by network tier, and by part of the model.

* ``time_by_tier_s``: the interconnect share of ``time_by_bound_s`` split by the network its ops
  used: ``scale_up`` (the chip's fabric, NVLink) and ``scale_out`` (the NICs between scale-up
  domains; sim/engine/bounds.py ``link:scale_out``). They add up to the interconnect part.
* ``time_by_part_s``: op time (each op's duration times its count, as the per-operator tables) by
  part of the model: attention (projections, the kernel, MLA's extra GEMMs), experts (router,
  the routed experts' GEMMs and activation), dense MLP (shared experts included), SSM mixers,
  all-to-all (EP dispatch and combine), all-reduce (tensor-parallel reductions), pipeline sends,
  and other (norms, embeddings, LM head, sampling). Concurrent ops each count their own time.

Both appear in a summary only where they say something: a mixture-of-experts model, or a run
whose collectives crossed the scale-out network. Mean over pipeline stages, per chip.
"""

from __future__ import annotations

from sim.engine.bounds import SCALE_OUT
from sim.engine.records import Timeline
from workloads.ops import OpKind

PART_OF_KIND = {
    **dict.fromkeys((OpKind.qkv_proj, OpKind.rope, OpKind.attention, OpKind.attn_score, OpKind.softmax,
                     OpKind.attn_context, OpKind.out_proj, OpKind.mla_absorb, OpKind.kv_expand), "attention"),
    **dict.fromkeys((OpKind.router, OpKind.expert_up, OpKind.expert_down), "experts"),
    **dict.fromkeys((OpKind.mlp_up, OpKind.mlp_down, OpKind.activation), "dense_mlp"),
    **dict.fromkeys((OpKind.ssm_proj, OpKind.ssm_conv, OpKind.ssm_scan), "ssm"),
    OpKind.alltoall: "all_to_all",
    OpKind.allreduce: "all_reduce",
    OpKind.allgather: "all_reduce",
    OpKind.send: "pipeline_send",
}
PARTS = ("attention", "experts", "dense_mlp", "ssm", "all_to_all", "all_reduce", "pipeline_send", "other")


def time_by_part(timeline: Timeline, stages: int = 1) -> dict[str, float]:
    """Op seconds per chip by part of the model (``PARTS``)."""
    out = dict.fromkeys(PARTS, 0.0)
    for r in timeline.records:
        part = "experts" if r.op.name == "expert_activation" else PART_OF_KIND.get(r.op.kind, "other")
        out[part] += r.total_s / stages
    return out


def time_by_tier(parts: dict[str, float]) -> dict[str, float]:
    """The interconnect part of ``time_by_bound_and_tier`` by network tier."""
    return {"scale_up": parts["interconnect"], "scale_out": parts.get(SCALE_OUT, 0.0)}


def network_figures(timeline: Timeline, stages: int, parts: dict[str, float], moe: bool) -> dict:
    """``time_by_tier_s`` and ``time_by_part_s`` where the run has experts or scale-out traffic, else {}."""
    if not moe and SCALE_OUT not in parts:
        return {}
    return {"time_by_tier_s": time_by_tier(parts), "time_by_part_s": time_by_part(timeline, stages)}
