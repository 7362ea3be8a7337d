"""Time by bound: each chip's wall time split into exclusive intervals.

The rule. Each chip (each pipeline stage; with tensor parallelism the representative chip)
is followed from 0 to the run's ``total_s``. At each instant:

* if ops are active on the chip (an op is active from its start to its end, its fixed delays
  included), the instant is shared equally among them, each share labelled with its op's bound
  (``OpCost.bound``: compute, memory, interconnect or overhead). Concurrent ops (MoE branches,
  a GEMM piece's all-reduce beside the next piece, a pipeline stage's send beside its next
  micro-batch) thus split the time they overlap instead of counting it twice;
* if no op is active and the device is waiting on its host (the step overhead before a pass's
  first kernel, a dispatch stall after its last), the instant is ``overhead``;
* otherwise it is ``idle`` (a pipeline stage waiting for work: the bubble).

A repeated segment (``num_layers`` identical layers) is simulated once and its other instances
follow back to back; they are laid out as simulated (instance k shifted by k times the first
instance's span), which amounts to its first instance's split times its repeat count whenever
nothing else on the chip overlaps it (then computed that way). With ``pp > 1`` the split is
computed per stage and the mean over stages reported. A pass that stands for several decode steps
(a closed-form segment, ``sim.batch.closed_form``) counts its first step's split times its steps.
The five parts add up to ``total_s``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import replace

from sim.engine.costing import BOUNDS
from sim.engine.records import OpRecord, Timeline

PARTS = (*BOUNDS, "idle")  # compute, memory, interconnect, overhead, idle
SCALE_OUT = "link:scale_out"  # interconnect time on the scale-out network, apart where asked
_HOST, _COVERED = "_host", "_covered"


def time_by_bound(timeline: Timeline, stages: int = 1) -> dict[str, float]:
    """Seconds of the run's wall time per part of ``PARTS``, the mean over ``stages`` chips."""
    return fold_tiers(time_by_bound_and_tier(timeline, stages))


def fold_tiers(parts: dict[str, float]) -> dict[str, float]:
    """``time_by_bound_and_tier``'s split with the scale-out interconnect counted as interconnect."""
    if SCALE_OUT not in parts:
        return parts
    out = {k: v for k, v in parts.items() if k != SCALE_OUT}
    out["interconnect"] += parts[SCALE_OUT]
    return out


def bound_label(r: OpRecord) -> str:
    """An op's part: its bound, with interconnect time on the scale-out network apart (``SCALE_OUT``)."""
    bound = r.cost.bound.value
    return SCALE_OUT if bound == "interconnect" and r.op.comm_nodes > 1 else bound


def time_by_bound_and_tier(timeline: Timeline, stages: int = 1) -> dict[str, float]:
    """As ``time_by_bound``, and where ops crossed the scale-out network (``Op.comm_nodes > 1``) their
    interconnect time apart as ``link:scale_out`` ("interconnect" is then the scale-up fabric's)."""
    total = timeline.end_s
    by_stage: dict[int, list[OpRecord]] = defaultdict(list)
    for r in timeline.records:
        by_stage[r.stage].append(r)
    out = dict.fromkeys(PARTS, 0.0)
    for stage in range(stages):
        spans = [p for p in timeline.chip_passes if p.stage == stage]
        for part, seconds in _split_chip(timeline, by_stage[stage], spans, stage, total).items():
            if part in out or seconds:
                out[part] = out.get(part, 0.0) + seconds / stages
    return out


def _split_chip(timeline: Timeline, records: list[OpRecord], spans, stage: int, total: float) -> dict[str, float]:
    """The split of one chip's ``[0, total]``. A pass standing for several decode steps (a closed-form
    segment) counts its first step's split times its steps and covers its whole span."""
    multi = {(p.phase, p.step): p for p in spans if p.steps > 1}
    if not multi:
        return _split_window(timeline, records, spans, stage, 0.0, total)
    inside: dict[tuple, list[OpRecord]] = defaultdict(list)
    rest = []
    for r in records:
        (inside[(r.phase, r.step)] if (r.phase, r.step) in multi else rest).append(r)
    parts = _split_window(timeline, rest, [p for p in spans if p.steps == 1], stage, 0.0, total,
                          [(p.start_s, p.end_s, _COVERED) for p in multi.values()])
    for key, p in multi.items():
        first = replace(p, end_s=p.first_end_s, steps=1)
        for part, seconds in _split_window(timeline, inside[key], [first], stage, p.start_s, p.first_end_s).items():
            parts[part] += seconds * p.steps
    return parts


def _split_window(timeline: Timeline, records: list[OpRecord], spans, stage: int, begin: float, end: float,
                  covered: list | None = None) -> dict[str, float]:
    """The split of ``[begin, end]`` over ``records`` and the host spans of ``spans``; ``covered`` windows
    are counted elsewhere."""
    blocks: dict[int, list[OpRecord]] = defaultdict(list)
    for r in records:
        blocks[r.block].append(r)
    alone = _isolated_blocks(timeline, blocks, stage)
    parts = defaultdict(float, dict.fromkeys(PARTS, 0.0))
    items: list[tuple[float, float, str]] = list(covered or ())
    for block, recs in blocks.items():
        seg = timeline.segments[block] if block >= 0 else None
        if seg is not None and block in alone and seg.repeat > 1:
            for part, seconds in _sweep([(r.start_s, r.end_s, bound_label(r)) for r in recs],
                                        seg.start_s, seg.first_end_s).items():
                parts[part] += seconds * seg.repeat
            items.append((seg.start_s, seg.end_s, _COVERED))
            continue
        shifts = range(seg.repeat) if seg is not None else range(1)
        step = seg.first_end_s - seg.start_s if seg is not None else 0.0
        items.extend((r.start_s + k * step, r.end_s + k * step, bound_label(r)) for r in recs for k in shifts)
    for p in spans:
        if p.device_start_s is not None:
            items.append((p.start_s, p.device_start_s, _HOST))
            items.append((p.device_end_s, p.end_s, _HOST))
    for part, seconds in _sweep(items, begin, end).items():
        parts[part] += seconds
    return parts


def _isolated_blocks(timeline: Timeline, blocks: dict, stage: int) -> set[int]:
    """Segments of ``stage`` whose whole span (all instances) no other segment of the stage overlaps."""
    windows = sorted((timeline.segments[b].start_s, timeline.segments[b].end_s, b) for b in blocks if b >= 0)
    alone = set()
    reach = float("-inf")  # latest end among the windows before
    starts = [w[0] for w in windows]
    for i, (start, end, block) in enumerate(windows):
        later = bisect_left(starts, end, lo=i + 1)  # windows starting before this one ends
        if reach <= start and later == i + 1:
            alone.add(block)
        reach = max(reach, end)
    return alone


def _sweep(items: list[tuple[float, float, str]], begin: float, end: float) -> dict[str, float]:
    """Split ``[begin, end]`` by the rule of the module docstring over ``items`` (start, end, label)."""
    edges: list[tuple[float, int, str]] = [(begin, 0, ""), (end, 0, "")]
    for a, b, label in items:
        if b > a:
            edges.append((a, 1, label))
            edges.append((b, -1, label))
    edges.sort(key=lambda e: e[0])
    parts = defaultdict(float, dict.fromkeys(PARTS, 0.0))
    active: dict[str, int] = defaultdict(int)
    ops = 0
    last = begin
    for time, delta, label in edges:
        now = min(max(time, begin), end)
        if now > last:
            _share(parts, active, ops, now - last)
            last = now
        if delta:
            active[label] += delta
            if label not in (_HOST, _COVERED):
                ops += delta
    return parts


def _share(parts: dict[str, float], active: dict[str, int], ops: int, seconds: float) -> None:
    if active[_COVERED] > 0:
        return  # a repeated segment counted on its own
    if ops > 0:
        for label, n in active.items():
            if n > 0 and label not in (_HOST, _COVERED):
                parts[label] += seconds * n / ops
    elif active[_HOST] > 0:
        parts["overhead"] += seconds
    else:
        parts["idle"] += seconds
