"""The run configuration: Hydra schema, registration and cross-field validation.

``conf/config.yaml`` names these dataclasses as its schema, so Hydra rejects an unknown key or
a wrong type at composition; ``OmegaConf.to_object`` then builds the dataclasses, whose
``__post_init__`` rejects impossible values. ``check_run`` checks what involves several parts
(does the tensor-parallel degree divide the heads, does the model fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from hwmodels.chip import HardwareConfig
from hwmodels.numerics import DType
from workloads.graph import AttentionKernel, Execution
from workloads.model import ModelConfig


class RunError(ValueError):
    """A configuration that cannot be simulated as asked."""


class Fidelity(str, Enum):
    analytic = "analytic"  # per-op roofline costs, summed
    des = "des"  # the operator graph replayed on SimPy resources


class WorkloadKind(str, Enum):
    single_batch = "single_batch"  # one batch: prefill its prompts, then decode
    serving = "serving"  # a stream of requests through a scheduler (sim/serving/)


class ArrivalProcess(str, Enum):
    poisson = "poisson"  # exponential inter-arrival times at rate_per_s
    gamma = "gamma"  # gamma inter-arrival times at rate_per_s, coefficient of variation cv (bursty for cv > 1)
    closed = "closed"  # concurrency users, each sending its next request when its last one completes
    trace = "trace"  # arrival times and lengths from the CSV at trace_path


class LengthDistribution(str, Enum):
    fixed = "fixed"  # every request: prompt_tokens in, decode_tokens out
    uniform = "uniform"  # uniform around those means, coefficient of variation length_cv
    lognormal = "lognormal"  # lognormal with those means and coefficient of variation length_cv


@dataclass
class WorkloadConfig:
    kind: WorkloadKind = WorkloadKind.single_batch
    batch: int = 1  # sequences processed together
    prompt_tokens: int = 512  # prompt length per sequence
    decode_tokens: int = 128  # tokens generated per sequence (the first comes from the prefill)
    # Serving (kind=serving, sim/serving/): prompt_tokens and decode_tokens are the mean lengths.
    num_requests: int = 1000  # requests in the run (a trace: its first num_requests rows)
    arrival: ArrivalProcess = ArrivalProcess.poisson
    rate_per_s: float = 10.0  # mean arrival rate, requests per second (poisson, gamma)
    cv: float = 2.0  # coefficient of variation of gamma inter-arrival times (1 is Poisson)
    concurrency: int = 16  # closed loop: users, each with one request outstanding
    trace_path: Optional[str] = None  # CSV with columns arrival_s, prompt_tokens, output_tokens
    lengths: LengthDistribution = LengthDistribution.fixed  # a trace brings its own lengths
    length_cv: float = 0.5  # coefficient of variation of uniform and lognormal lengths

    def __post_init__(self) -> None:
        for key in ("batch", "prompt_tokens", "decode_tokens", "num_requests", "concurrency"):
            value = getattr(self, key)
            if value < 1:
                raise RunError(f"workload.{key} must be >= 1 (got {value})")
        if not self.rate_per_s > 0:
            raise RunError(f"workload.rate_per_s must be > 0 requests per second (got {self.rate_per_s})")
        if not self.cv > 0 or not self.length_cv >= 0:
            raise RunError(f"workload.cv must be > 0 and workload.length_cv >= 0 (got {self.cv}, {self.length_cv})")
        if self.arrival is ArrivalProcess.trace and not self.trace_path:
            raise RunError("workload.arrival=trace needs workload.trace_path=<CSV with arrival_s, prompt_tokens, "
                           "output_tokens>")


class SchedulerKind(str, Enum):
    static = "static"  # fixed batches, each runs until its longest request is done
    continuous = "continuous"  # iteration-level batching: requests join and leave at every step (Orca, vLLM)
    chunked_prefill = "chunked_prefill"  # a token budget per step mixing prefill chunks with decodes (Sarathi-Serve)
    disaggregated = "disaggregated"  # prefill and decode on separate instances, KV moved over the links (Splitwise)


class Preemption(str, Enum):
    recompute = "recompute"  # drop the victim's KV blocks; it prefills its prompt and output again later
    swap = "swap"  # copy the victim's KV blocks to host memory over the host link, and back later


@dataclass
class SchedulerConfig:
    """How a serving run batches requests (conf/scheduler/; sim/serving/schedulers.py)."""

    kind: SchedulerKind = SchedulerKind.continuous
    max_batch: int = 256  # sequences in one step at most (vLLM max_num_seqs)
    token_budget: int = 8192  # tokens in one step at most (vLLM max_num_batched_tokens); a longer prompt runs alone
    kv_block_tokens: int = 16  # paged KV cache: tokens per block (vLLM's default)
    preemption: Preemption = Preemption.recompute
    kv_cache_GB: Optional[float] = None  # KV cache per chip; null: all HBM left after weights and activations
    prefill_instances: int = 1  # disaggregated: tensor-parallel groups that only prefill
    decode_instances: int = 1  # disaggregated: tensor-parallel groups that only decode

    def __post_init__(self) -> None:
        for key in ("max_batch", "token_budget", "kv_block_tokens", "prefill_instances", "decode_instances"):
            if getattr(self, key) < 1:
                raise RunError(f"scheduler.{key} must be >= 1 (got {getattr(self, key)})")
        if self.kv_cache_GB is not None and not self.kv_cache_GB > 0:
            raise RunError(f"scheduler.kv_cache_GB must be > 0 (got {self.kv_cache_GB}); null uses the free HBM")


@dataclass
class SloConfig:
    """Latency targets of a serving run: a request meets them when both hold (goodput)."""

    ttft_s: float = 1.0  # time to first token, seconds
    tpot_s: float = 0.1  # time per output token after the first, seconds

    def __post_init__(self) -> None:
        for key in ("ttft_s", "tpot_s"):
            if not getattr(self, key) > 0:
                raise RunError(f"slo.{key} must be > 0 seconds (got {getattr(self, key)}); no request meets a "
                               "zero latency target")


@dataclass
class ParallelConfig:
    tp: int = 1  # tensor-parallel degree: chips that split every layer
    pp: int = 1  # pipeline stages: groups of tp chips, each running a contiguous share of the layers
    microbatches: int = 0  # pipeline micro-batches the batch is split into; 0: one per stage
    ep: int = 1  # expert-parallel degree for MoE models: 1, or tp (whole experts spread over the TP chips)
    moe_imbalance: float = 1.0  # busiest expert's tokens over the mean (>= 1; routing is rarely even)
    dp: int = 1  # data-parallel replicas: independent copies serving their own batch each
    overlap_comm: bool = False  # overlap each TP all-reduce with the GEMM producing it (needs fidelity=des)

    def __post_init__(self) -> None:
        if self.tp < 1:
            raise RunError(f"parallel.tp must be >= 1 (got {self.tp})")
        if self.ep < 1 or self.pp < 1 or self.dp < 1 or self.microbatches < 0:
            raise RunError(f"parallel.pp, parallel.ep and parallel.dp must be >= 1 and parallel.microbatches >= 0 "
                           f"(got {self.pp}, {self.ep}, {self.dp}, {self.microbatches})")
        if self.moe_imbalance < 1:
            raise RunError(f"parallel.moe_imbalance must be >= 1 (got {self.moe_imbalance}); 1 means even routing")


@dataclass
class PrecisionConfig:
    """Number formats. Weights narrower than activations (int4/int8 weights with 16-bit
    activations, as GPTQ/AWQ) are dequantized in the GEMM; weights and activations both in
    8 bits (SmoothQuant, FP8 serving) use the chip's 8-bit matrix rate. Integer and fp4
    weights carry one fp16 scale per ``group_size`` weights; embeddings, LM head and norm
    scales stay in 16 bits."""

    weights: DType = DType.bf16
    activations: DType = DType.bf16
    kv_cache: DType = DType.bf16
    group_size: int = 128

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise RunError(f"precision.group_size must be >= 1 (got {self.group_size})")
        if self.activations.bits < self.weights.bits:
            raise RunError(
                f"precision.activations={self.activations.value} is narrower than precision.weights="
                f"{self.weights.value}; quantize the weights at least as far as the activations"
            )


@dataclass
class AttentionConfig:
    kernel: AttentionKernel = AttentionKernel.fused
    kv_block_tokens: int = 0  # paged KV cache: block size in tokens (vLLM uses 16); 0: contiguous

    def __post_init__(self) -> None:
        if self.kv_block_tokens < 0:
            raise RunError(f"attention.kv_block_tokens must be >= 0 (got {self.kv_block_tokens})")


@dataclass
class RuntimeConfig:
    """The host software stack: what the CPU spends per kernel and per pass.

    With CUDA graphs (or XLA) a pass is launched as one program and the host costs nothing
    per kernel (the chip's ``kernel_overhead_us`` remains). An eager framework dispatches every
    kernel from Python: ``host_dispatch_us`` each, in order, while the device runs ahead
    asynchronously; a pass then takes ``step_overhead_us + max(device time, kernels x
    host_dispatch_us)``.
    """

    name: str = "graphs"
    fused_elementwise: bool = True  # residual adds fused into norms, rotary into attention (see workloads/graph.py)
    host_dispatch_us: float = 0.0  # host time to dispatch one kernel
    step_overhead_us: float = 0.0  # host work per pass before the first kernel (scheduling, inputs)

    def __post_init__(self) -> None:
        for key in ("host_dispatch_us", "step_overhead_us"):
            if not getattr(self, key) >= 0:
                raise RunError(f"runtime.{key} must be >= 0 (got {getattr(self, key)})")


@dataclass
class SpeculativeConfig:
    """Speculative decoding: a draft model proposes ``k`` tokens, the target checks them in one pass."""

    draft_model: Optional[str] = None  # a model preset name (conf/model/); null: off
    k: int = 4  # tokens drafted per step
    acceptance: float = 0.7  # probability that each drafted token is accepted

    def __post_init__(self) -> None:
        if self.k < 1:
            raise RunError(f"speculative.k must be >= 1 (got {self.k})")
        if not 0 <= self.acceptance <= 1:
            raise RunError(f"speculative.acceptance must be in [0, 1] (got {self.acceptance})")


@dataclass
class OutputConfig:
    write_files: bool = True  # summary.json, ops.parquet, ops.csv, config.yaml
    print_summary: bool = True
    trace: bool = False  # also trace.json: Chrome trace (Perfetto) of the prefill and the first decode steps


@dataclass
class SweepConfig:
    """How a multirun behaves and what its report draws; nothing here changes a point's results."""

    rerun: bool = False  # simulate every point, even one that finished in an earlier sweep beside this one
    report: bool = True  # write the table and charts (llmsim-report) when the multirun ends
    progress: Optional[bool] = None  # progress bar with time left on stderr; null: when stderr is a terminal
    x: Optional[str] = None  # regime-map axes (swept keys); null: the first two swept keys
    y: Optional[str] = None
    metric: str = "output_tokens_per_s"  # contours of the regime map
    pareto: list[str] = field(default_factory=list)  # [x, y] metrics; empty: peak power (or cost, ttft) vs tokens/s


@dataclass
class CostConfig:
    """Prices for the cost of a run (hwmodels/cost.py); nothing here changes the timing.

    The cost of a chip-hour is ``usd_per_chip_hour`` when set, else derived: the chip's
    estimated cost to make, times ``price_markup``, written off over ``amortisation_years`` of
    which the chip works ``utilisation``, plus its average power at ``usd_per_kWh``.
    """

    usd_per_chip_hour: Optional[float] = None  # null: derived from the chip's cost and power
    usd_per_kWh: float = 0.10  # electricity, USD per kWh (about a US industrial rate, 2023)
    amortisation_years: float = 3.0  # years the chip is written off over
    utilisation: float = 1.0  # fraction of those hours the chip does paid work, (0, 1]
    price_markup: float = 1.0  # price paid over the estimated cost to make (1 = at cost)

    def __post_init__(self) -> None:
        for key in ("usd_per_kWh", "usd_per_chip_hour"):
            value = getattr(self, key)
            if value is not None and not value >= 0:
                raise RunError(f"cost.{key} must be >= 0 (got {value}); a price cannot be negative")
        for key in ("amortisation_years", "price_markup"):
            if not getattr(self, key) > 0:
                raise RunError(f"cost.{key} must be > 0 (got {getattr(self, key)})")
        if not 0 < self.utilisation <= 1:
            raise RunError(f"cost.utilisation must be in (0, 1] (got {self.utilisation})")


@dataclass
class SearchConfig:
    """A design-space search (``llmsim-search +search=<recipe>``, sim/search/); nothing here changes a run."""

    trials: int = 50  # designs evaluated in all (a resumed search runs only the ones missing)
    seed: int = 0  # sampler seed: same seed, same space, jobs=1 -> same trials
    jobs: int = 1  # worker processes sharing the study (jobs > 1: faster, trial order not reproducible)
    sampler: str = "nsga2"  # nsga2 | tpe
    out: Optional[str] = None  # output folder; null: results/search/<name>
    fresh: bool = False  # delete an earlier study in the output folder instead of resuming it
    objectives: list[str] = field(default_factory=lambda: ["output_tokens_per_s_per_usd", "tpot_s"])
    constraints: dict[str, Any] = field(default_factory=dict)  # metric: "<= limit" | ">= limit"
    space: dict[str, Any] = field(default_factory=dict)  # key: {choices: [..]} | {low, high, step, log}
    derived: dict[str, str] = field(default_factory=dict)  # key: arithmetic over space keys
    reference: Optional[str] = "h100_sxm"  # hardware preset to compare with; null: none
    reference_overrides: list[str] = field(default_factory=list)  # e.g. [parallel.tp=8]


@dataclass
class RunConfig:
    hardware: HardwareConfig = MISSING
    model: ModelConfig = MISSING
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    cost: CostConfig = field(default_factory=CostConfig)  # prices for energy and cost figures
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    speculative: SpeculativeConfig = field(default_factory=SpeculativeConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)  # serving runs only
    slo: SloConfig = field(default_factory=SloConfig)  # serving runs only
    fidelity: Fidelity = Fidelity.des
    seed: int = 0
    name: str = "default"  # names the sweep folder: results/sweeps/<name>/...
    calibration: str = ""  # a fit from llmsim-calibrate for the fitted chip fields no preset sets; "": shipped
    output: OutputConfig = field(default_factory=OutputConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    search: SearchConfig = field(default_factory=SearchConfig)  # llmsim-search only (sim/search/)

    def execution(self) -> Execution:
        return Execution(self.precision.weights, self.precision.activations, self.precision.kv_cache,
                         self.attention.kernel, self.parallel.tp, self.runtime.fused_elementwise,
                         self.precision.group_size, self.parallel.ep, self.parallel.moe_imbalance,
                         self.attention.kv_block_tokens, self.parallel.overlap_comm)


def register_configs() -> None:
    """Register the schema with Hydra's ConfigStore (idempotent)."""
    ConfigStore.instance().store(name="llmsim_schema", node=RunConfig)


FLASH_TILE = 64  # query and key rows per FlashAttention tile


def fused_attention_sram_bytes(head_dim: int, act_bytes: float) -> float:
    """On-chip bytes one core needs for fused attention: a Q tile, K and V tiles, fp32 scores."""
    return (FLASH_TILE * head_dim + 2 * FLASH_TILE * head_dim) * act_bytes + FLASH_TILE * FLASH_TILE * 4


def core_sram_bytes(chip: HardwareConfig) -> float:
    """SRAM one core can use for tiles: its own (core_sram_KiB) or an even share of the chip's."""
    own = getattr(chip, "core_sram_KiB", 0.0) * 1024
    return own if own > 0 else chip.sram_bytes / chip.num_cores


def check_run(cfg: RunConfig) -> None:
    """Checks that span several config groups; raises RunError with the fix."""
    model, tp, work = cfg.model, cfg.parallel.tp, cfg.workload
    if model.num_heads % tp or model.num_kv_heads % tp:
        divisors = [d for d in range(1, model.num_kv_heads + 1) if model.num_kv_heads % d == 0 and model.num_heads % d == 0]
        raise RunError(
            f"parallel.tp={tp} does not divide {model.name}'s {model.num_heads} attention heads and "
            f"{model.num_kv_heads} KV heads; use one of {divisors}"
        )
    if model.ffn_size % tp:
        raise RunError(f"parallel.tp={tp} does not divide {model.name}'s MLP width {model.ffn_size}")
    pp = cfg.parallel.pp
    if pp > model.num_layers:
        raise RunError(f"parallel.pp={pp} pipeline stages exceed {model.name}'s {model.num_layers} layers; "
                       f"use at most {model.num_layers}")
    if pp > 1:
        micro = cfg.parallel.microbatches or pp
        if micro > work.batch:
            raise RunError(f"parallel.microbatches={micro} exceeds workload.batch={work.batch}: a micro-batch needs "
                           "at least one sequence; raise the batch or lower parallel.microbatches")
        if cfg.fidelity is not Fidelity.des:
            raise RunError("parallel.pp > 1 is simulated by the discrete-event engine; use fidelity=des")
        if cfg.speculative.draft_model or cfg.runtime.host_dispatch_us or cfg.runtime.step_overhead_us:
            raise RunError("parallel.pp > 1 is modelled without speculative decoding and with runtime=graphs; "
                           "drop speculative.draft_model or use runtime=graphs")
    if cfg.parallel.overlap_comm and cfg.fidelity is not Fidelity.des:
        raise RunError("parallel.overlap_comm=true is an overlap the discrete-event engine simulates; use fidelity=des")
    ep = cfg.parallel.ep
    if ep > 1 and not model.is_moe:
        raise RunError(f"parallel.ep={ep} applies to mixture-of-experts models; {model.name} is dense: set parallel.ep=1")
    if ep > 1 and (ep != tp or model.num_experts % ep):
        raise RunError(
            f"parallel.ep={ep} must equal parallel.tp={tp} (experts are spread over the tensor-parallel chips) and "
            f"divide {model.name}'s {model.num_experts} experts"
        )
    if tp > cfg.hardware.max_chips:
        raise RunError(
            f"parallel.tp={tp} exceeds the {cfg.hardware.max_chips} chips one {cfg.hardware.name} fabric joins "
            "(hardware.max_chips); lower parallel.tp"
        )
    tokens = work.prompt_tokens + work.decode_tokens
    if tokens > model.max_context:
        raise RunError(
            f"workload.prompt_tokens + workload.decode_tokens = {tokens} exceeds {model.name}'s context of "
            f"{model.max_context} tokens; shorten the prompt or the generation"
        )
    if cfg.attention.kernel is AttentionKernel.fused:
        need = fused_attention_sram_bytes(model.head_dim, cfg.precision.activations.bytes)
        have = core_sram_bytes(cfg.hardware)
        if need > have:
            raise RunError(
                f"attention.kernel=fused keeps {FLASH_TILE}x{FLASH_TILE} tiles of Q, K, V and scores on chip: "
                f"{need / 1024:.0f} KiB per core, but {cfg.hardware.name} has {have / 1024:.0f} KiB per core; "
                "use attention.kernel=unfused or give the chip more SRAM"
            )
    for role, dtype in (("activations", cfg.precision.activations),):
        if not cfg.hardware.supports(dtype) and dtype.bits < 8:
            raise RunError(
                f"precision.{role}={dtype.value}: {cfg.hardware.name} has no {dtype.value} matrix units and "
                "sub-8-bit activations cannot be converted; use bf16 or fp8/int8 activations"
            )
