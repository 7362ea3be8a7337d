"""The analytic path: each op's roofline cost, ops one after another on two streams.

No contention: an op's time is its ``OpCost.time_s``. It is the fast path for very large
sweeps, and what the discrete-event path must reproduce when nothing overlaps. Passes, host
costs and repeated segments are the shared replay loop's (``sim.engine.replay``); this module
only runs a segment's DAG: its ops in topological order, each starting when its DAG
predecessors have finished and its stream is free. There are two streams, as on a GPU with a
communication stream: link ops (collectives, sends) and everything else. A pass built without
overlap is a chain (each op depends on the one before), so its ops simply follow one another
and the times are the sum; with chunked overlap (``parallel.overlap_comm``) a piece's
all-reduce runs beside the next piece's GEMM, each at its full speed (the discrete-event
path has them share HBM bandwidth).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import networkx as nx

from sim.engine.costing import OpCost
from sim.engine.records import HostCosts, OpRecord, SegmentSpan, Timeline
from sim.engine.replay import AnalyticClock, drain, replay
from sim.engine.resources import RESOURCES, Resource
from workloads.graph import PassGraph
from workloads.ops import Op, Unit


class AnalyticSegments:
    """Runs a segment's DAG on the analytic clock, recording ops and resource time."""

    def __init__(self, clock: AnalyticClock, cost: Callable[[Op], OpCost], timeline: Timeline,
                 resources: tuple[Resource, ...]) -> None:
        self.clock, self.cost, self.timeline, self.resources = clock, cost, timeline, resources

    def __call__(self, dag: nx.DiGraph, graph: PassGraph, segment: str, repeat: int, stage: int = 0,
                 microbatch: int = 0) -> Iterator[None]:
        tl, busy = self.timeline, self.timeline.busy_s
        block = len(tl.segments)
        seg_start = first_end = self.clock.now
        free = {False: seg_start, True: seg_start}  # when each stream (compute, link) is free
        end: dict[str, float] = {}
        for node in nx.topological_sort(dag):
            op = dag.nodes[node]["op"]
            c = self.cost(op)
            link = op.unit is Unit.link
            start = max(free[link], max((end[p] for p in dag.predecessors(node)), default=seg_start))
            end[node] = free[link] = start + c.time_s
            first_end = max(first_end, end[node])
            tl.records.append(OpRecord(graph.phase, graph.step, segment, op, c, start, end[node], repeat, stage,
                                       microbatch, block, model=graph.model))
            for res in self.resources:
                busy[res.name] += res.work(op, c) * repeat
        # Records hold the first instance of a repeated layer; the others follow back to back.
        now = first_end
        self.clock.until(seg_start + (now - seg_start) * repeat)
        tl.segments.append(SegmentSpan(stage, seg_start, first_end, self.clock.now, repeat))
        yield from ()

    def mark(self) -> tuple[int, dict[str, float]]:
        """Where the records and busy time stand (before a pass standing for several steps)."""
        return len(self.timeline.records), dict(self.timeline.busy_s)

    def repeat_since(self, mark: tuple[int, dict[str, float]], steps: int) -> None:
        """The records and busy time since ``mark`` count ``steps`` times (identical steps back to back)."""
        repeat_records(self.timeline.records, mark[0], steps)
        busy = self.timeline.busy_s
        for name, before in mark[1].items():
            busy[name] = before + (busy[name] - before) * steps


def repeat_records(records: list[OpRecord], first: int, steps: int) -> None:
    """Records ``first`` onwards stand for ``steps`` steps: their counts are multiplied."""
    for r in records[first:]:
        r.count *= steps
        r.steps = steps


def simulate_analytic(passes: Iterable[PassGraph], cost: Callable[[Op], OpCost], host: HostCosts | None = None,
                      resources: tuple[Resource, ...] = RESOURCES) -> Timeline:
    """Replay ``passes`` in order, each op alone for its ``OpCost.time_s``; return the timeline."""
    timeline = Timeline(busy_s=dict.fromkeys((r.name for r in resources), 0.0), resources=resources)
    clock = AnalyticClock()
    drain(replay(clock, AnalyticSegments(clock, cost, timeline, resources), passes, host or HostCosts(),
                 timeline.passes))
    return timeline


def dag_seconds(dag: nx.DiGraph, cost: Callable[[Op], OpCost]) -> float:
    """Span of one instance of a segment's DAG on the analytic path (the scheduling of ``AnalyticSegments``)."""
    free = {False: 0.0, True: 0.0}
    end: dict[str, float] = {}
    for node in nx.topological_sort(dag):
        op = dag.nodes[node]["op"]
        link = op.unit is Unit.link
        start = max(free[link], max((end[p] for p in dag.predecessors(node)), default=0.0))
        end[node] = free[link] = start + cost(op).time_s
    return max(end.values(), default=0.0)


def pass_seconds(graph: PassGraph, cost: Callable[[Op], OpCost], host: HostCosts) -> float:
    """One step of ``graph`` on the analytic path: step overhead, then the device or the dispatching host."""
    device = sum(dag_seconds(dag, cost) * repeat for _, dag, repeat in graph.segments())
    return host.pass_time(graph.kernels, device)
