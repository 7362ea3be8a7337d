"""One run: check the config, build the passes, simulate them at the chosen fidelity."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from sim.analytic import simulate_analytic
from sim.config import Fidelity, RunConfig, RunError, check_run
from sim.costing import Coster
from sim.engine import simulate_des
from sim.records import HostCosts, Timeline
from workloads.footprint import activation_bytes, kv_bytes_per_chip, weight_bytes_per_chip
from workloads.graph import PassGraph, Phase, build_pass

GB = 1e9


@dataclass(frozen=True)
class MemoryUse:
    """HBM bytes per chip."""

    weights: float
    kv_cache: float
    activations: float
    capacity: float

    @property
    def used(self) -> float:
        return self.weights + self.kv_cache + self.activations


@dataclass
class RunResult:
    cfg: RunConfig
    timeline: Timeline
    memory: MemoryUse
    distinct_ops: int  # ops costed (each distinct op once)
    sim_wall_s: float  # wall-clock seconds spent simulating

    @property
    def chips(self) -> int:
        return self.cfg.parallel.tp


def passes(cfg: RunConfig) -> Iterator[PassGraph]:
    """The prefill pass, then one decode step per generated token after the first.

    The prefill computes the prompt and yields the first token; decode step j (1-based)
    feeds token j back in and attends to ``prompt + j`` keys.
    """
    ex, w, model = cfg.execution(), cfg.workload, cfg.model
    yield build_pass(model, ex, Phase.prefill, w.batch, w.prompt_tokens, w.prompt_tokens)
    for j in range(1, w.decode_tokens):
        yield build_pass(model, ex, Phase.decode, w.batch, 1, w.prompt_tokens + j, step=j)


def memory_use(cfg: RunConfig, prefill: PassGraph) -> MemoryUse:
    ex, w = cfg.execution(), cfg.workload
    return MemoryUse(
        weights=weight_bytes_per_chip(cfg.model, ex),
        kv_cache=kv_bytes_per_chip(cfg.model, ex, w.batch * (w.prompt_tokens + w.decode_tokens)),
        activations=activation_bytes(prefill),
        capacity=cfg.hardware.hbm_capacity_bytes,
    )


def check_fits(cfg: RunConfig, mem: MemoryUse) -> None:
    if mem.used <= mem.capacity:
        return
    raise RunError(
        f"{cfg.model.name} does not fit: it needs {mem.used / GB:.1f} GB per chip (weights {mem.weights / GB:.1f} + "
        f"KV cache {mem.kv_cache / GB:.1f} + activations {mem.activations / GB:.1f}) but {cfg.hardware.name} has "
        f"{mem.capacity / GB:.1f} GB; raise parallel.tp, lower precision.weights or precision.kv_cache, "
        "or shrink workload.batch or the sequence lengths"
    )


def simulate(cfg: RunConfig) -> RunResult:
    """Check ``cfg``, then simulate its prefill and decode passes."""
    check_run(cfg)
    started = time.perf_counter()
    all_passes = passes(cfg)
    prefill = next(all_passes)
    mem = memory_use(cfg, prefill)
    check_fits(cfg, mem)
    coster = Coster(cfg.hardware)
    run = simulate_des if cfg.fidelity is Fidelity.des else simulate_analytic
    timeline = run(_chain(prefill, all_passes), coster, host_costs(cfg))
    return RunResult(cfg, timeline, mem, coster.distinct_ops, time.perf_counter() - started)


def host_costs(cfg: RunConfig) -> HostCosts:
    return HostCosts(cfg.runtime.host_dispatch_us * 1e-6, cfg.runtime.step_overhead_us * 1e-6)


def _chain(first: PassGraph, rest: Iterator[PassGraph]) -> Iterator[PassGraph]:
    yield first
    yield from rest
