"""The run configuration: Hydra schema, registration and cross-field validation.

``conf/config.yaml`` names these dataclasses as its schema, so Hydra rejects an unknown key or
a wrong type at composition; ``OmegaConf.to_object`` then builds the dataclasses, whose
``__post_init__`` rejects impossible values. ``check_run`` checks what involves several parts
(does the tensor-parallel degree divide the heads, does the model fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

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


@dataclass
class WorkloadConfig:
    kind: WorkloadKind = WorkloadKind.single_batch
    batch: int = 1  # sequences processed together
    prompt_tokens: int = 512  # prompt length per sequence
    decode_tokens: int = 128  # tokens generated per sequence (the first comes from the prefill)

    def __post_init__(self) -> None:
        for key in ("batch", "prompt_tokens", "decode_tokens"):
            value = getattr(self, key)
            if value < 1:
                raise RunError(f"workload.{key} must be >= 1 (got {value})")


@dataclass
class ParallelConfig:
    tp: int = 1  # tensor-parallel degree: chips that split every layer

    def __post_init__(self) -> None:
        if self.tp < 1:
            raise RunError(f"parallel.tp must be >= 1 (got {self.tp})")


@dataclass
class PrecisionConfig:
    weights: DType = DType.bf16
    activations: DType = DType.bf16
    kv_cache: DType = DType.bf16


@dataclass
class AttentionConfig:
    kernel: AttentionKernel = AttentionKernel.fused


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
    pareto: list[str] = field(default_factory=list)  # [x metric, y metric]; empty: cost or power or ttft vs tokens/s


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
class RunConfig:
    hardware: HardwareConfig = MISSING
    model: ModelConfig = MISSING
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    cost: CostConfig = field(default_factory=CostConfig)  # prices for energy and cost figures
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    fidelity: Fidelity = Fidelity.des
    seed: int = 0
    name: str = "default"  # names the sweep folder: results/sweeps/<name>/...
    output: OutputConfig = field(default_factory=OutputConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)

    def execution(self) -> Execution:
        return Execution(self.precision.weights, self.precision.activations, self.precision.kv_cache,
                         self.attention.kernel, self.parallel.tp, self.runtime.fused_elementwise)


def register_configs() -> None:
    """Register the schema with Hydra's ConfigStore (idempotent)."""
    ConfigStore.instance().store(name="llmsim_schema", node=RunConfig)


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
    for role, dtype in (("activations", cfg.precision.activations),):
        if not cfg.hardware.supports(dtype) and dtype.bits < 8:
            raise RunError(
                f"precision.{role}={dtype.value}: {cfg.hardware.name} has no {dtype.value} matrix units and "
                "sub-8-bit activations cannot be converted; use bf16 or fp8/int8 activations"
            )
