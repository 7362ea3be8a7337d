"""What a simulation hands back: one record per op executed, and per-pass spans."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.engine.costing import OpCost
from workloads.graph import Phase
from workloads.ops import Op


@dataclass(slots=True)
class OpRecord:
    """One op of one pass. ``count`` identical instances ran back to back (repeated layers);
    ``start_s``/``end_s`` are those of the first instance."""

    phase: Phase
    step: int
    segment: str
    op: Op
    cost: OpCost
    start_s: float
    end_s: float
    count: int
    stage: int = 0  # pipeline stage (chip group) that ran it
    microbatch: int = 0

    @property
    def duration_s(self) -> float:
        """Time of one instance as simulated (with any contention)."""
        return self.end_s - self.start_s

    @property
    def total_s(self) -> float:
        return self.duration_s * self.count


@dataclass(slots=True)
class PassSpan:
    phase: Phase
    step: int
    start_s: float
    end_s: float
    host_s: float = 0.0  # time the device waited on the host: step overhead plus dispatch stalls

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class Timeline:
    """The result of replaying passes on a chip, by either fidelity."""

    records: list[OpRecord] = field(default_factory=list)
    passes: list[PassSpan] = field(default_factory=list)
    busy_s: dict[str, float] = field(default_factory=dict)  # per resource: time with work in service
    events: int = 0  # SimPy events processed (0 for the analytic path)
    stage_busy_s: list[float] = field(default_factory=list)  # pipeline: time each stage was running a micro-batch

    @property
    def end_s(self) -> float:
        return max((p.end_s for p in self.passes), default=0.0)


@dataclass(frozen=True)
class HostCosts:
    """The host software stack in seconds (see sim.config.schema.RuntimeConfig)."""

    dispatch_s: float = 0.0  # per kernel
    step_s: float = 0.0  # per pass, before its first kernel

    @classmethod
    def of(cls, runtime) -> HostCosts:
        """The host costs of a runtime preset (``sim.config.schema.RuntimeConfig``), in seconds."""
        return cls(runtime.host_dispatch_us * 1e-6, runtime.step_overhead_us * 1e-6)

    def pass_time(self, graph_kernels: int, device_s: float) -> float:
        """A pass's time: the step overhead, then the device or the dispatching host, the slower."""
        return self.step_s + max(device_s, graph_kernels * self.dispatch_s)
