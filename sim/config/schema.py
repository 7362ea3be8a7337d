"""The run configuration: its parts, the tools' settings beside it, and Hydra registration.

``conf/config.yaml`` names :class:`AppConfig` as its schema, so Hydra rejects an unknown key or a
wrong type at composition; ``OmegaConf.to_object`` then builds the dataclasses, whose
``__post_init__`` rejects impossible values. :class:`RunConfig` is what a simulation reads:
every field of it may change the numbers, and nothing else does (a sweep point's reuse key
hashes exactly these fields). :class:`AppConfig` adds the settings of the tools around a run
(``name``, ``output``, ``sweep``, ``search``) at the same top level, so command lines such as
``output.print_summary=false`` or ``sweep.rerun=true`` keep their spelling;
``sim.config.compose.to_run_config`` splits them off. ``check_run`` (sim/config/checks.py)
checks what involves several parts.

The parts live by subject: sim/config/workload.py (workload, scheduler, latency targets),
execution.py (fidelity, parallelism, formats, attention, runtime, speculation, prices),
system.py (chips per node, host, fabrics), tools.py (output, sweep, search); this module
re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from hwmodels.chip import HardwareConfig
from sim.config.checks import FLASH_TILE, check_run, core_sram_bytes, fused_attention_sram_bytes
from sim.config.errors import RunError
from sim.config.execution import (
    AttentionConfig,
    CostConfig,
    Fidelity,
    KvOffload,
    MemoryConfig,
    ParallelConfig,
    PowerConfig,
    PrecisionConfig,
    RuntimeConfig,
    SpeculativeConfig,
)
from sim.config.placement import attention_groups, ep_domains
from sim.config.system import HostConfig, ScaleOutConfig, ScaleUpConfig, SystemConfig
from sim.config.tools import OutputConfig, SearchConfig, SweepConfig
from sim.config.workload import (
    Admission,
    ArrivalProcess,
    LengthDistribution,
    Preemption,
    RouterConfig,
    RouterKind,
    SchedulerConfig,
    SchedulerKind,
    SloConfig,
    TraceName,
    WorkloadConfig,
    WorkloadKind,
)
from workloads.graph import AttentionKernel, Execution
from workloads.model import ModelConfig

__all__ = [
    "FLASH_TILE", "Admission", "AppConfig", "ArrivalProcess", "AttentionConfig", "CostConfig", "Fidelity",
    "HostConfig", "KvOffload", "LengthDistribution", "MemoryConfig", "OutputConfig", "ParallelConfig",
    "PowerConfig", "Preemption", "PrecisionConfig", "RouterConfig", "RouterKind", "RunConfig", "RunError",
    "RuntimeConfig", "ScaleOutConfig", "ScaleUpConfig", "SchedulerConfig", "SchedulerKind", "SearchConfig",
    "SloConfig", "SpeculativeConfig", "SweepConfig", "SystemConfig", "TraceName", "WorkloadConfig", "WorkloadKind",
    "check_run", "core_sram_bytes", "fused_attention_sram_bytes", "register_configs", "run_fields",
]


@dataclass
class RunConfig:
    """One simulation: every field may change its numbers."""

    hardware: HardwareConfig = MISSING  # the chip
    model: ModelConfig = MISSING
    system: SystemConfig = field(default_factory=SystemConfig)  # the chip's node, host and fabrics
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    cost: CostConfig = field(default_factory=CostConfig)  # prices for energy and cost figures
    power: PowerConfig = field(default_factory=PowerConfig)  # the board power budget's cap on the clock
    memory: MemoryConfig = field(default_factory=MemoryConfig)  # a second tier for the KV cache (batch runs)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    speculative: SpeculativeConfig = field(default_factory=SpeculativeConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)  # serving runs only
    router: RouterConfig = field(default_factory=RouterConfig)  # serving runs with replicas (parallel.dp > 1)
    slo: SloConfig = field(default_factory=SloConfig)  # serving runs only
    fidelity: Fidelity = Fidelity.des
    seed: int = 0

    def execution(self) -> Execution:
        """What the operator graphs need of this config (workloads.graph.Execution)."""
        p = self.precision
        return Execution(weights=p.weights, activations=p.activations, kv_cache=p.kv_cache,
                         attention=self.attention_kernel(), tp=self.parallel.tp,
                         fused_elementwise=self.runtime.fused_elementwise, group_size=p.group_size,
                         ep=self.parallel.ep, cp=self.parallel.cp, moe_imbalance=self.parallel.expert_imbalance(),
                         attention_groups=attention_groups(self.parallel.tp, self.parallel.ep),
                         ep_nodes=ep_domains(self.parallel.ep, self.hardware.max_chips),
                         moe_redundant_experts=self.parallel.moe_redundant_experts,
                         kv_block_tokens=self.attention.kv_block_tokens, overlap_comm=self.parallel.overlap_comm,
                         overlap_chunks=self.parallel.overlap_chunks, mla_form=self.attention.mla_form,
                         overlap_min_chunk_bytes=self._overlap_min_chunk_bytes(),
                         quantized_gemm_inputs=self.runtime.quantized_gemm_inputs)

    def attention_kernel(self) -> AttentionKernel:
        """The attention family that runs: ``attention.kernel``, or the runtime's family where that is ``fused``."""
        kernel = self.attention.kernel
        return self.runtime.attention_kernel if kernel is AttentionKernel.fused else kernel

    def _overlap_min_chunk_bytes(self) -> float:
        """Bytes per piece of a chunked all-reduce below which overlap splits stop paying: the payload
        from which the chip's collectives run within 10 % of their plateau bandwidth (the ramp of
        hwmodels/links.py, ``sqrt(1 + (saturation / size) ** (2 e)) = 1.1``); Execution's default
        without a ramp."""
        hw = self.hardware
        if not hw.link_ramp_exponent:
            return Execution.overlap_min_chunk_bytes
        return hw.link_saturation_MB * 1e6 * (1 / (1.1**2 - 1)) ** (1 / (2 * hw.link_ramp_exponent))


@dataclass
class AppConfig(RunConfig):
    """What the commands compose (conf/config.yaml): the run's parts and, beside them, the tools'."""

    name: str = "default"  # names the sweep folder: results/sweeps/<name>/...
    calibration: str = ""  # a fit from llmsim-calibrate for the fitted chip fields no preset sets; "": shipped
    output: OutputConfig = field(default_factory=OutputConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    search: SearchConfig = field(default_factory=SearchConfig)  # llmsim-search only (sim/studies/search/)

    def __post_init__(self) -> None:
        if problem := name_problem(self.name):
            raise RunError(problem)

    def run_config(self) -> RunConfig:
        """The run's part of this config (the same part objects, not copies)."""
        return RunConfig(**{name: getattr(self, name) for name in run_fields()})


def name_problem(name) -> str | None:
    """Why ``name`` cannot name a folder under results/ (empty, a path, or '.'/'..'), or None."""
    text = str(name)
    if not text.strip() or "/" in text or "\\" in text or text in (".", ".."):
        return (f"name={text!r} must be one folder name (it names results/sweeps/<name>/...): not empty, without "
                "'/' and not '.' or '..'")
    return None


def run_fields() -> tuple[str, ...]:
    """The top-level keys of the run's part of the config: what a sweep point's key hashes."""
    return tuple(f.name for f in fields(RunConfig))


def register_configs() -> None:
    """Register the schema with Hydra's ConfigStore (idempotent)."""
    ConfigStore.instance().store(name="llmsim_schema", node=AppConfig)
