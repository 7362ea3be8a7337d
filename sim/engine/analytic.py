"""The analytic path: each op's roofline cost, summed, ops one after another.

No contention and no overlap: an op's time is its ``OpCost.time_s``. It is the fast path for
very large sweeps, and what the discrete-event path must reproduce when nothing overlaps.
"""

from __future__ import annotations

from typing import Callable, Iterable

import networkx as nx

from sim.engine.costing import OpCost
from sim.engine.records import HostCosts, OpRecord, PassSpan, Timeline
from workloads.graph import PassGraph
from workloads.ops import Op, Unit

_SERVER = {Unit.matrix: "matrix", Unit.vector: "vector", Unit.link: "link"}


def simulate_analytic(passes: Iterable[PassGraph], cost: Callable[[Op], OpCost],
                      host: HostCosts = HostCosts()) -> Timeline:
    timeline = Timeline(busy_s={"matrix": 0.0, "vector": 0.0, "hbm": 0.0, "link": 0.0})
    busy = timeline.busy_s
    now = 0.0
    for graph in passes:
        start = now
        now += host.step_s
        device_start = now
        for segment, dag, repeat in graph.segments():
            seg_start = now
            for node in nx.topological_sort(dag):
                op = dag.nodes[node]["op"]
                c = cost(op)
                timeline.records.append(OpRecord(graph.phase, graph.step, segment, op, c, now, now + c.time_s, repeat))
                now += c.time_s
                busy[_SERVER[op.unit]] += c.compute_s * repeat
                busy["hbm"] += c.memory_s * repeat
                busy["link"] += c.link_transfer_s * repeat
            # Records hold the first instance of a repeated layer; the others follow back to back.
            now = seg_start + (now - seg_start) * repeat
        end = start + host.pass_time(graph.kernels, now - device_start)
        stall = max(0.0, end - now)
        now = max(now, end)
        timeline.passes.append(PassSpan(graph.phase, graph.step, start, now, host.step_s + stall))
    return timeline
