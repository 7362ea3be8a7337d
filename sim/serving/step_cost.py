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
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.area import die_area
from hwmodels.energy import ChipEnergy, chip_energy
from sim.config.schema import RunConfig
from sim.engine.analytic import simulate_analytic
from sim.engine.costing import Coster
from sim.engine.op_energy import record_energy
from sim.engine.records import HostCosts
from sim.serving.schedulers import StepShape
from workloads.graph import AttentionKernel, Execution, PassGraph
from workloads.ops import Unit
from workloads.step import build_step_totals


@dataclass(frozen=True, slots=True)
class StepCost:
    """One step on one chip of the tensor-parallel group."""

    time_s: float  # host step overhead included
    dynamic_J: float  # dynamic energy (static power is added over the whole run)
    matrix_flops: float
    flops: float
    hbm_bytes: float


class StepCoster:
    """Costs steps for one run (each distinct signature once, each distinct op once)."""

    def __init__(self, cfg: RunConfig, ex: Execution, block_tokens: int) -> None:
        self.model, self.ex, self.block = cfg.model, ex, block_tokens
        self.coster = Coster(cfg.hardware, in_switch=cfg.runtime.in_switch_reduction)
        self.host = HostCosts.of(cfg.runtime, cfg.system.host)
        self.energy: ChipEnergy = chip_energy(cfg.hardware, die_area(cfg.hardware).total_mm2)
        self._cache: dict[tuple, StepCost] = {}

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
            cost = self._cache[key] = self.cost_graph(self.graph(key))
        return cost

    def graph(self, key: tuple) -> PassGraph:
        """The pass of a signature."""
        chunks, decodes, pairs, cached, scores, samples = key
        b = self.block
        pairs = max(decodes, pairs * b)
        contexts = max(decodes, scores * b) if scores else pairs
        return build_step_totals(self.model, self.ex, chunks, decodes, pairs, max(0, cached * b), samples,
                                 decode_contexts=contexts)

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
        return StepCost(timeline.end_s, dynamic, matrix, flops, hbm)
