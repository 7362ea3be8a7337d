"""What a simulation hands back: one record per op executed, per-segment and per-pass spans."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.engine.costing import OpCost
from workloads.graph import Phase
from workloads.ops import Op


@dataclass(slots=True)
class OpRecord:
    """One op of one pass. ``count`` instances ran (repeated layers, times the ``steps`` decode steps a
    closed-form segment's mean step stands for); ``start_s``/``end_s`` are those of the first instance."""

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
    block: int = -1  # index of its segment's span in ``Timeline.segments``
    steps: int = 1  # decode steps its pass stands for (already in ``count``)
    model: str = ""  # the model whose pass it is (a speculative run's draft or target)

    @property
    def duration_s(self) -> float:
        """Time of one instance as simulated (with any contention)."""
        return self.end_s - self.start_s

    @property
    def total_s(self) -> float:
        return self.duration_s * self.count


@dataclass(slots=True)
class SegmentSpan:
    """One segment of a pass on one stage: its first instance ran from ``start_s`` to ``first_end_s``
    (events simulated), the other ``repeat - 1`` back to back until ``end_s`` (clock advanced)."""

    stage: int
    start_s: float
    first_end_s: float
    end_s: float
    repeat: int


@dataclass(slots=True)
class PassSpan:
    """One pass (on one stage, in ``Timeline.chip_passes``; or end to end, in ``Timeline.passes``).
    The device waited on the host from ``start_s`` to ``device_start_s`` (step overhead) and from
    ``device_end_s`` to ``end_s`` (dispatch stall)."""

    phase: Phase
    step: int
    start_s: float
    end_s: float
    host_s: float = 0.0  # time the device waited on the host: step overhead plus dispatch stalls
    stage: int = 0
    device_start_s: float | None = None  # None: no host spans recorded (the end-to-end span of a pipeline pass)
    device_end_s: float | None = None
    steps: int = 1  # decode steps the pass stands for: its first ran to ``first_end_s``, the others alike
    first_end_s: float | None = None  # end of the first step when ``steps > 1``

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
    segments: list[SegmentSpan] = field(default_factory=list)
    stage_passes: list[PassSpan] = field(default_factory=list)  # pipeline: each stage's share of each pass
    resources: tuple = ()  # the chip's declared resources (sim.engine.resources.Resource)

    @property
    def chip_passes(self) -> list[PassSpan]:
        """Pass spans per chip (stage): the stages' spans with a pipeline, else the passes."""
        return self.stage_passes or self.passes

    @property
    def end_s(self) -> float:
        return max((p.end_s for p in self.passes), default=0.0)


@dataclass(frozen=True)
class HostCosts:
    """The host software stack in seconds (see sim.config.schema.RuntimeConfig)."""

    dispatch_s: float = 0.0  # per kernel
    step_s: float = 0.0  # per pass, before its first kernel

    @classmethod
    def of(cls, runtime, host=None) -> HostCosts:
        """The host costs of a runtime preset (``sim.config.schema.RuntimeConfig``) on ``host``
        (``sim.config.system.HostConfig``), in seconds: stated for a host of single-thread score
        ``runtime.host_score``, scaled by ``runtime.host_score / host.single_thread_score`` (host work is
        single-threaded Python and C++ dispatch); unscaled where either score is unknown."""
        score = getattr(host, "single_thread_score", None)
        scale = runtime.host_score / score if runtime.host_score and score else 1.0
        return cls(runtime.host_dispatch_us * 1e-6 * scale, runtime.step_overhead_us * 1e-6 * scale)

    def pass_time(self, graph_kernels: int, device_s: float) -> float:
        """A pass's time: the step overhead, then the device or the dispatching host, the slower."""
        return self.step_s + max(device_s, graph_kernels * self.dispatch_s)
