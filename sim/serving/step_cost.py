"""What one scheduler step costs: time and energy, from the same cost model as a single-batch run.

A step's shape (prefill chunks, decodes and their summed keys) becomes one pass
(``workloads.step.build_step_totals``) and is costed on the analytic path
(``sim.engine.analytic.simulate_analytic``: the sum of its ops' ``Coster`` costs, repeated layers
counted ``num_layers`` times, plus the runtime's host costs), so a serving step and a
single-batch pass of the same work take the same time. Energy is ``sim.engine.op_energy.record_energy``
over the same op records.

Steps are cached by a coarse signature: the prefill chunks, the number of decodes, their summed
keys rounded to whole KV blocks, and the sequences sampled. The serving simulation's events
are arrivals, steps and completions, never ops.

A new signature whose step has the tokens, samples and attention kernels of one costed before
(a *frame*: every op but the attention is then the same) is not built again: only its attention
is costed (a fused decode kernel from its closed form, sim/serving/decode_prices.py; a prefill's
kept by its chunks), and the analytic replay's arithmetic (each op starting at the later of its
stream and its predecessors, repeated layers back to back, the host's costs; energy, FLOPs and
bytes summed record by record) runs over the frame's op costs in the same order: the same numbers,
bit for bit, as building and replaying the pass (tests hold them to it). A frame is assembled from
its segments, each stored on its own: the pre segment by token count, a layer by token count and
attention op names, the post segment by samples after its first op (the final norm over the tokens,
made per step). The segments' ops and topological orders (``SegmentShapes``) depend on the model
and execution only, so the step costers of one layout share them; their costs are each coster's
own. A GEMM's tiling is found once per row-tile count (``hwmodels.compute.tile_matmul``).
"""

from __future__ import annotations

from typing import NamedTuple

import networkx as nx

from hwmodels.area import die_area
from hwmodels.energy import ChipEnergy, chip_energy
from sim.config.placement import network
from sim.config.schema import RunConfig
from sim.engine.analytic import simulate_analytic
from sim.engine.costing import Coster
from sim.engine.op_energy import op_energy, record_energy
from sim.engine.records import HostCosts
from sim.serving.decode_prices import DecodeForm, decode_form, replay_frame, supported
from sim.serving.schedulers import StepShape
from workloads.graph import AttentionKernel, Execution, PassGraph, final_norm
from workloads.ops import Unit
from workloads.step import build_step_totals, step_attention, step_segment

_MISSING = object()  # not looked for yet
KEY = 1 << 32  # a decode-only signature's pairs and cached blocks as one int: pairs * KEY + cached

# One op of a frame: (predecessor positions, link stream?, attention slot or -1, time s, dynamic J, FLOPs,
# matrix?, HBM bytes)
Node = tuple[tuple[int, ...], bool, int, float, float, float, bool, float]


class StepCost(NamedTuple):
    """One step on one chip of the tensor-parallel group (a named tuple: a trace replay makes hundreds of
    thousands, and a tuple is built in a third of a frozen dataclass's time)."""

    time_s: float  # host step overhead included
    dynamic_J: float  # dynamic energy (static power is added over the whole run)
    matrix_flops: float
    flops: float
    hbm_bytes: float
    spans: tuple[float, ...] = ()  # one instance of each segment (pre, one layer, post), seconds


class SegmentShapes:
    """The ops of a step's segments in topological order, each with its predecessors' positions: what a frame
    needs of the pass apart from the chip's costs. They depend only on the model, the execution and the
    segment's key, so the step costers of one model and execution share them (a serving search simulates
    hundreds of chips, each with its own ``StepCoster``, on the same few layouts)."""

    _shared: dict[str, SegmentShapes] = {}  # repr of (model, execution) -> its shapes; the last few used kept
    KEEP = 4

    def __init__(self, model, ex: Execution, kind) -> None:
        self.model, self.ex, self.kind = model, ex, kind
        self.layers: dict[tuple, list] = {}  # (tokens, attention op names) -> a layer's ops
        self.pres: dict[int, list] = {}  # tokens -> the pre segment's ops
        self.heads: dict[int, list | None] = {}  # samples -> the post's ops after its final norm (None: not led by it)
        self._orders: dict[tuple, list] = {}  # a DAG's (nodes, edges) -> its nodes in topological order, with preds

    @classmethod
    def of(cls, model, ex: Execution, kind) -> SegmentShapes:
        key = repr((model, ex))  # every field of both (a model is mutable, so not hashed itself)
        found = cls._shared.pop(key, None) or cls(model, ex, kind)
        cls._shared[key] = found  # the most recently used last
        while len(cls._shared) > cls.KEEP:
            cls._shared.pop(next(iter(cls._shared)))
        return found

    def layer(self, tokens: int, attention: list) -> list:
        """A layer's ops over ``tokens`` tokens with attention ops named as ``attention``'s (those of the first
        step that needed it: a frame costs its steps' own attention ops in their slots)."""
        key = (tokens, tuple(op.name for op in attention))
        ops = self.layers.get(key)
        if ops is None:
            ops = self.layers[key] = self._ops(step_segment(self.model, self.ex, "layer", tokens, kind=self.kind,
                                                            attention=attention))
        return ops

    def pre(self, tokens: int) -> list:
        ops = self.pres.get(tokens)
        if ops is None:
            ops = self.pres[tokens] = self._ops(step_segment(self.model, self.ex, "pre", tokens))
        return ops

    def head(self, samples: int) -> list | None:
        """The post's ops after its first, the final norm (built whole once, over one token)."""
        if samples not in self.heads:
            ops = self._ops(step_segment(self.model, self.ex, "post", 1, samples))
            self.heads[samples] = ops[1:] if ops[0][0] == "final_norm" and not ops[0][2] else None
        return self.heads[samples]

    def _ops(self, dag: nx.DiGraph) -> list[tuple[str, object, tuple[int, ...]]]:
        """The DAG's (name, op, predecessors' positions) in topological order (the order found once per shape)."""
        shape = (tuple(dag), tuple(dag.edges))
        order = self._orders.get(shape)
        if order is None:
            nodes = list(nx.topological_sort(dag))
            where = {node: i for i, node in enumerate(nodes)}
            order = self._orders[shape] = [(node, tuple(where[p] for p in dag.predecessors(node))) for node in nodes]
        ops = dag.nodes
        return [(node, ops[node]["op"], preds) for node, preds in order]


class StepCoster:
    """Costs steps for one run (each distinct signature once, each distinct op once)."""

    def __init__(self, cfg: RunConfig, ex: Execution, block_tokens: int) -> None:
        self.model, self.ex, self.block = cfg.model, ex, block_tokens
        kinds = cfg.model.layer_kinds()
        self.one_kind, self.kind = len(set(kinds)) == 1, kinds[0]  # the layers' kind, found once
        self.coster = Coster(cfg.hardware, in_switch=cfg.runtime.in_switch_reduction, network=network(cfg),
                             cap=cfg.power.cap)
        self.host = HostCosts.of(cfg.runtime, cfg.system.host)
        self.energy: ChipEnergy = chip_energy(cfg.hardware, die_area(cfg.hardware).total_mm2)
        self._cache: dict[tuple, StepCost] = {}
        self._frames: dict[tuple, list[tuple[int, list[Node]]]] = {}  # (tokens, samples, attention names) ->
        # segments as (repeat, nodes in topological order), assembled from the stores of each segment:
        self._pres: dict[int, list[Node]] = {}  # tokens -> the pre segment
        self._layers: dict[tuple, list[Node]] = {}  # (tokens, attention names) -> a layer
        self._heads: dict[int, list[Node]] = {}  # samples -> the post segment after its final norm (by tokens)
        self.shapes = SegmentShapes.of(cfg.model, ex, self.kind) if self.one_kind and not self.kind.ssm else None
        self._op_nodes: dict = {}  # op -> its node's costs (time s, dynamic J, FLOPs, matrix?, HBM bytes)
        self._unfused = ex.attention is AttentionKernel.unfused
        self._forms: dict[int, DecodeForm | None] = {}  # decodes -> their attention op's closed form (None: none)
        self._parts: dict[tuple, tuple | None] = {}  # prefill chunks -> (attention names, prefill figures) with decodes
        self._closed = supported(self)  # decode attention from its closed form (sim/serving/decode_prices.py)
        self._decodes: dict[int, dict[int, StepCost]] = {}  # decodes -> pairs * KEY + cached (in blocks) -> a cached
        # decode-only signature's price: the inner loop's lookup (sim/serving/decode_runs.py), by ints, not tuples
        self.closed_ops = 0  # decode attention ops priced from their closed form (not built, so not the Coster's)

    @property
    def distinct_steps(self) -> int:
        return len(self._cache)

    def signature(self, shape: StepShape) -> tuple:
        """The cache key: decode keys rounded to whole blocks (a block's worth of keys moves a step's
        time by well under 0.1 %)."""
        b = self.block
        scores = round(shape.decode_contexts / b) if self.ex.attention is AttentionKernel.unfused else 0
        return (shape.chunks, shape.decodes, round(shape.decode_pairs / b), round(shape.decode_cached / b), scores,
                shape.samples)

    def __call__(self, shape: StepShape) -> StepCost:
        key = self.signature(shape)
        cost = self._cache.get(key)
        if cost is None:
            cost = self._cache[key] = self.cost_key(key)
        return cost

    def decode_step(self, decodes: int, pairs: int, cached: int, pending: dict[tuple, StepCost] | None = None
                    ) -> StepCost:
        """``self(StepShape((), decodes, pairs, cached, pairs, decodes))`` without building the shape (the
        inner loop of sim/serving/decode_runs.py). ``pending``: where a new signature goes instead of the cache,
        for a run that may be cut short (``commit`` takes those of the steps it ran)."""
        b = self.block
        p, c = round(pairs / b), round(cached / b)
        key = ((), decodes, p, c, p if self._unfused else 0, decodes)
        cost = self._cache.get(key)
        if cost is None:
            if pending is not None:
                cost = pending.get(key)
                if cost is None:
                    cost = pending[key] = self.cost_key(key)
                return cost
            cost = self._cache[key] = self.cost_key(key)
        self._decodes.setdefault(decodes, {})[p * KEY + c] = cost
        return cost

    def decode_index(self) -> tuple[dict[int, dict[int, StepCost]], int]:
        """The cached decode-only signatures by decodes, then by ``pairs * KEY + cached`` (in blocks), and the block
        keys are rounded to: what ``decode_step`` finds, for a caller that looks up itself first (a signature
        cached by ``__call__`` shows here once ``decode_step`` has been asked for it)."""
        return self._decodes, self.block

    def commit(self, pending: dict[tuple, StepCost], ran: list[StepCost]) -> None:
        """Cache the pending signatures of the steps that ran (``ran``: their costs), as a step-by-step run
        would have: ``distinct_steps`` counts the signatures of steps run."""
        ids = {id(c) for c in ran}
        for key, cost in pending.items():
            if id(cost) in ids:
                self._cache.setdefault(key, cost)

    def _args(self, key: tuple) -> tuple:
        """``build_step_totals``'s arguments after the model and execution, from a signature."""
        chunks, decodes, pairs, cached, scores, samples = key
        b = self.block
        pairs = max(decodes, pairs * b)
        contexts = max(decodes, scores * b) if scores else pairs
        return chunks, decodes, pairs, max(0, cached * b), samples, contexts

    def graph(self, key: tuple, attention: list | None = None) -> PassGraph:
        """The pass of a signature (``attention``: its attention ops in a layer of ``self.kind``, already built)."""
        chunks, decodes, pairs, cached, samples, contexts = self._args(key)
        given = None if attention is None else (self.kind, attention)
        return build_step_totals(self.model, self.ex, chunks, decodes, pairs, cached, samples,
                                 decode_contexts=contexts, attention=given)

    def cost_key(self, key: tuple) -> StepCost:
        """The cost of a signature: its frame's replay with its own attention ops (the frame assembled from stored
        segments, building only those not seen yet), or, with several layer kinds or Mamba layers (whose
        work depends on more than the token count), by building and replaying the pass."""
        chunks, decodes, pairs, cached, samples, contexts = self._args(key)
        if not self.one_kind or self.kind.ssm:
            return self.cost_graph(self.graph(key))
        tokens = sum(new for new, _ in chunks) + decodes
        if self._closed and decodes and contexts == pairs:  # the attention's figures without building its ops
            parts = self._attention_parts(chunks, decodes, pairs, cached)
            frame = self._frames.get((tokens, max(1, samples), parts[0])) if parts is not None else None
            if frame is not None:
                return self._replay(frame, parts[1])
        attention = step_attention(self.model, self.ex, chunks, decodes, pairs, cached, contexts, self.kind)
        frame_key = (tokens, max(1, samples), tuple(op.name for op in attention))
        frame = self._frames.get(frame_key)
        if frame is None:
            frame = self._assemble(tokens, max(1, samples), attention)
            if frame is None:  # an attention op not found by name in its layer (or a post not led by its final norm)
                return self.cost_graph(self.graph(key, attention))
            self._frames[frame_key] = frame
        return self._replay(frame, [self._node((), op)[3:] for op in attention])

    def _attention_parts(self, chunks: tuple, decodes: int, pairs: int, cached: int) -> tuple | None:
        """The names of a step's attention ops and their figures (time s, dynamic J, FLOPs, matrix?, HBM bytes), the
        prefill's stored by chunks, the decodes' from their closed form; None where not covered (or throttled)."""
        part = self._parts.get(chunks, _MISSING)
        if part is _MISSING:  # the step's ops built once, the prefill's costed (the decodes' last: one op, if formed)
            ops = step_attention(self.model, self.ex, chunks, decodes, pairs, cached, None, self.kind)
            part = self._parts[chunks] = (tuple(op.name for op in ops), [self._node((), op)[3:] for op in ops[:-1]]) \
                if not chunks or len(ops) > 1 else None
        form = self.decode_form(decodes, pairs, cached) if part is not None else None
        figures = form(pairs, cached) if form is not None else None
        if figures is None:
            return None
        self.closed_ops += 1
        time_s, energy, flops, hbm = figures
        return part[0], [*part[1], (time_s, energy, flops, True, hbm)]

    def decode_form(self, decodes: int, pairs: int, cached: int) -> DecodeForm | None:
        """The closed form of the attention of ``decodes`` decodes (made once, from their op), or None."""
        form = self._forms.get(decodes, _MISSING)
        if form is _MISSING:
            ops = step_attention(self.model, self.ex, (), decodes, pairs, cached, None, self.kind)
            form = self._forms[decodes] = decode_form(self, ops[0], pairs, cached, self._node((), ops[0])[3:]) \
                if len(ops) == 1 else None
        return form

    def _assemble(self, tokens: int, samples: int, attention: list) -> list[tuple[int, list[Node]]] | None:
        """The frame of a step of ``tokens`` tokens, ``samples`` sampled, with these attention ops: its pre, layer
        and post segments, each from its own store (the pre depends on the tokens, the layer on them and the
        attention ops' names, the post on the samples after its first op, the final norm over the tokens),
        costed if new (their ops from ``self.shapes``, shared by the step costers of this model and execution)."""
        names = tuple(op.name for op in attention)
        layer = self._layers.get((tokens, names))
        if layer is None:
            layer = self._cost_ops(self.shapes.layer(tokens, attention), {name: i for i, name in enumerate(names)})
            if len({node[2] for node in layer if node[2] >= 0}) != len(attention):
                return None
            self._layers[(tokens, names)] = layer
        pre = self._pres.get(tokens)
        if pre is None:
            pre = self._pres[tokens] = self._cost_ops(self.shapes.pre(tokens))
        head = self._heads.get(samples)
        if head is None:
            ops = self.shapes.head(samples)
            if ops is None:
                return None
            head = self._heads[samples] = self._cost_ops(ops)
        return [(1, pre), (self.model.num_layers, layer), (1, [self._node((), final_norm(self.model, self.ex, tokens)),
                                                              *head])]

    def _node(self, preds: tuple[int, ...], op, slot: int = -1) -> Node:
        costs = self._op_nodes.get(op)
        if costs is None:
            c = self.coster(op)
            energy = op_energy(op, c, self.energy).total_J
            costs = self._op_nodes[op] = (c.time_s, energy, op.flops, op.unit is Unit.matrix, c.hbm_bytes)
        return (preds, op.unit is Unit.link, slot, *costs)

    def _cost_ops(self, ops: list[tuple[str, object, tuple[int, ...]]], slots: dict[str, int] | None = None
                  ) -> list[Node]:
        """A segment's nodes from its ops in topological order (name, op, predecessors' positions). An op named in
        ``slots`` is that attention slot, left uncosted: a replay takes its figures from the step's own attention
        ops (the layer's may be another run's)."""
        slots = slots or {}
        return [(preds, op.unit is Unit.link, slots[name], 0.0, 0.0, 0.0, True, 0.0) if name in slots
                else self._node(preds, op) for name, op, preds in ops]

    def _replay(self, frame: list[tuple[int, list[Node]]], attention: list[tuple]) -> StepCost:
        """``cost_graph``'s numbers from a frame and its attention slots' figures (time s, dynamic J, FLOPs, matrix?,
        HBM bytes): the analytic replay's arithmetic in its order."""
        end_s, dynamic, matrix, flops, hbm, *spans = replay_frame(self.host, frame, attention)
        return StepCost(end_s, dynamic, matrix, flops, hbm, tuple(spans))

    def cost_graph(self, graph: PassGraph) -> StepCost:
        """Time and energy of a pass on the analytic path."""
        timeline = simulate_analytic([graph], self.coster, self.host)
        dynamic = matrix = flops = hbm = 0.0
        for r in timeline.records:
            dynamic += record_energy(r, self.energy).total_J * r.count
            flops += r.op.flops * r.count
            if r.op.unit is Unit.matrix:
                matrix += r.op.flops * r.count
            hbm += r.cost.hbm_bytes * r.count
        spans = tuple(sp.first_end_s - sp.start_s for sp in timeline.segments)
        return StepCost(timeline.end_s, dynamic, matrix, flops, hbm, spans)


class SpeculativeCoster:
    """Steps of speculative decoding: the target's pass (decodes verified as ``k + 1``-token chunks), the
    draft model's prefill of the step's prompt chunks, and ``k`` decode passes of the draft model over
    the drafting sequences, one after another on the same chips; each costed by its own ``StepCoster``
    (sampling the draft's logits is part of its passes)."""

    def __init__(self, target: StepCoster, draft: StepCoster, k: int) -> None:
        self.target, self.draft, self.k = target, draft, k
        self.coster, self.energy = target.coster, target.energy  # what KV moves and the summary use

    @property
    def distinct_steps(self) -> int:
        return self.target.distinct_steps + self.draft.distinct_steps

    def __call__(self, shape: StepShape) -> StepCost:
        parts = [self.target(shape)]
        n, ctx = shape.drafts, shape.draft_contexts
        prompts = shape.chunks[:len(shape.chunks) - n]  # the verify chunks come last
        if prompts:  # the draft model prefills the prompts too, for its own KV cache
            parts.append(self.draft(StepShape(prompts, 0, 0, 0, 0, 0)))
        for j in range(self.k if n else 0):
            parts.append(self.draft(StepShape((), n, ctx + j * n, ctx + j * n, ctx + j * n, n)))
        return StepCost(*(sum(getattr(c, f) for c in parts) for f in ("time_s", "dynamic_J", "matrix_flops", "flops",
                                                                        "hbm_bytes")))
