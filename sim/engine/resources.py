"""The chip's resources, declared once, and the processor-sharing servers that model them.

``RESOURCES`` is the one declaration of what a chip has: the compute arrays, the vector unit,
HBM and the links. Each ``Resource`` names itself, says how to label it (trace tracks, charts),
which bound its seconds count toward, and how many full-rate seconds of work one op puts on it
(from the op's ``OpCost``). The engine (both fidelities), the bounds, the trace and the charts
iterate this tuple; a new resource (a second memory tier, an on-package network) is one more
``Resource`` whose ``price`` computes its seconds per op (``Coster`` stores them in
``OpCost.extra_s``), passed to ``sim.batch.run.simulate(cfg, resources=...)``.

A compute unit, HBM or a link is shared, not queued: with n jobs in service each progresses at
1/n of the full rate. Work is measured in seconds at the full rate (an op's compute_s,
memory_s, link_transfer_s), so one server class serves every resource.

Virtual-time implementation: V(t) advances at rate 1/n while n > 0 jobs are in service; a job
of work w arriving at V finishes when V reaches V + w. Jobs sit in a heap by finish tag, so an
arrival or a departure costs O(log n). The next departure is a SimPy timeout; when an arrival
changes n, a fresh timeout is scheduled and the stale one is ignored when it fires.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import simpy

from hwmodels.chip import HardwareConfig
from hwmodels.numerics import DType
from sim.engine.costing import Bound, OpCost
from workloads.ops import Op, Unit


@dataclass(frozen=True)
class Resource:
    """One resource of the chip.

    Attributes:
        name: key in ``Timeline.busy_s`` and the summary's ``busy_fraction``.
        label: the trace track and chart label.
        bound: the bound its seconds count toward.
        work: full-rate seconds one op needs on it, from the op and its cost.
        price: for a resource beyond the built-in four, ``price(chip, op)`` in seconds, computed once
            per distinct op by ``Coster`` into ``OpCost.extra_s``; None for the built-ins.
        unit_of_work: what ``amount`` counts (FLOP, bytes).
        amount: units of work one op puts on it (for utilisation); None: not reported.
        peak_per_s: ``peak_per_s(chip, activations)``, its peak rate in units of work per second.
    """

    name: str
    label: str
    bound: Bound
    work: Callable[[Op, OpCost], float]
    price: Callable | None = None
    unit_of_work: str = ""
    amount: Callable[[Op, OpCost], float] | None = None
    peak_per_s: Callable[[HardwareConfig, DType], float] | None = None

    @classmethod
    def extra(cls, name: str, label: str, bound: Bound, price: Callable, unit_of_work: str = "") -> Resource:
        """A resource beyond the built-ins: its seconds per op come from ``price(chip, op)``."""
        return cls(name, label, bound, lambda _op, cost: cost.extra(name), price, unit_of_work)


def _matrix_s(op: Op, cost: OpCost) -> float:
    return cost.compute_s if op.unit is Unit.matrix else 0.0


def _vector_s(op: Op, cost: OpCost) -> float:
    return 0.0 if op.unit is Unit.matrix else cost.compute_s


RESOURCES: tuple[Resource, ...] = (
    Resource("matrix", "compute arrays", Bound.compute, _matrix_s, unit_of_work="FLOP",
             amount=lambda op, _c: op.flops if op.unit is Unit.matrix else 0.0,
             peak_per_s=lambda chip, activations: chip.peak_flops(activations)),
    Resource("vector", "vector unit", Bound.compute, _vector_s, unit_of_work="FLOP",
             amount=lambda op, _c: 0.0 if op.unit is Unit.matrix else op.flops,
             peak_per_s=lambda chip, _a: chip.vector_flops),
    Resource("hbm", "HBM", Bound.memory, lambda _op, cost: cost.memory_s, unit_of_work="bytes",
             amount=lambda _op, cost: cost.hbm_bytes, peak_per_s=lambda chip, _a: chip.hbm_bandwidth_Bps),
    Resource("link", "links", Bound.interconnect, lambda op, cost: 0.0 if op.comm_nodes > 1 else cost.link_transfer_s,
             unit_of_work="bytes", amount=lambda op, cost: 0.0 if op.comm_nodes > 1 else cost.link_bytes,
             peak_per_s=lambda chip, _a: chip.link_bandwidth_Bps),
)
# The chip's NIC to the scale-out network: the transfer of an op whose chips span scale-up domains
# (``Op.comm_nodes > 1``: hwmodels/network.py) runs here, beside the chip's own fabric. Declared by
# sim.batch.run.simulate only for runs whose layout spans domains.
NIC = Resource("nic", "scale-out NIC", Bound.interconnect,
               lambda op, cost: cost.link_transfer_s if op.comm_nodes > 1 else 0.0, unit_of_work="bytes")


def host_tier(bandwidth_Bps: float) -> Resource:
    """The host memory tier holding the spilled KV cache (``memory.kv_offload=host``): an op's host bytes
    (``Op.host_bytes``) over the host link's per-direction bandwidth. Its seconds count as
    ``interconnect``: the link to the host, not the DRAM behind it, sets them."""
    return Resource("host", "host memory tier", Bound.interconnect, lambda _op, cost: cost.extra("host"),
                    price=lambda _chip, op: op.host_bytes / bandwidth_Bps, unit_of_work="bytes",
                    amount=lambda op, _c: op.host_bytes, peak_per_s=lambda _chip, _a: bandwidth_Bps)


def utilisation(timeline, chip: HardwareConfig, activations: DType, stages: int = 1) -> dict[str, float]:
    """Achieved rate over the whole run over the peak, per declared resource that reports one
    (per chip: the mean over ``stages``); matrix FLOPs against the peak at the activation format."""
    total = timeline.end_s
    out = {}
    for res in timeline.resources:
        if res.amount is None or res.peak_per_s is None:
            continue
        done = sum(res.amount(r.op, r.cost) * r.count for r in timeline.records) / stages
        out[res.name] = done / (res.peak_per_s(chip, activations) * total) if total else 0.0
    return out

class SharedServer:
    """A processor-sharing server with capacity 1 (full-rate seconds per second)."""

    __slots__ = ("env", "name", "_heap", "_vtime", "_last", "_seq", "_token", "busy_s", "work_s", "shared")

    def __init__(self, env: simpy.Environment, name: str) -> None:
        self.env = env
        self.name = name
        self._heap: list[tuple[float, int, simpy.Event]] = []
        self._vtime = 0.0
        self._last = 0.0
        self._seq = 0
        self._token = 0
        self.busy_s = 0.0  # wall time with at least one job in service
        self.work_s = 0.0  # full-rate seconds of work served
        self.shared = 0  # jobs submitted while another was in service (none: busy time is the work)

    def submit(self, work_s: float) -> simpy.Event:
        """An event that fires when ``work_s`` full-rate seconds of work have been served."""
        done = self.env.event()
        self._advance()
        self.shared += bool(self._heap)
        heapq.heappush(self._heap, (self._vtime + work_s, self._seq, done))
        self._seq += 1
        self.work_s += work_s
        self._schedule()
        return done

    def add_repeat(self, busy_s: float, work_s: float) -> None:
        """Account for a stretch of identical work replayed without events (repeated layers)."""
        self.busy_s += busy_s
        self.work_s += work_s

    @property
    def active(self) -> int:
        return len(self._heap)

    def _advance(self) -> None:
        now = self.env.now
        if self._heap:
            elapsed = now - self._last
            self._vtime += elapsed / len(self._heap)
            self.busy_s += elapsed
        self._last = now

    def _schedule(self) -> None:
        self._token += 1
        if not self._heap:
            return
        token = self._token
        delay = max(0.0, (self._heap[0][0] - self._vtime) * len(self._heap))
        self.env.timeout(delay).callbacks.append(lambda _event: self._depart(token))

    def _depart(self, token: int) -> None:
        if token != self._token:
            return  # superseded by a later arrival or departure
        self._advance()
        # done within rounding; or within the clock's resolution at ``now``: a job whose rest would end less than an
        # ulp of ``now`` later never lets time advance (a run of days on a very slow chip looped here for ever)
        tolerance = max(1e-12 * max(1.0, self._vtime), math.ulp(self.env.now) * 2 / max(1, len(self._heap)))
        while self._heap and self._heap[0][0] <= self._vtime + tolerance:
            heapq.heappop(self._heap)[2].succeed()
        self._schedule()


class ChipResources:
    """The shared resources of one chip (with tensor parallelism, one representative chip): a
    server per declared resource, in declaration order."""

    def __init__(self, env: simpy.Environment, resources: tuple[Resource, ...] = RESOURCES) -> None:
        self.resources = resources
        self._servers = tuple(SharedServer(env, r.name) for r in resources)

    def servers(self) -> tuple[SharedServer, ...]:
        return self._servers

    def server(self, name: str) -> SharedServer:
        """The server of the resource called ``name``."""
        return self._servers[[r.name for r in self.resources].index(name)]

    def snapshot(self) -> list[tuple[float, float]]:
        return [(s.busy_s, s.work_s) for s in self.servers()]
