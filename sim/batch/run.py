"""One run: check the config, build the passes, simulate them at the chosen fidelity."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sim.batch.closed_form import decode_segments
from sim.batch.speculative import speculative_passes
from sim.config.draft import draft_model
from sim.config.placement import attention_groups, layout_of, network
from sim.config.schema import Fidelity, KvOffload, RunConfig, RunError, check_run
from sim.engine.analytic import simulate_analytic
from sim.engine.costing import Coster
from sim.engine.des import simulate_des
from sim.engine.pipeline import simulate_pipeline, split
from sim.engine.records import HostCosts, Timeline
from sim.engine.resources import NIC, RESOURCES, Resource, host_tier
from workloads.footprint import activation_bytes, kv_bytes_per_chip, weight_bytes_per_chip
from workloads.graph import Execution, PassGraph, Phase, build_pass

GB = 1e9


@dataclass(frozen=True)
class MemoryUse:
    """Bytes per chip: HBM's, and the KV cache spilled to the host tier (``memory.kv_offload=host``)."""

    weights: float
    kv_cache: float  # all of it, the host tier's share included
    activations: float
    capacity: float
    kv_on_host: float = 0.0  # of kv_cache, held in host memory

    @property
    def used(self) -> float:
        """HBM bytes in use."""
        return self.weights + self.kv_cache - self.kv_on_host + self.activations if self.kv_on_host else \
            self.weights + self.kv_cache + self.activations


@dataclass
class RunResult:
    cfg: RunConfig
    timeline: Timeline
    memory: MemoryUse
    distinct_ops: int  # ops costed (each distinct op once)
    sim_wall_s: float  # wall-clock seconds spent simulating
    decode_tokens: float  # tokens per sequence the decode passes produce (expected, with speculation)

    @property
    def stages(self) -> int:
        return self.cfg.parallel.pp

    @property
    def group_chips(self) -> int:
        """Chips of one pipeline stage, which all do the work of its records: max(tp, ep) x cp."""
        return max(self.cfg.parallel.tp, self.cfg.parallel.ep) * self.cfg.parallel.cp

    @property
    def chips(self) -> int:
        """Chips of one replica: max(tp, ep) x cp x pp (a summary counts every replica's: times parallel.dp)."""
        return self.group_chips * self.cfg.parallel.pp


def passes(cfg: RunConfig, batch: int | None = None, ex: Execution | None = None) -> Iterator[PassGraph]:
    """The prefill pass, then one decode step per generated token after the first.

    The prefill computes the prompt and yields the first token; decode step j (1-based)
    feeds token j back in and attends to ``prompt + j`` keys. With speculative decoding the
    draft model prefills the prompt too, and each step is k draft passes and one verification.
    ``ex``: the execution (default ``cfg.execution()``; with the KV cache's host share once it spills).
    """
    ex, w, model = ex or cfg.execution(), cfg.workload, cfg.model
    batch = local_batch(cfg, batch or w.batch)
    yield build_pass(model, ex, Phase.prefill, batch, w.prompt_tokens, w.prompt_tokens)
    draft = draft_model(cfg)
    if draft is not None:
        spec = cfg.speculative
        yield build_pass(draft, ex, Phase.prefill, batch, w.prompt_tokens, w.prompt_tokens)
        yield from speculative_passes(model, draft, ex, batch, w.prompt_tokens, w.decode_tokens - 1, spec.k,
                                      spec.acceptance)
        return
    for j in range(1, w.decode_tokens):
        yield build_pass(model, ex, Phase.decode, batch, 1, w.prompt_tokens + j, step=j)


def local_batch(cfg: RunConfig, batch: int) -> int:
    """Sequences one chip's tensor-parallel group runs: all ``batch``, or with expert parallelism over
    ``ep / tp`` attention groups an even share of it (the busiest group's, rounded up)."""
    groups = attention_groups(cfg.parallel.tp, cfg.parallel.ep)
    return -(-batch // groups) if groups > 1 else batch


def decode_tokens_produced(cfg: RunConfig) -> float:
    """Tokens per sequence the decode passes deliver: ``decode_tokens - 1``. Speculative steps
    run until that many are expected; their last step's expected overshoot is work done, not
    output, so throughput, energy and cost per token count only the tokens asked for."""
    return float(cfg.workload.decode_tokens - 1)


def memory_use(cfg: RunConfig, prefill: PassGraph) -> MemoryUse:
    ex, w = cfg.execution(), cfg.workload
    models = [cfg.model] + ([d] if (d := draft_model(cfg)) is not None else [])
    spare = cfg.speculative.k + 1 if len(models) > 1 else 0  # drafted positions not yet accepted
    seqs = local_batch(cfg, w.batch)
    tokens = seqs * _padded(w.prompt_tokens + w.decode_tokens + spare, ex.kv_block_tokens)
    # Pipeline stages hold their share of the layers (and of their KV cache); the first stage has
    # the most layers when they do not split evenly.
    share = split(cfg.model.num_layers, cfg.parallel.pp)[0] / cfg.model.num_layers
    return MemoryUse(
        weights=sum(weight_bytes_per_chip(m, ex) for m in models) * share,
        kv_cache=sum(kv_bytes_per_chip(m, ex, tokens, seqs) for m in models) * share,
        activations=activation_bytes(prefill),
        capacity=cfg.hardware.hbm_capacity_bytes,
    )


def _padded(tokens: int, block: int) -> int:
    """Tokens a sequence occupies in a paged cache of ``block``-token blocks (0: contiguous)."""
    return -(-tokens // block) * block if block else tokens


def spill(cfg: RunConfig, mem: MemoryUse, ex: Execution) -> tuple[MemoryUse, Execution]:
    """With ``memory.kv_offload=host``, the KV cache that does not fit in HBM moves to host memory: the
    memory use with ``kv_on_host`` and the execution whose attention reads that share from the host
    tier (every layer and sequence the same share of its attention KV; a hybrid's SSM state stays).
    Unchanged without offload or when everything fits; RunError when even all of the attention KV on
    the host would not make the rest fit, or when the host's share exceeds ``memory.host_capacity_GB``."""
    over = mem.used - mem.capacity
    if cfg.memory.kv_offload is KvOffload.none or over <= 0:
        return mem, ex
    attention_kv = mem.kv_cache * _attention_share(cfg, ex)
    host_cap = cfg.memory.host_capacity_GB * GB
    if over > attention_kv:
        raise RunError(f"{cfg.model.name} does not fit even with its whole KV cache in host memory: weights "
                       f"{mem.weights / GB:.1f} GB + activations {mem.activations / GB:.1f} GB (+ state) exceed "
                       f"{cfg.hardware.name}'s {mem.capacity / GB:.1f} GB; raise parallel.tp or parallel.cp, lower "
                       "precision.weights, or shrink workload.batch or the prompt")
    if over > host_cap:
        raise RunError(f"memory.kv_offload=host: {over / GB:.1f} GB of KV cache per chip spill to the host, over "
                       f"memory.host_capacity_GB={cfg.memory.host_capacity_GB:g}; raise it, raise parallel.tp or "
                       "parallel.cp, or shrink workload.batch or the sequence lengths")
    return dataclasses.replace(mem, kv_on_host=over), dataclasses.replace(ex, kv_host_fraction=over / attention_kv)


def _attention_share(cfg: RunConfig, ex: Execution) -> float:
    """The attention KV's share of the KV cache (the rest: a hybrid's fixed SSM state per sequence)."""
    model, w = cfg.model, cfg.workload
    state = model.ssm_state_bytes_per_seq(ex.kv_cache.bytes) * w.batch / ex.tp
    attention = kv_bytes_per_chip(model, ex, w.prompt_tokens + w.decode_tokens)
    return attention / (attention + state) if attention + state else 0.0


def check_fits(cfg: RunConfig, mem: MemoryUse) -> None:
    if mem.used <= mem.capacity:
        return
    raise RunError(
        f"{cfg.model.name} does not fit: it needs {mem.used / GB:.1f} GB per chip (weights {mem.weights / GB:.1f} + "
        f"KV cache {mem.kv_cache / GB:.1f} + activations {mem.activations / GB:.1f}) but {cfg.hardware.name} has "
        f"{mem.capacity / GB:.1f} GB; raise parallel.tp, lower precision.weights or precision.kv_cache, "
        "or shrink workload.batch or the sequence lengths"
        + (", or spill the KV cache with memory.kv_offload=host" if mem.kv_cache > 0 else "")
    )


def simulate(cfg: RunConfig, resources: tuple[Resource, ...] = RESOURCES, step_by_step: bool = False) -> RunResult:
    """Check ``cfg``, then simulate its prefill and decode passes on a chip with ``resources``.

    On one pipeline stage without speculation the decode steps run in closed form (a few mean steps with
    their counts, ``sim.batch.closed_form``); ``step_by_step`` replays every step instead (the reference
    the closed form is tested against)."""
    check_run(cfg)
    started = time.perf_counter()
    ex = cfg.execution()
    all_passes = passes(cfg, ex=ex)
    prefill = next(all_passes)
    mem, ex = spill(cfg, memory_use(cfg, prefill), ex)
    check_fits(cfg, mem)
    layout = layout_of(cfg)
    if layout.domains > 1 and NIC not in resources:  # transfers across domains on the NIC, beside the links
        resources = (*resources, NIC)
    if cfg.memory.kv_offload is KvOffload.host and ex.kv_host_fraction:  # a host tier only where KV spilled
        resources = (*resources, host_tier((cfg.memory.host_bandwidth_GBps or cfg.hardware.host_link_GBps) * GB))
    if ex.kv_host_fraction:  # the passes again, their attention reading the host tier's share
        all_passes = passes(cfg, ex=ex)
        prefill = next(all_passes)
    coster = Coster(cfg.hardware, resources, in_switch=cfg.runtime.in_switch_reduction, network=network(cfg),
                    cap=cfg.power.cap)
    host = HostCosts.of(cfg.runtime, cfg.system.host)
    if cfg.parallel.pp > 1:
        timeline = simulate_pipeline(lambda size: list(passes(cfg, size, ex)), cfg.workload.batch, cfg.parallel.pp,
                                     cfg.parallel.microbatches or cfg.parallel.pp, coster,
                                     cfg.model.hidden_size * cfg.precision.activations.bytes, host, resources,
                                     layout.send_nodes)
    else:
        run = simulate_des if cfg.fidelity is Fidelity.des else simulate_analytic
        if not step_by_step and draft_model(cfg) is None:
            w = cfg.workload
            all_passes = iter(decode_segments(cfg.model, ex, local_batch(cfg, w.batch), w.prompt_tokens,
                                              w.decode_tokens - 1, coster, host))
        timeline = run(_chain(prefill, all_passes), coster, host, resources)
    return RunResult(cfg, timeline, mem, coster.distinct_ops, time.perf_counter() - started,
                     decode_tokens_produced(cfg))


def _chain(first: PassGraph, rest: Iterator[PassGraph]) -> Iterator[PassGraph]:
    yield first
    yield from rest
