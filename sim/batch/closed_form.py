"""Decode in closed form: a run's decode steps as a few segments, each one mean step times its count.

Step ``j`` attends to ``prompt + j`` keys; only its attention ops change from step to step
(``workloads/decode_steps.py``). Inside a piece of contexts where no window fills and no chunk
restarts, each layer kind's attention op is an affine function of the context ``c`` and of the
keys it reads from the paged cache (``cached(c)``, whole blocks), and both never decrease. A run of
steps ``lo .. hi`` is one segment, replayed once as its *mean step* (attention ops of mean FLOPs and
bytes, ``mean_op``) with ``steps = hi - lo + 1``, when that is exact:

1. every attention op that changes is costed affinely in its FLOPs and bytes (``Coster.affine``:
   a vector op, or a fused kernel with a published efficiency), so each resource's seconds at the
   mean op are the mean of its seconds over the steps;
2. each op's slowest resource (its time) and its bound are the same at every step: the resources'
   seconds never decrease with ``c``, so the one slowest at ``lo`` staying ahead of every other at
   ``hi`` is enough; the op's time is then affine too;
3. the pass's time is then the sum of its ops' (a chain), the same affine function at every step,
   and the host's dispatch either always or never outlasts the device (checked at ``lo`` and ``hi``,
   device time never decreasing); a segment DAG that is not a chain (MoE branches, overlapped
   all-reduces) is merged only inside one cache block, where its time is convex in ``c`` and equal
   to the chord at the mean step (checked) only if affine.

Otherwise the run is split (at a cache block's edge near its middle) and each half tried again; a
single step is always exact. The analytic total is the step-by-step sum to rounding (1e-12); the
discrete-event path replays the mean step with its contention, and equals the step-by-step replay
where nothing overlaps the attention. Pipelines (pp > 1) and speculative decoding keep one pass per
step (``sim.batch.run.passes``, which also stays the step-by-step reference).
"""

from __future__ import annotations

import networkx as nx

from sim.engine.analytic import pass_seconds
from sim.engine.costing import Coster, OpCost
from sim.engine.records import HostCosts
from workloads.attention import decode_keys
from workloads.decode_steps import at_context, attention_kinds, mean_op, pieces, step_attention
from workloads.graph import Execution, PassGraph, Phase, build_pass
from workloads.model import ModelConfig

TOLERANCE = 1e-12  # relative: a mean step's time against the chord of its ends (non-chain DAGs)


def decode_segments(model: ModelConfig, ex: Execution, batch: int, prompt: int, steps: int, coster: Coster,
                    host: HostCosts) -> list[PassGraph]:
    """Decode steps ``1 .. steps`` (contexts ``prompt + 1 ..``) as mean steps with their counts, in order."""
    if steps <= 0:
        return []
    template = build_pass(model, ex, Phase.decode, batch, 1, prompt + 1, step=1)
    planner = _Planner(template, model, ex, coster, host, prompt)
    out: list[PassGraph] = []
    for lo, hi in pieces(model, ex, prompt + 1, prompt + steps):
        out.extend(planner.segments(lo, hi))
    return out


class _Planner:
    def __init__(self, template: PassGraph, model: ModelConfig, ex: Execution, coster: Coster, host: HostCosts,
                 prompt: int) -> None:
        self.template, self.model, self.ex, self.coster, self.host, self.prompt = \
            template, model, ex, coster, host, prompt
        self.kinds = attention_kinds(model)
        dags = {"layer": template.layer, **dict(template.extra)}
        self.chains = all(_is_chain(dags[name]) for name in self.kinds)
        self._ops: dict[int, dict] = {}

    def segments(self, lo: int, hi: int) -> list[PassGraph]:
        """Contexts ``lo .. hi`` (inside one piece) as exact segments, in order."""
        if lo < hi and not self._affine(lo, hi):  # costed through tiling, clock or overlap: step by step
            return [self._pass(c) for c in range(lo, hi + 1)]
        merged = self._merged(lo, hi)
        if merged is not None:
            return [merged]
        cut = self._cut(lo, hi)
        return self.segments(lo, cut) + self.segments(cut + 1, hi)

    def _affine(self, lo: int, hi: int) -> bool:
        """Whether every attention op that differs between ``lo`` and ``hi`` is costed affinely."""
        first, last = self._attention(lo), self._attention(hi)
        return all(a == b or (self.coster.affine(a) and self.coster.affine(b))
                   for name in self.kinds for a, b in zip(first[name], last[name], strict=True))

    def _attention(self, context: int) -> dict:
        ops = self._ops.get(context)
        if ops is None:
            ops = self._ops[context] = {name: step_attention(self.model, self.ex, self.template.batch, context, kind)
                                        for name, kind in self.kinds.items()}
        return ops

    def _pass(self, context: int, steps: int = 1, ops: dict | None = None) -> PassGraph:
        return at_context(self.template, self.model, self.ex, context, context - self.prompt, steps,
                          ops or self._attention(context))

    def _cut(self, lo: int, hi: int) -> int:
        """Where to split ``lo .. hi``: the cache block edge nearest its middle (else the middle)."""
        mid = (lo + hi) // 2
        block = self.ex.kv_block_tokens
        if block and hi - lo >= block:
            edge = mid - (mid % block)  # contexts ``edge + 1 ..`` start a block of the full-context kinds
            if lo <= edge < hi:
                return edge
        return mid

    def _merged(self, lo: int, hi: int) -> PassGraph | None:
        """The mean step of ``lo .. hi`` when it is exact (module docstring), else None."""
        if lo == hi:
            return self._pass(lo)
        first, last = self._attention(lo), self._attention(hi)
        for name in self.kinds:
            for a, b in zip(first[name], last[name], strict=True):
                if a != b and not (self.coster.affine(a) and self.coster.affine(b)
                                   and _same_max(self.coster(a), self.coster(b))):
                    return None
        mean = {}
        for name, kind in self.kinds.items():
            weights = self._weights(lo, hi, kind)
            if weights is None:
                return None
            contexts, w = weights
            ops = [self._attention(c)[name] for c in contexts]
            mean[name] = [mean_op([o[i] for o in ops], w) for i in range(len(ops[0]))]
        rep = self._pass(lo, hi - lo + 1, mean)
        return rep if self._pass_affine(lo, hi, rep) else None

    def _pass_affine(self, lo: int, hi: int, rep: PassGraph) -> bool:
        a, b = self._pass(lo), self._pass(hi)
        if self.chains:  # device time affine; the dispatch branch must not change
            device = [pass_seconds(g, self.coster, HostCosts(step_s=0.0)) for g in (a, b)]
            dispatch = rep.kernels * self.host.dispatch_s
            return device[0] >= dispatch or device[1] <= dispatch
        if any(self._cached(lo, k) != self._cached(hi, k) for k in self.kinds.values()):
            return False  # across cache blocks a non-chain pass's time need not be convex
        ga, gb, gm = (pass_seconds(g, self.coster, self.host) for g in (a, b, rep))
        return abs(gm - (ga + gb) / 2) <= TOLERANCE * max(abs(ga), abs(gb))

    def _cached(self, context: int, kind) -> int:
        return decode_keys(self.model, self.ex, context, kind)[1]

    def _weights(self, lo: int, hi: int, kind) -> tuple[list[int], list[float]] | None:
        """Contexts and weights whose combination is the mean (context, cached keys) of ``lo .. hi``."""
        n = hi - lo + 1
        target = ((lo + hi) / 2, sum(self._cached(c, kind) for c in range(lo, hi + 1)) / n)
        pa, pb = (lo, self._cached(lo, kind)), (hi, self._cached(hi, kind))
        for third in (lo + 1, hi - 1, (lo + hi) // 2):
            p3 = (third, self._cached(third, kind))
            det = (pb[0] - pa[0]) * (p3[1] - pa[1]) - (pb[1] - pa[1]) * (p3[0] - pa[0])
            if det:
                dx, dy = target[0] - pa[0], target[1] - pa[1]
                u = (dx * (p3[1] - pa[1]) - dy * (p3[0] - pa[0])) / det
                v = ((pb[0] - pa[0]) * dy - (pb[1] - pa[1]) * dx) / det
                return [lo, hi, third], [1.0 - u - v, u, v]
        t = (target[0] - pa[0]) / (pb[0] - pa[0])
        if abs(pa[1] + t * (pb[1] - pa[1]) - target[1]) > TOLERANCE * max(1.0, abs(target[1])):
            return None  # the points are not on one line after all
        return [lo, hi], [1.0 - t, t]


def _same_max(a: OpCost, b: OpCost) -> bool:
    """The slowest resource (time) and the bound at ``a`` (the first step) stay ahead at ``b`` (the last):
    with every resource's seconds non-decreasing from ``a`` to ``b``, they are the same at every step."""
    times = {"compute": (a.compute_s, b.compute_s), "memory": (a.memory_s, b.memory_s),
             "link": (a.link_transfer_s, b.link_transfer_s)}
    top = max(times, key=lambda k: times[k][0])
    if any(times[top][0] < times[k][1] for k in times if k != top):
        return False
    needs = {"compute": (a.compute_s, b.compute_s), "memory": (a.memory_s, b.memory_s),
             "interconnect": (a.link_s, b.link_s), "overhead": (a.overhead_s, b.overhead_s)}
    order = list(needs)
    bound = a.bound.value
    return all(needs[bound][0] > needs[k][1] if order.index(k) < order.index(bound) else needs[bound][0] >= needs[k][1]
               for k in needs if k != bound)


def _is_chain(dag: nx.DiGraph) -> bool:
    return nx.is_directed_acyclic_graph(dag) and all(d <= 1 for _, d in dag.in_degree()) \
        and all(d <= 1 for _, d in dag.out_degree()) and nx.is_weakly_connected(dag)

