"""Pipeline parallelism on the discrete-event engine.

The layers are split over ``pp`` stages (as evenly as possible; the first stage also embeds,
the last one also runs the LM head and sampling). Each stage is its own group of ``tp`` chips
with its own resources and one stream: it runs one micro-batch at a time, in arrival order.
The batch is split into micro-batches; each one goes through every pass (the prefill, then the
decode steps) stage by stage, sending its activations to the next stage over the links
(send/receive). Decode step ``t + 1`` of a micro-batch starts when its step ``t`` leaves the
last stage (the sampled token feeds the next step), so micro-batches keep the stages busy in
turn; the bubble, stages idle while waiting, is whatever the simulation leaves, not a formula.
"""

from __future__ import annotations

from typing import Callable, Iterator

import simpy

from hwmodels.links import Collective, collective_time
from sim.engine.costing import OpCost
from sim.engine.des import CountingEnvironment, run_segment
from sim.engine.records import PassSpan, Timeline
from sim.engine.resources import ChipResources
from workloads.graph import PassGraph
from workloads.ops import Op


def split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` whole shares differing by at most one, larger first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def simulate_pipeline(passes_for: Callable[[int], list[PassGraph]], batch: int, stages: int, microbatches: int,
                      cost: Callable[[Op], OpCost], chip, token_bytes: float) -> Timeline:
    """Replay every micro-batch's passes through ``stages`` stages.

    Args:
        passes_for: the passes (prefill, then decode steps) of a micro-batch of a given size.
        batch: sequences in the whole batch.
        stages: pipeline stages.
        microbatches: micro-batches the batch is split into.
        cost: op costing (shared by all stages: identical chips).
        chip: the chip spec, for the stage-to-stage transfers.
        token_bytes: bytes of one token's hidden state, sent from stage to stage.
    """
    env = CountingEnvironment()
    chips = [ChipResources(env) for _ in range(stages)]
    streams = [simpy.Resource(env, capacity=1) for _ in range(stages)]
    timeline = Timeline(stage_busy_s=[0.0] * stages)
    for j, size in enumerate(split(batch, microbatches)):
        if size:
            env.process(_microbatch(env, chips, streams, passes_for(size), j, cost, chip, token_bytes, timeline))
    env.run()
    timeline.busy_s = {name: sum(getattr(c, name).busy_s for c in chips) / stages for name in ChipResources.NAMES}
    timeline.events = env.events_processed
    return timeline


def _microbatch(env, chips, streams, graphs: list[PassGraph], j: int, cost, chip, token_bytes: float,
                timeline: Timeline) -> Iterator[simpy.Event]:
    stages = len(chips)
    for graph in graphs:
        start = env.now
        layers = split(graph.num_layers, stages)
        tokens = graph.batch * graph.new_tokens
        for s in range(stages):
            with streams[s].request() as turn:
                yield turn
                held = env.now
                if s == 0:
                    yield from run_segment(env, chips[s], graph.pre, cost, graph, "pre", 1, timeline.records, s, j)
                yield from run_segment(env, chips[s], graph.layer, cost, graph, "layer", layers[s],
                                       timeline.records, s, j)
                if s == stages - 1:
                    yield from run_segment(env, chips[s], graph.post, cost, graph, "post", 1, timeline.records, s, j)
                timeline.stage_busy_s[s] += env.now - held
            if s < stages - 1:  # hidden states to the next stage
                send = collective_time(chip, Collective.sendrecv, tokens * token_bytes, 2)
                yield env.timeout(send.latency_s)
                if send.transfer_s > 0:
                    yield chips[s].link.submit(send.transfer_s)
        timeline.passes.append(PassSpan(graph.phase, graph.step, start, env.now))
