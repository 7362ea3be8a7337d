"""How the model runs: fidelity, parallelism, number formats, attention, runtime, speculation, prices."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from hwmodels.numerics import DType
from sim.config.errors import RunError, check_at_most
from workloads.graph import AttentionKernel, MlaForm


class Fidelity(str, Enum):
    analytic = "analytic"  # per-op roofline costs, summed
    des = "des"  # the operator graph replayed on SimPy resources

MAX_OVERLAP_CHUNKS = 64  # more pieces than this are launch overhead, never overlap


# Expert-parallel load imbalance, measured: LMSYS (2025-05-05, "Deploying DeepSeek with PD Disaggregation and
# Large-scale Expert Parallelism on 96 H100 GPUs") ran DeepSeek-V3 prefill at EP32 at 50,302 tokens/s per node
# with its expert placement and at 59,337 with routing made perfectly balanced ("simulated perfect EPLB"): 1.18x.
# Only the routed experts wait on the busiest chip, so that chip's expert load over the mean is at least 1.18;
# the default is this lower bound (a run whose experts are a smaller share of the time needs more to lose 18 %).
# It holds with or without copies of hot experts in that placement (its serving recipe enables EPLB), so it is
# conservative for a run without them; parallel.moe_redundant_experts then shrinks it as moe.replicated_imbalance says.
MOE_IMBALANCE_EP = 1.18


@dataclass
class ParallelConfig:
    tp: int = 1  # tensor-parallel degree: chips that split every layer
    pp: int = 1  # pipeline stages: groups of tp chips, each running a contiguous share of the layers
    microbatches: int = 0  # pipeline micro-batches the batch is split into; 0: one per stage
    ep: int = 1  # expert-parallel degree for MoE models: 1, or a multiple of tp (whole experts over ep chips)
    # The busiest chip's expert tokens over the mean (>= 1; routing is rarely even); null: the measured
    # MOE_IMBALANCE_EP with expert parallelism, 1 without (every chip holds a slice of every expert).
    moe_imbalance: Optional[float] = None
    moe_redundant_experts: int = 0  # extra copies of hot experts spread over the EP chips (DeepSeek-V3: 32)
    dp: int = 1  # data-parallel replicas: independent copies serving their own batch each
    cp: int = 1  # context-parallel ranks (each a tp group): prefill splits the sequence over them, ring attention
    overlap_comm: bool = False  # overlap each TP all-reduce with the GEMM producing it, chunked (decomposed)
    overlap_chunks: int = 0  # pieces that GEMM is split into (1: none); 0: from the shapes (workloads.blocks)

    def expert_imbalance(self) -> float:
        """``moe_imbalance``, or its default: MOE_IMBALANCE_EP with expert parallelism, 1 without."""
        if self.moe_imbalance is not None:
            return self.moe_imbalance
        return MOE_IMBALANCE_EP if self.ep > 1 else 1.0

    def __post_init__(self) -> None:
        if self.tp < 1:
            raise RunError(f"parallel.tp must be >= 1 (got {self.tp})")
        if self.ep < 1 or self.pp < 1 or self.dp < 1 or self.cp < 1 or self.microbatches < 0:
            raise RunError(f"parallel.pp, parallel.ep, parallel.dp and parallel.cp must be >= 1 and "
                           f"parallel.microbatches >= 0 (got {self.pp}, {self.ep}, {self.dp}, {self.cp}, "
                           f"{self.microbatches})")
        if not 0 <= self.overlap_chunks <= MAX_OVERLAP_CHUNKS:
            raise RunError(f"parallel.overlap_chunks must be 0 (from the shapes) to {MAX_OVERLAP_CHUNKS} "
                           f"(got {self.overlap_chunks})")
        if self.overlap_chunks and not self.overlap_comm:
            raise RunError(f"parallel.overlap_chunks={self.overlap_chunks} splits GEMMs for overlap; "
                           "set parallel.overlap_comm=true with it, or leave it at 0")
        if self.moe_redundant_experts < 0:
            raise RunError(f"parallel.moe_redundant_experts must be >= 0 (got {self.moe_redundant_experts})")
        if self.moe_imbalance is not None and not self.moe_imbalance >= 1:  # NaN too
            raise RunError(f"parallel.moe_imbalance must be >= 1 (got {self.moe_imbalance}); 1 means even routing")
        for key, limit, why in (
            ("tp", 1e6, "chips; the largest pods join 8,960"),
            ("pp", 1e4, "stages; a stage holds at least one layer"),
            ("dp", 1e6, "replicas; the largest clusters have a few hundred thousand chips"),
            ("ep", 1e6, "chips; the largest pods join 8,960"),
            ("cp", 1024, "ranks; Meta's million-token prefill used 16 nodes (arXiv 2411.01783)"),
            ("microbatches", 1e6, "a micro-batch holds at least one sequence"),
            ("moe_imbalance", 1e3, "the busiest expert over the mean; at most the number of experts"),
            ("moe_redundant_experts", 1e4, "expert copies; DeepSeek-V3 deploys 32 beside its 256"),
        ):
            check_at_most(f"parallel.{key}", getattr(self, key), limit, why)


class KvOffload(str, Enum):
    """Where the KV cache goes when HBM is full."""

    none = "none"  # nowhere: a run that does not fit is an error
    host = "host"  # the host's memory, over the chip's host link (PCIe, or NVLink-C2C on Grace parts)


@dataclass
class MemoryConfig:
    """A second memory tier for the KV cache (single-batch runs).

    With ``kv_offload=host`` the KV cache that does not fit in HBM beside the weights and the
    activations lives in host memory; every layer keeps the same share of every sequence there, so
    each decode step reads that share over the host link (an op's ``host`` resource, time by bound
    ``interconnect``) while the rest comes from HBM at the same time (zero-copy reads, or a prefetch
    overlapped with the attention kernel), and the prefill writes it there. ``host_bandwidth_GBps``
    per direction defaults to the chip's host link (``hardware.host_link_GBps``: PCIe 5.0 x16 64 GB/s
    on H100/H200; NVLink-C2C 450 GB/s per direction on GH200/GB200, NVIDIA Grace Hopper datasheet 2023).
    """

    kv_offload: KvOffload = KvOffload.none
    host_bandwidth_GBps: Optional[float] = None  # per direction; null: hardware.host_link_GBps
    # Host memory per chip for spilled KV: DGX H100 and DGX H200 have 2 TB of system memory for 8 GPUs
    # (DGX H100 datasheet 2023, DGX H200 datasheet 2024): 256 GB per GPU.
    host_capacity_GB: float = 256.0

    def __post_init__(self) -> None:
        if self.host_bandwidth_GBps is not None and not self.host_bandwidth_GBps > 0:
            raise RunError(f"memory.host_bandwidth_GBps must be > 0 (got {self.host_bandwidth_GBps})")
        if not self.host_capacity_GB >= 0:
            raise RunError(f"memory.host_capacity_GB must be >= 0 (got {self.host_capacity_GB})")
        check_at_most("memory.host_bandwidth_GBps", self.host_bandwidth_GBps, 1e5, "GB/s; NVLink-C2C gives 450")
        check_at_most("memory.host_capacity_GB", self.host_capacity_GB, 1e6, "GB per chip; hosts hold a few TB")


@dataclass
class PrecisionConfig:
    """Number formats. Weights narrower than activations (int4/int8 weights with 16-bit
    activations, as GPTQ/AWQ) are dequantized in the GEMM; weights and activations both in
    8 bits (SmoothQuant, FP8 serving) use the chip's 8-bit matrix rate. Integer weights carry
    one fp16 scale per ``group_size`` weights; fp4 weights are MXFP4, one 8-bit scale per 32
    (``workloads.graph.MX_BLOCK``); embeddings, LM head and norm scales stay in 16 bits."""

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
    """The attention kernel and the KV cache's layout, for single-batch and serving runs alike.

    ``kv_block_tokens`` is the one KV block size: a paged cache (vLLM's PagedAttention, Kwon et al.
    SOSP 2023) holds each sequence in whole blocks, so memory is counted in blocks and a decode
    reads whole blocks (the last one partly empty); a serving run's cache hands out these blocks.
    0 is a contiguous cache (single-batch runs only).
    """

    kernel: AttentionKernel = AttentionKernel.fused
    kv_block_tokens: int = 16  # tokens per KV cache block (vLLM's default block size); 0: contiguous
    mla_form: MlaForm = MlaForm.auto  # MLA models: naive prefill and absorbed decode (auto), or one form throughout

    def __post_init__(self) -> None:
        if self.kv_block_tokens < 0:
            raise RunError(f"attention.kv_block_tokens must be >= 0 (got {self.kv_block_tokens})")
        check_at_most("attention.kv_block_tokens", self.kv_block_tokens, 1e6, "tokens per KV block; vLLM uses 16")


@dataclass
class RuntimeConfig:
    """The host software stack: what the CPU spends per kernel and per pass.

    With CUDA graphs (or XLA) a pass is launched as one program and the host costs nothing
    per kernel (the chip's ``kernel_overhead_us`` remains). An eager framework dispatches every
    kernel from Python: ``host_dispatch_us`` each, in order, while the device runs ahead
    asynchronously; a pass then takes ``step_overhead_us + max(device time, kernels x
    host_dispatch_us)``.

    Host time belongs to the host, not the chip: the two costs are as measured on a host whose
    single-thread score is ``host_score`` and scale as ``host_score / system.host.single_thread_score``
    on another (sim/engine/records.py HostCosts.of). The stack also decides whether collectives may
    reduce in the switch (NVLS needs NCCL >= 2.17, 2023) and which attention family it ships
    (``attention_kernel``; ``attention.kernel=fused`` then means that family).
    """

    name: str = "graphs"
    fused_elementwise: bool = True  # residual adds fused into norms, rotary into attention (see workloads/graph.py)
    host_dispatch_us: float = 0.0  # host time to dispatch one kernel
    step_overhead_us: float = 0.0  # host work per pass before the first kernel (scheduling, inputs)
    host_score: Optional[float] = None  # single-thread score of the host the costs are stated for; null: any host
    in_switch_reduction: bool = True  # the collective library may reduce in the switch (NCCL NVLS) where it can
    attention_kernel: AttentionKernel = AttentionKernel.fused  # the attention family the stack ships; fused: any
    quantized_gemm_inputs: bool = False  # 8-bit weights mean 8-bit GEMM inputs, 16-bit elsewhere (TensorRT-LLM fp8)

    def __post_init__(self) -> None:
        if self.host_score is not None and not self.host_score > 0:
            raise RunError(f"runtime.host_score must be > 0 (got {self.host_score})")
        for key in ("host_dispatch_us", "step_overhead_us"):
            if not getattr(self, key) >= 0:
                raise RunError(f"runtime.{key} must be >= 0 (got {getattr(self, key)})")
            check_at_most(f"runtime.{key}", getattr(self, key), 1e6, "microseconds; a second of host work per "
                          "kernel or pass is no runtime")


@dataclass
class SpeculativeConfig:
    """Speculative decoding: a draft model proposes ``k`` tokens, the target checks them in one pass."""

    draft_model: Optional[str] = None  # a model preset name (conf/model/); null: off
    k: int = 4  # tokens drafted per step
    acceptance: float = 0.7  # probability that each drafted token is accepted

    def __post_init__(self) -> None:
        if self.k < 1:
            raise RunError(f"speculative.k must be >= 1 (got {self.k})")
        check_at_most("speculative.k", self.k, 1024, "drafted tokens per step; drafts beyond ~10 are rarely accepted")
        if not 0 <= self.acceptance <= 1:
            raise RunError(f"speculative.acceptance must be in [0, 1] (got {self.acceptance})")


@dataclass
class PowerConfig:
    """The board power budget (hwmodels/power.py).

    ``cap``: matrix kernels whose power at the boost clock would exceed ``hardware.board_power_W``
    run at the lower sustained clock that fits it (the summary's ``power.sustained_clock_GHz`` and
    ``power.power_limited``); false: every kernel runs at ``hardware.freq_GHz`` whatever it draws
    (what the chip would draw unthrottled, for comparing with its TDP).
    """

    cap: bool = True


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
        for key, limit, why in (
            ("usd_per_kWh", 1e3, "electricity costs cents per kWh"),
            ("usd_per_chip_hour", 1e6, "GPUs rent for a few dollars an hour"),
            ("amortisation_years", 100.0, "chips are written off over 3-6 years"),
            ("price_markup", 1e3, "the price over the cost to make; a few times at most"),
        ):
            check_at_most(f"cost.{key}", getattr(self, key), limit, why)
        if not 0 < self.utilisation <= 1:
            raise RunError(f"cost.utilisation must be in (0, 1] (got {self.utilisation})")
