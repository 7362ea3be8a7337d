"""Pipeline parallelism on the discrete-event engine.

The layers are split over ``pp`` stages (as evenly as possible; the first stage also embeds,
the last one also runs the LM head and sampling). Each stage is its own group of ``tp`` chips
with its own resources, its own host and one stream: it runs one micro-batch at a time, in
arrival order, through the shared replay loop (``sim.engine.replay``: step overhead, its
segments, dispatch stall). The batch is split into micro-batches; each one goes through every
pass (the prefill, then the decode steps) stage by stage. After its share of a pass a stage
sends the micro-batch's hidden states to the next stage: a ``send`` op (``OpKind.send``, costed
by ``Coster`` like any op: kernel overhead, link latency, then the bytes on the stage's links),
recorded on the sending stage; between stages in different scale-up domains it crosses the
scale-out network (``send_nodes``). The send leaves the stream free (it runs beside the stage's next
micro-batch, as asynchronous point-to-point sends do). Decode step ``t + 1`` of a micro-batch
starts when its step ``t`` leaves the last stage (the sampled token feeds the next step), so
micro-batches keep the stages busy in turn; the bubble, stages idle while waiting, is whatever
the simulation leaves, not a formula.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import networkx as nx
import simpy

from sim.engine.costing import OpCost, send_op
from sim.engine.des import CountingEnvironment, DesSegments
from sim.engine.records import HostCosts, PassSpan, Timeline
from sim.engine.replay import SimClock, replay_pass
from sim.engine.resources import RESOURCES, ChipResources, Resource
from workloads.graph import PassGraph
from workloads.ops import Op


def split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` whole shares differing by at most one, larger first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def stage_segments(graph: PassGraph, stage: int, stages: int) -> list[tuple[str, nx.DiGraph, int]]:
    """The segments stage ``stage`` of ``stages`` runs of ``graph``: its share of the layers, plus the
    embedding on the first stage and the LM head on the last."""
    shares = split(graph.num_layers, stages)
    layers = graph.layer_segments(sum(shares[:stage]), shares[stage])
    return ([("pre", graph.pre, 1)] if stage == 0 else []) + layers + \
        ([("post", graph.post, 1)] if stage == stages - 1 else [])


def simulate_pipeline(passes_for: Callable[[int], list[PassGraph]], batch: int, stages: int, microbatches: int,
                      cost: Callable[[Op], OpCost], token_bytes: float, host: HostCosts | None = None,
                      resources: tuple[Resource, ...] = RESOURCES, send_nodes: tuple[int, ...] = ()) -> Timeline:
    """Replay every micro-batch's passes through ``stages`` stages.

    Args:
        passes_for: the passes (prefill, then decode steps) of a micro-batch of a given size.
        batch: sequences in the whole batch.
        stages: pipeline stages.
        microbatches: micro-batches the batch is split into.
        cost: op costing (shared by all stages: identical chips).
        token_bytes: bytes of one token's hidden state, sent from stage to stage.
        host: each stage's host costs in seconds.
        resources: the chip's declared resources.
        send_nodes: per stage boundary, 1 when the next stage shares the scale-up domain, 2 when its
            send crosses the scale-out network (sim/config/placement.py); empty: all 1.
    """
    env = CountingEnvironment()
    chips = [ChipResources(env, resources) for _ in range(stages)]
    timeline = Timeline(stage_busy_s=[0.0] * stages, resources=resources)
    pipe = _Pipeline(env, [DesSegments(env, c, cost, timeline) for c in chips], timeline, host or HostCosts(),
                     token_bytes, send_nodes or (1,) * (stages - 1))
    for j, size in enumerate(split(batch, microbatches)):
        if size:
            env.process(pipe.microbatch(passes_for(size), j))
    env.run()
    timeline.busy_s = {r.name: sum(c.server(r.name).busy_s for c in chips) / stages for r in resources}
    timeline.events = env.events_processed
    return timeline


class _Pipeline:
    def __init__(self, env, runners: list[DesSegments], timeline: Timeline, host: HostCosts,
                 token_bytes: float, send_nodes: tuple[int, ...]) -> None:
        self.env, self.runners, self.timeline, self.host, self.token_bytes = env, runners, timeline, host, token_bytes
        self.send_nodes = send_nodes
        self.clock = SimClock(env)
        self.streams = [simpy.Resource(env, capacity=1) for _ in runners]

    def microbatch(self, graphs: list[PassGraph], j: int) -> Iterator[simpy.Event]:
        env, tl, stages = self.env, self.timeline, len(self.runners)
        for graph in graphs:
            start, host_s = env.now, 0.0
            nbytes = graph.batch * graph.new_tokens * self.token_bytes
            sends = {nodes: nx.DiGraph() for nodes in set(self.send_nodes)}
            for nodes, send in sends.items():
                send.add_node("send", op=send_op(nbytes, nodes))
            for s, runner in enumerate(self.runners):
                with self.streams[s].request() as turn:
                    yield turn
                    held = env.now
                    yield from replay_pass(self.clock, runner, graph, stage_segments(graph, s, stages), self.host,
                                           tl.stage_passes, s, j)
                    host_s += tl.stage_passes[-1].host_s
                    tl.stage_busy_s[s] += env.now - held
                if s < stages - 1:  # hidden states to the next stage
                    yield from runner(sends[self.send_nodes[s]], graph, "send", 1, s, j)
            tl.passes.append(PassSpan(graph.phase, graph.step, start, env.now, host_s / stages))
