"""The run configuration: Hydra schema, registration and cross-field validation.

``conf/config.yaml`` names these dataclasses as its schema, so Hydra rejects an unknown key or
a wrong type at composition; ``OmegaConf.to_object`` then builds the dataclasses, whose
``__post_init__`` rejects impossible values. ``check_run`` checks what involves several parts
(does the tensor-parallel degree divide the heads, does the model fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

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
class OutputConfig:
    write_files: bool = True  # summary.json, ops.parquet, ops.csv, config.yaml
    print_summary: bool = True


@dataclass
class RunConfig:
    hardware: HardwareConfig = MISSING
    model: ModelConfig = MISSING
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    fidelity: Fidelity = Fidelity.des
    seed: int = 0
    name: str = "default"  # names the sweep folder: results/sweeps/<name>/...
    output: OutputConfig = field(default_factory=OutputConfig)

    def execution(self) -> Execution:
        return Execution(self.precision.weights, self.precision.activations, self.precision.kv_cache,
                         self.attention.kernel, self.parallel.tp)


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
