"""The discrete-event path: passes replayed on SimPy resources.

An op starts when all its predecessors in the DAG have finished. It first waits its fixed
delays (kernel overhead, a collective's latency), then submits its work to the chip's
processor-sharing servers at once (one per declared resource, ``sim.engine.resources``) and
finishes when all of them have been served. Concurrent ops therefore share bandwidth and
arrays, and overlap comes out of the simulation. Alone on the chip an op takes exactly its
``OpCost.time_s``, so with nothing to overlap the two fidelities agree.

Passes, host costs and repeated segments are the shared replay loop's (``sim.engine.replay``).
Repeated layers: the layer DAG is simulated once; the remaining ``num_layers - 1`` instances
follow back to back (each layer depends on the previous one's output), so the engine advances
the clock by their duration and adds their resource time without replaying their events.
The cost of a simulation grows with the ops of one layer and the number of passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from heapq import heappush

import networkx as nx
import simpy
from simpy.core import NORMAL

from sim.engine.analytic import repeat_records
from sim.engine.costing import OpCost
from sim.engine.records import HostCosts, OpRecord, SegmentSpan, Timeline
from sim.engine.replay import SimClock, replay
from sim.engine.resources import RESOURCES, ChipResources, Resource
from workloads.graph import PassGraph
from workloads.ops import Op


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes."""

    def __init__(self) -> None:
        super().__init__()
        self.events_processed = 0

    def step(self) -> None:
        super().step()
        self.events_processed += 1

    def at(self, when: float) -> simpy.Event:
        """An event that fires at time ``when`` exactly (a timeout's ``now + delay`` could differ from it in
        the last bit): for a process that has added up step durations itself, as SimPy would have."""
        if when < self.now:
            raise ValueError(f"time {when} is in the past (now {self.now})")
        event = simpy.Event(self)
        event._ok, event._value = True, None
        heappush(self._queue, (when, NORMAL, next(self._eid), event))
        return event


def simulate_des(passes: Iterable[PassGraph], cost: Callable[[Op], OpCost], host: HostCosts | None = None,
                 resources: tuple[Resource, ...] = RESOURCES) -> Timeline:
    """Replay ``passes`` in order on one chip's resources and return the timeline.

    The host first spends its step overhead, then dispatches the pass's kernels while the
    device runs them; when dispatching all of them takes longer than running them, the pass
    ends when the host is done (the device idled waiting for kernels).
    """
    env = CountingEnvironment()
    chip = ChipResources(env, resources)
    timeline = Timeline(resources=resources)
    runner = DesSegments(env, chip, cost, timeline)
    env.process(replay(SimClock(env), runner, passes, host or HostCosts(), timeline.passes))
    env.run()
    timeline.busy_s = {s.name: s.busy_s for s in chip.servers()}
    timeline.events = env.events_processed
    return timeline


class DesSegments:
    """Runs a segment's DAG on one chip's servers; records ops and the segment's span."""

    def __init__(self, env: simpy.Environment, chip: ChipResources, cost: Callable[[Op], OpCost],
                 timeline: Timeline) -> None:
        self.env, self.chip, self.cost, self.timeline = env, chip, cost, timeline
        self.work = tuple(zip((r.work for r in chip.resources), chip.servers(), strict=True))

    def __call__(self, dag: nx.DiGraph, graph: PassGraph, segment: str, repeat: int, stage: int = 0,
                 microbatch: int = 0) -> Iterator[simpy.Event]:
        """Run the DAG once, then its remaining ``repeat - 1`` identical instances back to back: the
        clock and the resources' busy time advance by their total."""
        env, chip = self.env, self.chip
        block = len(self.timeline.segments)
        span = SegmentSpan(stage, env.now, env.now, env.now, repeat)
        self.timeline.segments.append(span)
        before = chip.snapshot()
        yield from self._run_dag(dag, graph, segment, repeat, stage, microbatch, block)
        span.first_end_s = env.now
        if repeat > 1:
            elapsed = env.now - span.start_s
            for server, (busy0, work0) in zip(chip.servers(), before, strict=True):
                server.add_repeat((server.busy_s - busy0) * (repeat - 1), (server.work_s - work0) * (repeat - 1))
            yield env.timeout(elapsed * (repeat - 1))
        span.end_s = env.now

    def mark(self) -> tuple[int, list[tuple[float, float, int]]]:
        """Where the records and the servers stand (before a pass standing for several steps)."""
        return len(self.timeline.records), [(s.busy_s, s.work_s, s.shared) for s in self.chip.servers()]

    def repeat_since(self, mark: tuple[int, list[tuple[float, float, int]]], steps: int) -> None:
        """The records and the servers' busy time since ``mark`` count ``steps`` times. A server that never
        served two jobs at once was busy exactly its work: that sum, free of the clock's rounding at large
        times (which the count would multiply), is what repeats."""
        repeat_records(self.timeline.records, mark[0], steps)
        for server, (busy0, work0, shared0) in zip(self.chip.servers(), mark[1], strict=True):
            work = server.work_s - work0
            busy = work if server.shared == shared0 else server.busy_s - busy0
            server.add_repeat(busy * steps - (server.busy_s - busy0), work * (steps - 1))

    def _run_dag(self, dag: nx.DiGraph, graph: PassGraph, segment: str, repeat: int, stage: int, microbatch: int,
                 block: int) -> Iterator[simpy.Event]:
        env, records = self.env, self.timeline.records
        waiting = {node: dag.in_degree(node) for node in dag}
        if not waiting:
            return
        finished = env.event()
        left = [len(waiting)]

        def run_op(node):
            op: Op = dag.nodes[node]["op"]
            c = self.cost(op)
            start = env.now
            if c.delay_s > 0:
                yield env.timeout(c.delay_s)
            work = [server.submit(seconds) for need, server in self.work if (seconds := need(op, c)) > 0]
            if len(work) == 1:
                yield work[0]
            elif work:
                yield env.all_of(work)
            records.append(OpRecord(graph.phase, graph.step, segment, op, c, start, env.now, repeat, stage,
                                    microbatch, block, model=graph.model))
            for succ in dag.successors(node):
                waiting[succ] -= 1
                if waiting[succ] == 0:
                    env.process(run_op(succ))
            left[0] -= 1
            if left[0] == 0:
                finished.succeed()

        for node, deps in waiting.items():
            if deps == 0:
                env.process(run_op(node))
        yield finished
