"""The analytic replay (sim/engine/replay.py with analytic.AnalyticSegments) over many design points.

The points of a batch share their passes (same model, workload and execution) and differ in the
chip; each op's cost is a column of ``VectorCosts``. Where every segment's DAG is a chain (no
chunked overlap, no MoE branches), an op starts when the one before it ends, so a segment's end
times are a running sum; the replay adds them in the scalar loop's order (host step overhead,
segments with their repeats, dispatch stall), so times agree to the last bit or nearly. What the
summary needs is gathered on the way: pass spans, time by bound and by op kind, busy time and
work per resource, dynamic energy by part and phase, the peak op power. A graph with concurrent
ops raises ``Unsupported`` (the scalar path runs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from sim.engine.records import HostCosts
from sim.engine.vector_cost import Unsupported, VectorCosts
from workloads.graph import PassGraph, Phase
from workloads.ops import Op, Unit


@dataclass
class OpTable:
    """The distinct ops of a batch's passes (the columns), and how often the passes run each."""

    ops: list[Op]
    column: dict[Op, int]
    count: np.ndarray  # instances per column over the run
    count_by_phase: dict[Phase, np.ndarray]
    kinds: list[str]  # op kinds, in first-seen order
    kind_of: np.ndarray  # per column: index into kinds


def op_table(passes: list[PassGraph]) -> OpTable:
    """Collect the distinct ops of ``passes``; raise Unsupported when a segment's DAG is not a chain."""
    column: dict[Op, int] = {}
    ops: list[Op] = []
    counts: dict[Phase, list[int]] = {Phase.prefill: [], Phase.decode: []}
    for graph in passes:
        for _, dag, repeat in graph.segments():
            if not _is_chain(dag):
                raise Unsupported("a pass runs ops concurrently (chunked overlap or MoE branches)")
            for node in dag.nodes:
                op = dag.nodes[node]["op"]
                if op not in column:
                    column[op] = len(ops)
                    ops.append(op)
                    for lst in counts.values():
                        lst.append(0)
                counts[graph.phase][column[op]] += repeat
    by_phase = {p: np.array(c, dtype=float) for p, c in counts.items()}
    kinds = list(dict.fromkeys(op.kind.value for op in ops))
    return OpTable(ops, column, by_phase[Phase.prefill] + by_phase[Phase.decode], by_phase, kinds,
                   np.array([kinds.index(op.kind.value) for op in ops], dtype=np.int64))


def _is_chain(dag: nx.DiGraph) -> bool:
    n = dag.number_of_nodes()
    return n == 0 or (dag.number_of_edges() == n - 1 and all(d <= 1 for _, d in dag.in_degree())
                      and all(d <= 1 for _, d in dag.out_degree()))


@dataclass
class VectorTimeline:
    """Per point: the figures of a replayed ``Timeline`` the summary reads."""

    end_s: np.ndarray
    ttft_s: np.ndarray
    host_s: np.ndarray
    phase_s: dict[Phase, np.ndarray]
    bound_s: np.ndarray  # (4, points): compute, memory, interconnect, overhead (op time; host added in summary)
    host_overhead_s: np.ndarray  # device waiting on the host (step overhead, stalls): overhead in time by bound
    kind_s: np.ndarray  # (points, kinds): seconds by op kind
    peak_J_per_s: np.ndarray  # highest op dynamic power (dynamic J over duration)
    passes: int = 0
    extra: dict = field(default_factory=dict)


def replay_points(passes: list[PassGraph], table: OpTable, costs: VectorCosts, host: HostCosts,
                  dynamic_J: np.ndarray) -> VectorTimeline:
    """Replay ``passes`` on every point; ``dynamic_J`` (points, ops): one instance's dynamic energy."""
    time, bound = costs.time_s, costs.bound
    size = time.shape[0]
    now = np.zeros(size)
    ttft, host_s, waited = np.zeros(size), np.zeros(size), np.zeros(size)
    phase_s = {Phase.prefill: np.zeros(size), Phase.decode: np.zeros(size)}
    bound_s, kind_s = np.zeros((4, size)), np.zeros((size, len(table.kinds)))
    peak, weighted, busy, lowest = np.zeros(size), np.zeros(size), np.zeros(size), np.ones(size)
    is_matrix = np.array([op.unit is Unit.matrix for op in table.ops])
    onehot = np.eye(len(table.kinds))[table.kind_of]  # (ops, kinds)
    for graph in passes:
        start = now
        if host.step_s > 0:
            now = now + host.step_s
        device_start, kernels = now, 0
        for _, dag, repeat in graph.segments():
            cols = [table.column[dag.nodes[node]["op"]] for node in nx.topological_sort(dag)]
            kernels += len(cols) * repeat
            if not cols:
                continue
            ends = np.cumsum(np.concatenate([now[:, None], time[:, cols]], axis=1), axis=1)
            durations = ends[:, 1:] - ends[:, :-1]
            first_end = np.maximum(now, ends[:, -1])
            now = now + (first_end - now) * repeat
            for b in range(4):
                bound_s[b] += (durations * (bound[:, cols] == b)).sum(axis=1) * repeat
            kind_s += (durations @ onehot[cols]) * repeat
            with np.errstate(divide="ignore", invalid="ignore"):
                power = np.where(durations > 0, dynamic_J[:, cols] / durations, 0.0)
            peak = np.maximum(peak, power.max(axis=1))
            ran = (durations > 0) & is_matrix[cols]  # economics.sustained_clock: matrix kernels' time
            ratio = costs.clock_ratio[:, cols]
            weighted += (ratio * (durations * repeat) * ran).sum(axis=1)
            busy += ((durations * repeat) * ran).sum(axis=1)
            lowest = np.minimum(lowest, np.where(ran, ratio, 1.0).min(axis=1))
        device_end = now
        end = start + (host.step_s + np.maximum(device_end - device_start, kernels * host.dispatch_s))
        stall = end - device_end
        now = np.where(stall > 0, end, now)
        host_s += host.step_s + np.maximum(stall, 0.0)
        waited += (device_start - start) + np.maximum(now - device_end, 0.0)
        phase_s[graph.phase] += now - start
        if graph.phase is Phase.prefill:
            ttft = np.maximum(ttft, now)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(busy > 0, weighted / busy, 1.0)
    return VectorTimeline(now, ttft, host_s, phase_s, bound_s, waited, kind_s, peak, len(passes),
                          {"clock_mean": mean, "clock_lowest": lowest})


def resource_work(table: OpTable, costs: VectorCosts) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per built-in resource: (busy seconds, amount of work) per point, over every instance of every op."""
    matrix = np.array([op.unit is Unit.matrix for op in table.ops])
    flops = np.array([op.flops for op in table.ops], dtype=float)
    n = table.count
    busy_matrix = (costs.compute_s * matrix) @ n
    busy_vector = (costs.compute_s * ~matrix) @ n
    size = costs.compute_s.shape[0]
    return {"matrix": (busy_matrix, np.full(size, float((flops * matrix) @ n))),
            "vector": (busy_vector, np.full(size, float((flops * ~matrix) @ n))),
            "hbm": (costs.memory_s @ n, costs.hbm_bytes @ n),
            "link": (costs.link_transfer_s @ n, costs.link_bytes @ n)}
