"""The one replay loop: passes, their segments with repeat counts, host costs, records, spans.

Every fidelity and every pipeline stage replays a pass the same way:

1. the host spends its step overhead (``HostCosts.step_s``) before the first kernel;
2. the segments run in order (``pre``, ``layer`` x ``num_layers``, ``post``; a pipeline stage runs
   its share), each by the fidelity's segment runner, which records one ``OpRecord`` per op of
   the segment's first instance and one ``SegmentSpan``, and advances the clock past the
   remaining identical instances;
3. when dispatching the pass's kernels takes the host longer than the device needs, the pass
   ends when the host is done (a dispatch stall);
4. a pass standing for ``steps`` decode steps (a closed-form segment's mean step,
   ``sim.batch.closed_form``) is followed by its ``steps - 1`` others back to back: the runner
   scales the records' counts and the resources' busy time since its ``mark()``, and the clock
   advances by their duration without replaying their events;
5. a ``PassSpan`` records the pass, with the host's step overhead and stall.

The fidelities differ only in the segment runner (``sim.engine.analytic``: op costs summed in
topological order; ``sim.engine.des``: ops on processor-sharing servers) and the clock: a plain
number for the analytic path, the SimPy environment for the discrete-event path. The loop is a
generator either way: under SimPy it yields timeouts; on the analytic clock it yields ``None``
and the driver just runs it to the end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

import networkx as nx

from sim.engine.records import HostCosts, PassSpan
from workloads.graph import PassGraph

SegmentRunner = Callable[..., Iterator]  # (dag, graph, segment, repeat, stage, microbatch) -> generator;
# it also has mark() and repeat_since(mark, steps) for passes that stand for several decode steps


class AnalyticClock:
    """A clock that jumps: waiting advances it at once and yields nothing to wait on."""

    def __init__(self) -> None:
        self.now = 0.0

    def wait(self, seconds: float) -> None:
        self.now += seconds

    def until(self, time_s: float) -> None:
        self.now = time_s


class SimClock:
    """The SimPy environment's clock: waiting is a timeout to yield."""

    def __init__(self, env) -> None:
        self.env = env

    @property
    def now(self) -> float:
        return self.env.now

    def wait(self, seconds: float):
        return self.env.timeout(seconds)

    def until(self, time_s: float):
        return self.env.timeout(time_s - self.env.now)


def replay_pass(clock, run_segment: SegmentRunner, graph: PassGraph, segments: Iterable[tuple[str, nx.DiGraph, int]],
                host: HostCosts, spans: list[PassSpan], stage: int = 0, microbatch: int = 0) -> Iterator:
    """Replay one pass (or a pipeline stage's share of it): step overhead, segments, dispatch stall.

    Args:
        clock: ``AnalyticClock`` or ``SimClock``.
        run_segment: the fidelity's segment runner.
        graph: the pass.
        segments: (name, DAG, repeat) to run, in order.
        host: the host's costs in seconds.
        spans: where the ``PassSpan`` goes.
        stage, microbatch: pipeline stage and micro-batch (0 on one chip).
    """
    start = clock.now
    mark = run_segment.mark() if graph.steps > 1 else None
    if host.step_s > 0:
        yield clock.wait(host.step_s)
    device_start = clock.now
    kernels = 0
    for segment, dag, repeat in segments:
        yield from run_segment(dag, graph, segment, repeat, stage, microbatch)
        kernels += dag.number_of_nodes() * repeat
    device_end = clock.now
    end = start + host.pass_time(kernels, device_end - device_start)
    stall = end - device_end
    if stall > 0:
        yield clock.until(end)
    first_end = None
    if mark is not None:  # a closed-form segment: its other steps follow back to back, alike
        first_end = clock.now
        run_segment.repeat_since(mark, graph.steps)
        yield clock.wait((first_end - start) * (graph.steps - 1))
    spans.append(PassSpan(graph.phase, graph.step, start, clock.now, (host.step_s + max(stall, 0.0)) * graph.steps,
                          stage, device_start, device_end, graph.steps, first_end))


def replay(clock, run_segment: SegmentRunner, passes: Iterable[PassGraph], host: HostCosts,
           spans: list[PassSpan]) -> Iterator:
    """Replay ``passes`` in order on one chip."""
    for graph in passes:
        yield from replay_pass(clock, run_segment, graph, graph.segments(), host, spans)


def drain(steps: Iterator) -> None:
    """Run a replay on the analytic clock (its yields are ``None``: nothing to wait on)."""
    deque(steps, maxlen=0)
