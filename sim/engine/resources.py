"""Chip resources for the discrete-event engine: processor-sharing servers.

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

import simpy


class SharedServer:
    """A processor-sharing server with capacity 1 (full-rate seconds per second)."""

    __slots__ = ("env", "name", "_heap", "_vtime", "_last", "_seq", "_token", "busy_s", "work_s")

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

    def submit(self, work_s: float) -> simpy.Event:
        """An event that fires when ``work_s`` full-rate seconds of work have been served."""
        done = self.env.event()
        self._advance()
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
        tolerance = 1e-12 * max(1.0, self._vtime)
        while self._heap and self._heap[0][0] <= self._vtime + tolerance:
            heapq.heappop(self._heap)[2].succeed()
        self._schedule()


class ChipResources:
    """The shared resources of one chip (with tensor parallelism, one representative chip)."""

    NAMES = ("matrix", "vector", "hbm", "link")

    def __init__(self, env: simpy.Environment) -> None:
        self.matrix = SharedServer(env, "matrix")
        self.vector = SharedServer(env, "vector")
        self.hbm = SharedServer(env, "hbm")
        self.link = SharedServer(env, "link")

    def servers(self) -> tuple[SharedServer, ...]:
        return (self.matrix, self.vector, self.hbm, self.link)

    def snapshot(self) -> list[tuple[float, float]]:
        return [(s.busy_s, s.work_s) for s in self.servers()]
