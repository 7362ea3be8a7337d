"""Checks that span several parts of a run config; each raises RunError with the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwmodels.chip import HardwareConfig
from hwmodels.kernels import KernelError, attention_family
from hwmodels.power import PowerBudget
from sim.config.errors import RunError
from sim.config.execution import Fidelity
from sim.config.placement import layout_of
from workloads.graph import AttentionKernel

if TYPE_CHECKING:
    from sim.config.schema import RunConfig


FLASH_TILE = 64  # query and key rows per FlashAttention tile


def fused_attention_sram_bytes(head_dim: int, act_bytes: float) -> float:
    """On-chip bytes one core needs for fused attention: a Q tile, K and V tiles, fp32 scores."""
    return (FLASH_TILE * head_dim + 2 * FLASH_TILE * head_dim) * act_bytes + FLASH_TILE * FLASH_TILE * 4


def core_sram_bytes(chip: HardwareConfig) -> float:
    """SRAM one core can use for tiles: its own (core_sram_KiB) or an even share of the chip's."""
    own = getattr(chip, "core_sram_KiB", 0.0) * 1024
    return own if own > 0 else chip.sram_bytes / chip.num_cores


def check_run(cfg: RunConfig) -> None:
    """Checks that span several config parts; raises RunError with the fix."""
    for check, _parts in CHECKS:
        check(cfg)


def _check_context_length(cfg: RunConfig) -> None:
    model, work = cfg.model, cfg.workload
    tokens = work.prompt_tokens + work.decode_tokens
    if tokens > model.max_context:
        raise RunError(
            f"workload.prompt_tokens + workload.decode_tokens = {tokens} exceeds {model.name}'s context of "
            f"{model.max_context} tokens; shorten the prompt or the generation"
        )


def _check_context_parallel(cfg: RunConfig) -> None:
    """Context parallelism (workloads/context.py): full causal attention on a fused kernel, ranks inside
    the scale-up domain, at least two tokens per rank."""
    model, par, chip = cfg.model, cfg.parallel, cfg.hardware
    if par.cp == 1:
        return
    if par.tp * par.cp > chip.max_chips:
        raise RunError(f"parallel.tp x parallel.cp = {par.tp * par.cp} chips exceed the {chip.max_chips} one "
                       f"{chip.name} fabric joins (hardware.max_chips, system.scale_up.chips); the ring attention "
                       "runs on the scale-up link: lower parallel.cp or parallel.tp")
    kinds = model.layer_kinds()
    if model.is_mla or model.sliding_window or model.attention_chunk or \
            any(k.ssm or k.window or k.chunk for k in kinds):
        raise RunError(f"parallel.cp={par.cp} is modelled for full causal attention (MHA/GQA); {model.name} has "
                       "latent, windowed, chunked or state-space layers: set parallel.cp=1")
    if cfg.attention_kernel() is AttentionKernel.unfused or par.pp > 1:
        raise RunError(f"parallel.cp={par.cp} is modelled with a fused attention kernel and without pipeline stages; "
                       "use attention.kernel=fused and parallel.pp=1")
    if cfg.workload.prompt_tokens < 2 * par.cp:
        raise RunError(f"parallel.cp={par.cp} cuts the prompt into {2 * par.cp} chunks, but workload.prompt_tokens="
                       f"{cfg.workload.prompt_tokens}; lower parallel.cp")


def _check_tensor_split(cfg: RunConfig) -> None:
    """The tensor- and expert-parallel degrees divide what they split."""
    model, tp, ep = cfg.model, cfg.parallel.tp, cfg.parallel.ep
    if model.num_heads % tp or model.num_kv_heads % tp:
        divisors = [d for d in range(1, model.num_kv_heads + 1)
                    if model.num_kv_heads % d == 0 and model.num_heads % d == 0]
        raise RunError(
            f"parallel.tp={tp} does not divide {model.name}'s {model.num_heads} attention heads and "
            f"{model.num_kv_heads} KV heads; use one of {divisors}"
        )
    if model.ffn_size % tp or model.dense_ffn_size % tp:
        raise RunError(f"parallel.tp={tp} does not divide {model.name}'s MLP width "
                       f"{model.ffn_size if model.ffn_size % tp else model.dense_ffn_size}")
    if model.ssm_state_size and (model.ssm_heads % tp or model.ssm_groups % tp and tp % model.ssm_groups):
        raise RunError(f"parallel.tp={tp} does not divide {model.name}'s {model.ssm_heads} SSM heads (or its "
                       f"{model.ssm_groups} B/C groups); use a tp that does")
    if ep > 1 and not model.is_moe:
        raise RunError(f"parallel.ep={ep} applies to mixture-of-experts models; {model.name} is dense: "
                       "set parallel.ep=1")
    redundant = cfg.parallel.moe_redundant_experts
    if redundant and (ep == 1 or (model.num_experts + redundant) % ep):
        raise RunError(f"parallel.moe_redundant_experts={redundant} places copies of hot experts on the EP chips: "
                       f"it needs parallel.ep > 1 and {model.name}'s {model.num_experts} experts plus the copies "
                       f"to fill the {ep} chips evenly")
    if ep > 1 and (ep % tp or (model.num_experts + redundant) % ep):
        raise RunError(
            f"parallel.ep={ep} must be a multiple of parallel.tp={tp} (experts are spread over whole tensor-parallel "
            f"groups; ep > tp runs attention on ep/tp groups, each with its share of the batch) and divide "
            f"{model.name}'s {model.num_experts} experts (plus parallel.moe_redundant_experts copies)"
        )


def _check_pipeline(cfg: RunConfig) -> None:
    """Pipeline stages: no more than layers, a sequence per micro-batch, what the pipeline models."""
    model, pp, work = cfg.model, cfg.parallel.pp, cfg.workload
    if pp > model.num_layers:
        raise RunError(f"parallel.pp={pp} pipeline stages exceed {model.name}'s {model.num_layers} layers; "
                       f"use at most {model.num_layers}")
    if pp == 1:
        return
    micro = cfg.parallel.microbatches or pp
    if micro > work.batch and not cfg.parallel.microbatches:  # the user set pp, not the micro-batches
        raise RunError(f"parallel.pp={pp} splits the batch into one micro-batch per stage ({pp}), but "
                       f"workload.batch={work.batch}: a micro-batch needs at least one sequence; raise "
                       f"workload.batch to at least {pp} or lower parallel.pp")
    if micro > work.batch:
        raise RunError(f"parallel.microbatches={micro} exceeds workload.batch={work.batch}: a micro-batch needs "
                       "at least one sequence; raise the batch or lower parallel.microbatches")
    if cfg.fidelity is not Fidelity.des:
        raise RunError("parallel.pp > 1 is simulated by the discrete-event engine; use fidelity=des")
    if cfg.speculative.draft_model or cfg.runtime.host_dispatch_us or cfg.runtime.step_overhead_us:
        raise RunError("parallel.pp > 1 is modelled without speculative decoding and with runtime=graphs; "
                       "drop speculative.draft_model or use runtime=graphs")


def _check_power(cfg: RunConfig) -> None:
    """Under the cap, the board budget must exceed the chip's static power (else no clock fits it)."""
    chip = cfg.hardware
    if not cfg.power.cap or chip.ideal or chip.board_power_W <= 0:
        return
    static = PowerBudget.of(chip).static_W
    if chip.board_power_W <= static:
        raise RunError(
            f"hardware.board_power_W={chip.board_power_W:g} is below {chip.name}'s static power of {static:.0f} W "
            "(leakage, idle and HBM background): no clock fits it; raise it or set power.cap=false"
        )


def _check_chip(cfg: RunConfig) -> None:
    """The chip holds the tensor-parallel group, the attention tiles and the activation format."""
    chip = cfg.hardware
    layout_of(cfg)  # TP inside the scale-up domain; EP and PP across domains only with a network
    try:
        attention_family(cfg.attention_kernel().value, chip.architecture)
    except KernelError as err:
        raise RunError(str(err)) from None
    if cfg.attention.kernel is not AttentionKernel.unfused:
        need = fused_attention_sram_bytes(cfg.model.head_dim, cfg.precision.activations.bytes)
        have = core_sram_bytes(chip)
        if need > have:
            raise RunError(
                f"attention.kernel=fused keeps {FLASH_TILE}x{FLASH_TILE} tiles of Q, K, V and scores on chip: "
                f"{need / 1024:.0f} KiB per core, but {chip.name} has {have / 1024:.0f} KiB per core; "
                "use attention.kernel=unfused or give the chip more SRAM"
            )
    act = cfg.precision.activations
    if not chip.supports(act) and act.bits < 8:
        raise RunError(
            f"precision.activations={act.value}: {chip.name} has no {act.value} matrix units and "
            "sub-8-bit activations cannot be converted; use bf16 or fp8/int8 activations"
        )


# check_run's checks in order, each with the parts of the run config it reads: a batch of points
# (sim/batch/vector.py) runs each check once per distinct set of those parts' objects.
# tests/test_check_parts.py records what each check reads and fails on a part missing here.
def _check_seed(cfg: RunConfig) -> None:
    if not 0 <= cfg.seed < 2**32:  # numpy's generators take 0 .. 2^32 - 1
        raise RunError(f"seed must be a whole number from 0 to 2^32 - 1 (got {cfg.seed})")


CHECKS = (
    (_check_seed, ("seed",)),
    (_check_tensor_split, ("model", "parallel")),
    (_check_pipeline, ("model", "parallel", "workload", "fidelity", "speculative", "runtime")),
    (_check_context_length, ("model", "workload")),
    (_check_chip, ("parallel", "hardware", "system", "attention", "runtime", "model", "precision")),
    (_check_power, ("power", "hardware")),
    (_check_context_parallel, ("model", "parallel", "hardware", "attention", "runtime", "workload")),
)


# Workload settings only a serving run reads (a single batch is ``batch`` sequences of ``prompt_tokens`` and
# ``decode_tokens``); ``batch`` is the one a serving run does not read.
SERVING_ONLY = ("num_requests", "arrival", "rate_per_s", "cv", "concurrency", "trace", "trace_path", "trace_scale",
                "lengths", "output_lengths", "length_cv", "shared_prefix_tokens", "turns", "think_s")


def ignored_settings(cfg: RunConfig) -> list[str]:
    """Settings away from their defaults that this run does not read, each with why: the serving workload's in a
    single-batch run, ``workload.batch`` in a serving run, a serving setting its arrival process, lengths or
    scheduler leave unread (``workload.cv`` without gamma arrivals, ...), an execution setting the model, formats or
    layout leave unread (``parallel.microbatches`` without pipeline stages, ...), the speculative knobs without a
    draft model. The run goes on; the console says so (a setting that changes nothing should not pass unnoticed)."""
    from sim.config.execution import SpeculativeConfig
    from sim.config.workload import SchedulerConfig, SchedulerKind, WorkloadConfig, WorkloadKind

    w, plain = cfg.workload, WorkloadConfig()
    serving = w.kind is WorkloadKind.serving
    keys, why = (("batch",), "single-batch runs only") if serving else (SERVING_ONLY, "workload=serving only")
    ignored = [f"workload.{k}={_shown(getattr(w, k))} ({why})" for k in keys if getattr(w, k) != getattr(plain, k)]
    if serving:
        ignored += [f"workload.{k}={_shown(getattr(w, k))} ({why})" for k, why in _unread_serving(w)
                    if getattr(w, k) != getattr(plain, k)]
        if cfg.scheduler.kind is not SchedulerKind.disaggregated:
            ignored += [f"scheduler.{k}={getattr(cfg.scheduler, k)} (scheduler=disaggregated only)"
                        for k in ("prefill_instances", "decode_instances")
                        if getattr(cfg.scheduler, k) != getattr(SchedulerConfig(), k)]
    ignored += _unread_execution(cfg, serving)
    spec, off = cfg.speculative, SpeculativeConfig()
    if not spec.draft_model:
        ignored += [f"speculative.{k}={getattr(spec, k)} (no speculative.draft_model)" for k in ("k", "acceptance")
                    if getattr(spec, k) != getattr(off, k)]
    return ignored


def _unread_execution(cfg: RunConfig, serving: bool) -> list[str]:
    """Execution settings the model, formats or layout leave unread, each with why."""
    from sim.config.execution import KvOffload, PrecisionConfig
    from workloads.graph import MlaForm

    p, m, unread = cfg.parallel, cfg.model, []
    if p.microbatches and (p.pp == 1 or serving):  # 0: one per stage
        unread.append(f"parallel.microbatches={p.microbatches} (single-batch runs with parallel.pp > 1 only)")
    if p.moe_imbalance is not None and not m.num_experts:
        unread.append(f"parallel.moe_imbalance={p.moe_imbalance:g} (mixture-of-experts models only)")
    if cfg.attention.mla_form is not MlaForm.auto and not m.kv_lora_rank:
        unread.append(f"attention.mla_form={cfg.attention.mla_form.value} (multi-head latent attention models only)")
    if cfg.memory.host_bandwidth_GBps is not None and cfg.memory.kv_offload is KvOffload.none:
        unread.append(f"memory.host_bandwidth_GBps={cfg.memory.host_bandwidth_GBps:g} (memory.kv_offload=host only)")
    if cfg.precision.group_size != PrecisionConfig().group_size and not cfg.precision.weights.is_integer:
        unread.append(f"precision.group_size={cfg.precision.group_size} (int4 and int8 weights only)")
    return unread


def _unread_serving(w) -> list[tuple[str, str]]:
    """The serving workload's settings its arrival process and lengths leave unread, each with why."""
    from sim.config.workload import ArrivalProcess, LengthDistribution

    arrival, spread = w.arrival, (LengthDistribution.uniform, LengthDistribution.lognormal)
    unread = []
    if arrival is not ArrivalProcess.gamma:
        unread.append(("cv", "workload.arrival=gamma only"))
    if arrival is not ArrivalProcess.closed:
        unread.append(("concurrency", "workload.arrival=closed only"))
    if arrival in (ArrivalProcess.closed, ArrivalProcess.offline, ArrivalProcess.trace):
        unread.append(("rate_per_s", "poisson and gamma arrivals only"))
    if arrival is not ArrivalProcess.trace:
        unread.append(("trace_scale", "workload.arrival=trace only"))
    else:  # the trace gives every length
        unread += [(k, "a trace gives the lengths") for k in ("prompt_tokens", "decode_tokens", "lengths",
                                                               "output_lengths", "length_cv")]
    if w.turns == 1:
        unread.append(("think_s", "workload.turns > 1 only"))
    drawn = (w.lengths, w.output_lengths or w.lengths)  # prompts', outputs'
    if arrival is not ArrivalProcess.trace and not any(d in spread for d in drawn):
        unread.append(("length_cv", "uniform and lognormal lengths only"))
    return unread


def _shown(value) -> str:
    return value.value if hasattr(value, "value") else str(value)
