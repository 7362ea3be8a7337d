"""The discrete-event path: passes replayed on SimPy resources.

An op starts when all its predecessors in the DAG have finished. It first waits its fixed
delays (kernel overhead, a collective's latency), then submits its compute, HBM and link work
to the chip's processor-sharing servers at once and finishes when all of them have been
served. Concurrent ops therefore share bandwidth and arrays, and overlap comes out of the
simulation. Alone on the chip an op takes exactly its ``OpCost.time_s``, so with nothing to
overlap the two fidelities agree.

Repeated layers: the layer DAG is simulated once; the remaining ``num_layers - 1`` instances
follow back to back (each layer depends on the previous one's output), so the engine advances
the clock by their duration and adds their resource time without replaying their events.
The cost of a simulation grows with the ops of one layer and the number of passes.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import networkx as nx
import simpy

from sim.engine.costing import OpCost
from sim.engine.records import HostCosts, OpRecord, PassSpan, Timeline
from sim.engine.resources import ChipResources
from workloads.graph import PassGraph
from workloads.ops import Op, Unit


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes."""

    def __init__(self) -> None:
        super().__init__()
        self.events_processed = 0

    def step(self) -> None:
        super().step()
        self.events_processed += 1


def simulate_des(passes: Iterable[PassGraph], cost: Callable[[Op], OpCost], host: HostCosts = HostCosts()) -> Timeline:
    """Replay ``passes`` in order on one chip's resources and return the timeline.

    The host first spends its step overhead, then dispatches the pass's kernels while the
    device runs them; when dispatching all of them takes longer than running them, the pass
    ends when the host is done (the device idled waiting for kernels).
    """
    env = CountingEnvironment()
    chip = ChipResources(env)
    timeline = Timeline()
    env.process(_run_passes(env, chip, passes, cost, timeline, host))
    env.run()
    timeline.busy_s = {s.name: s.busy_s for s in chip.servers()}
    timeline.events = env.events_processed
    return timeline


def _run_passes(env, chip, passes, cost, timeline, host: HostCosts) -> Iterator[simpy.Event]:
    for graph in passes:
        start = env.now
        if host.step_s > 0:
            yield env.timeout(host.step_s)
        device_start = env.now
        for segment, dag, repeat in graph.segments():
            yield from run_segment(env, chip, dag, cost, graph, segment, repeat, timeline.records)
        stall = start + host.pass_time(graph.kernels, env.now - device_start) - env.now
        if stall > 0:
            yield env.timeout(stall)
        timeline.passes.append(PassSpan(graph.phase, graph.step, start, env.now, host.step_s + max(stall, 0.0)))


def run_segment(env, chip, dag: nx.DiGraph, cost, graph: PassGraph, segment: str, repeat: int,
                records: list[OpRecord], stage: int = 0, microbatch: int = 0) -> Iterator[simpy.Event]:
    """Run one segment's DAG once on ``chip``, then its remaining ``repeat - 1`` identical
    instances back to back: the clock and the resources' busy time advance by their total."""
    seg_start, before = env.now, chip.snapshot()
    yield from _run_dag(env, chip, dag, cost, graph, segment, repeat, records, stage, microbatch)
    if repeat > 1:
        elapsed = env.now - seg_start
        for server, (busy0, work0) in zip(chip.servers(), before):
            server.add_repeat((server.busy_s - busy0) * (repeat - 1), (server.work_s - work0) * (repeat - 1))
        yield env.timeout(elapsed * (repeat - 1))


def _run_dag(env, chip, dag: nx.DiGraph, cost, graph: PassGraph, segment: str, repeat: int,
             records: list[OpRecord], stage: int = 0, microbatch: int = 0) -> Iterator[simpy.Event]:
    waiting = {node: dag.in_degree(node) for node in dag}
    if not waiting:
        return
    finished = env.event()
    left = [len(waiting)]

    def run_op(node):
        op: Op = dag.nodes[node]["op"]
        c = cost(op)
        start = env.now
        if c.delay_s > 0:
            yield env.timeout(c.delay_s)
        work = []
        if c.compute_s > 0:
            work.append((chip.matrix if op.unit is Unit.matrix else chip.vector).submit(c.compute_s))
        if c.memory_s > 0:
            work.append(chip.hbm.submit(c.memory_s))
        if c.link_transfer_s > 0:
            work.append(chip.link.submit(c.link_transfer_s))
        if len(work) == 1:
            yield work[0]
        elif work:
            yield env.all_of(work)
        records.append(OpRecord(graph.phase, graph.step, segment, op, c, start, env.now, repeat, stage, microbatch))
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
