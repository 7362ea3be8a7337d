"""One serving run: check the config, size the KV cache, make the requests, run the server."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from sim.config.draft import draft_model
from sim.config.schema import Admission, Preemption, RunConfig, RunError, SchedulerKind, check_run
from sim.engine.pipeline import split
from sim.serving.kv_cache import GB, CacheSize, KvCache, cache_size
from sim.serving.registry import SCHEDULERS
from sim.serving.request import Request
from sim.serving.step_cost import SpeculativeCoster, StepCoster
from sim.serving.traffic import Traffic, make_traffic
from workloads.footprint import activation_bytes, kv_bytes_per_chip, weight_bytes_per_chip
from workloads.step import build_step


@dataclass
class ServingResult:
    """A finished serving run: its requests, its steps and what they cost (per chip unless named)."""

    cfg: RunConfig
    traffic: Traffic
    requests: list[Request]
    steps: dict[str, np.ndarray]  # the step table (sim/serving/step_log.py)
    cache: CacheSize  # per instance
    instances: int  # tensor-parallel groups serving (disaggregated: prefill plus decode)
    preemptions: int
    swapped_bytes: float  # over the host link, both ways
    moved_bytes: float  # KV caches moved between instances (disaggregated)
    moves: int
    move_s: float  # summed over the moves
    busy_s: float
    dynamic_J: float
    matrix_flops: float
    hbm_bytes: float
    queue_area: float  # request-seconds spent waiting for a first admission
    system_area: float  # request-seconds spent between arrival and completion
    end_s: float  # the last completion
    events: int
    busy_by: dict[str, float]  # step time of each instance, seconds
    prefix_cache: dict[str, int]  # lookups, hits, saved prompt tokens, evictions, over every instance
    distinct_steps: int
    distinct_ops: int
    sim_wall_s: float

    @property
    def chips(self) -> int:
        """Chips of every instance together."""
        return self.cfg.parallel.tp * self.instances


def simulate_serving(cfg: RunConfig, coster: StepCoster | SpeculativeCoster | None = None) -> ServingResult:
    """Check ``cfg`` (workload.kind=serving) and simulate the server until every request completes.

    ``coster`` may be one from an earlier run of the same chip, model, formats and runtime (only
    the traffic or the scheduler differ; ``make_coster``): its cached step costs are reused.

    Raises:
        RunError: a config that cannot be served (the message says what to change).
    """
    started = time.perf_counter()
    traffic, size = plan_memory(cfg)
    chip, block, entry = cfg.hardware, cfg.attention.kv_block_tokens, SCHEDULERS[cfg.scheduler.kind]
    draft = draft_model(cfg)

    def new_cache() -> KvCache:
        return KvCache(size.blocks, block, size.bytes_per_block, chip.host_link_Bps)

    coster = coster if coster is not None else make_coster(cfg)
    server = entry.make_server(cfg, traffic, new_cache, coster)
    if draft:
        streams = np.random.SeedSequence(cfg.seed).spawn(5 + len(server.instances))[5:]  # 0-2 traffic, 3 router
        for inst, stream in zip(server.instances, streams, strict=True):
            inst.scheduler.speculate(cfg.speculative.k, cfg.speculative.acceptance, np.random.default_rng(stream))
    with fewer_collections():
        server.run()
    schedulers = [i.scheduler for i in server.instances]
    mover = server.handoff
    return ServingResult(
        cfg, traffic, server.requests, dict(server.steps), size, len(server.instances),
        sum(s.preemptions for s in schedulers), sum(s.kv.swapped_bytes for s in schedulers),
        getattr(mover, "moved_bytes", 0.0), getattr(mover, "moves", 0), getattr(mover, "move_s", 0.0),
        server.busy_s, server.dynamic_J, server.matrix_flops, server.hbm_bytes, server.queue_area,
        server.system_area, server.env.now, server.events, dict(server.busy_by),
        {key: sum(getattr(s.kv, key) for s in schedulers) for key in ("lookups", "hits", "saved_tokens", "evictions")},
        coster.distinct_steps,
        coster.coster.distinct_ops + getattr(coster, "closed_ops", 0),  # decode attention priced in closed form too
        time.perf_counter() - started,
    )


YOUNG_OBJECTS = 20_000  # allocations between two collections of the youngest generation while a server runs
_RUNNING: list = []  # one entry per server running now, on any thread
_SAVED: list = []  # the thresholds before the first of them
_RUNNING_LOCK = threading.Lock()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The cyclic garbage collector's youngest generation collected every ``YOUNG_OBJECTS`` allocations instead of
    Python's 700 while a server runs: a run allocates millions of short-lived tuples and floats, nearly none in
    cycles, and each collection walks every young object (about a tenth of a serving search's time at 700). The
    older generations keep their thresholds; the previous ones are restored after."""
    with _RUNNING_LOCK:  # runs on several threads (the explorer): the first sets, the last restores
        if not _RUNNING:
            _SAVED[:] = gc.get_threshold()
            gc.set_threshold(max(_SAVED[0], YOUNG_OBJECTS), *_SAVED[1:])
        _RUNNING.append(None)
    try:
        yield
    finally:
        with _RUNNING_LOCK:
            _RUNNING.pop()
            if not _RUNNING:
                gc.set_threshold(*_SAVED)


def plan_memory(cfg: RunConfig) -> tuple[Traffic, CacheSize]:
    """Check ``cfg`` for serving, draw its requests and size its KV cache, without simulating (a search
    prunes with it the layouts that do not fit before probing them).

    Raises:
        RunError: a config that cannot be served, or whose cache cannot hold its longest request.
    """
    check_serving(cfg)
    model, ex, sched, chip = cfg.model, cfg.execution(), cfg.scheduler, cfg.hardware
    block = cfg.attention.kv_block_tokens  # the paged cache's block, as the attention reads it
    traffic = make_traffic(cfg.workload, cfg.seed, model.max_context)
    longest = int(np.max(traffic.prompt_tokens + traffic.output_tokens))
    step_tokens = sched.token_budget
    entry = SCHEDULERS[sched.kind]
    if entry.whole_prompts:  # a longer prompt (or recompute) runs alone
        step_tokens = max(step_tokens, longest)
    draft = draft_model(cfg)
    if draft:  # every running decode joins a step, past the budget; a speculative step verifies k more for each
        step_tokens += cfg.speculative.k * sched.max_batch
    workspace = activation_bytes(build_step(model, ex, [(step_tokens, step_tokens)], []))
    # a hybrid's Mamba state: one fixed slot per sequence a step may hold, set aside up front (as vLLM does)
    workspace += model.ssm_state_bytes_per_seq(ex.kv_cache.bytes) * sched.max_batch / ex.tp
    models = [model] + ([draft] if draft else [])  # a draft model's weights and KV cache sit beside the target's
    pp = cfg.parallel.pp
    share = max(split(model.num_layers, pp)) / model.num_layers  # a pipeline stage's chips hold its layers
    size = cache_size(chip.hbm_capacity_bytes, sum(weight_bytes_per_chip(m, ex) for m in models) * share, workspace,
                      sum(kv_bytes_per_chip(m, ex, block) for m in models) * share, sched.kv_cache_GB,
                      f"{model.name}{f' with draft {draft.name}' if draft else ''} on {chip.name}")
    if pp > 1:  # the stage's cache is shared out among its pp virtual engines
        size = replace(size, blocks=size.blocks // pp, kv=size.blocks // pp * size.bytes_per_block)
    ahead = cfg.speculative.k if draft else 0  # a speculative decode writes its k drafts' KV beside its own token's
    check_requests_fit(traffic, KvCache(size.blocks, block, size.bytes_per_block, chip.host_link_Bps), size, ahead)
    return traffic, size


def make_coster(cfg: RunConfig) -> StepCoster | SpeculativeCoster:
    """The step coster of ``cfg``'s runs (with a draft model: the target's and the draft's); runs that
    differ only in their traffic or scheduler may share one, and its cache."""
    ex, block = cfg.execution(), cfg.attention.kv_block_tokens
    coster = StepCoster(cfg, ex, block)
    draft = draft_model(cfg)
    if draft is None:
        return coster
    return SpeculativeCoster(coster, StepCoster(replace(cfg, model=draft), ex, block), cfg.speculative.k)


def check_serving(cfg: RunConfig) -> None:
    """What serving adds to the cross-part checks of a single-batch run, then those."""
    if cfg.speculative.draft_model and cfg.scheduler.kind not in (SchedulerKind.continuous,
                                                                  SchedulerKind.chunked_prefill):
        raise RunError(f"speculative.draft_model is simulated with scheduler=continuous or chunked_prefill (got "
                       f"{cfg.scheduler.kind.value}); set it to null or change the scheduler")
    par = cfg.parallel
    if par.cp > 1 or cfg.memory.kv_offload.value != "none":
        raise RunError("parallel.cp and memory.kv_offload are simulated for single-batch runs (workload=single_batch); "
                       "a serving run swaps preempted KV blocks to the host itself: set parallel.cp=1 and "
                       "memory.kv_offload=none")
    if par.overlap_comm:
        raise RunError("workload=serving costs its steps on the analytic path without communication overlap: set "
                       "parallel.overlap_comm=false")
    if par.ep > par.tp:
        raise RunError(f"parallel.ep={par.ep} > parallel.tp={par.tp} (attention groups sharing an EP group) is "
                       "simulated for single-batch runs; a serving run needs parallel.ep equal to parallel.tp or 1")
    sched = cfg.scheduler
    if par.pp > 1 and (sched.kind not in (SchedulerKind.continuous, SchedulerKind.chunked_prefill)
                       or cfg.speculative.draft_model or par.pp > cfg.model.num_layers):
        raise RunError(f"parallel.pp={par.pp} in serving is simulated with scheduler=continuous or chunked_prefill, "
                       f"without speculative decoding, and at most one stage per layer ({cfg.model.num_layers})")
    if par.dp > 1 and sched.kind is SchedulerKind.disaggregated:
        raise RunError(f"parallel.dp={par.dp} replicates a whole server; a disaggregated server sizes its pools with "
                       "scheduler.prefill_instances and scheduler.decode_instances: set parallel.dp=1")
    if sched.kind is SchedulerKind.disaggregated:
        chips = (sched.prefill_instances + sched.decode_instances) * par.tp
        if chips > cfg.hardware.max_chips:
            raise RunError(
                f"scheduler=disaggregated with {sched.prefill_instances} prefill and {sched.decode_instances} decode "
                f"instances of {par.tp} chips needs {chips} chips, but one {cfg.hardware.name} fabric joins "
                f"{cfg.hardware.max_chips} (hardware.max_chips); use fewer instances or a smaller parallel.tp"
            )
    if sched.prefix_caching and (sched.kind not in (SchedulerKind.continuous, SchedulerKind.chunked_prefill)
                                 or sched.preemption is not Preemption.recompute):
        raise RunError(f"scheduler.prefix_caching is simulated with scheduler=continuous or chunked_prefill and "
                       f"preemption by recompute (got {sched.kind.value}, {sched.preemption.value}); set it to false")
    if sched.admission is Admission.guaranteed and sched.kind is SchedulerKind.disaggregated:
        raise RunError("scheduler.admission=guaranteed would reserve the output's blocks on the prefill instance; a "
                       "disaggregated server admits by the current lengths: set scheduler.admission=max_utilization")
    if cfg.attention.kv_block_tokens < 1:
        raise RunError("attention.kv_block_tokens=0 (a contiguous KV cache) is for single-batch runs; a serving run "
                       "hands out a paged cache: set attention.kv_block_tokens >= 1 (vLLM uses 16)")
    check_run(replace(cfg, parallel=replace(par, pp=1)) if par.pp > 1 else cfg)  # no micro-batches of a batch


def check_requests_fit(traffic: Traffic, kv: KvCache, size: CacheSize, ahead: int = 0) -> None:
    """Every request must fit in the whole KV cache on its own, or it could never complete (a lone request that
    outgrew the cache would preempt itself step after step). ``ahead``: tokens a decode writes beyond its own (the
    drafts a speculative step verifies)."""
    need = -(-(traffic.prompt_tokens + traffic.output_tokens + ahead) // kv.block_tokens)
    too_big = np.flatnonzero(need > kv.blocks)
    if not too_big.size:
        return
    i = int(too_big[0])
    prompt, output = int(traffic.prompt_tokens[i]), int(traffic.output_tokens[i])
    whole = f"the whole KV cache ({kv.blocks * kv.block_tokens:,} tokens = {size.kv / GB:.3g} GB per chip)"
    if -(-prompt // kv.block_tokens) > kv.blocks:
        what = f"its prompt of {prompt:,} tokens is longer than {whole}"
    else:
        drafts = f" and the {ahead} draft tokens a speculative step verifies" if ahead else ""
        what = f"its prompt and output{drafts}, {prompt + output + ahead:,} tokens, need more than {whole}"
    raise RunError(f"{traffic.where(i)}: {what}; raise scheduler.kv_cache_GB, hardware.hbm_capacity_GB or "
                   "parallel.tp, or shorten it")
