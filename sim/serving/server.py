"""The server as SimPy processes: requests arrive, the chip runs one scheduler step after another.

Two processes share an environment:

* arrivals: each request joins the scheduler's queue at its arrival time (a closed loop has no
  arrival process: its first ``users`` requests arrive at time 0 and each completion sends the
  next request at once);
* the engine: asks the scheduler for a step, holds the chip for the step's time (host-link
  copies of a preemption by swapping first), applies the step, and records completions; when
  there is nothing to do it sleeps until the next arrival.

Events are arrivals, steps and completions, so a run's cost grows with the scheduler steps, not
with layers or ops. Alongside, the server integrates over time the number of requests waiting
for their first admission and the number in the system (for Little's law), and records one row
per step (its time, batch, tokens, KV-cache use, queue).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterator

import simpy

from sim.serving.request import Request
from sim.serving.schedulers import Scheduler, StepShape
from sim.serving.step_cost import StepCost
from sim.serving.traffic import Traffic


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes."""

    def __init__(self) -> None:
        super().__init__()
        self.events_processed = 0

    def step(self) -> None:
        super().step()
        self.events_processed += 1


class Server:
    """One serving run on one chip (or one tensor-parallel group)."""

    def __init__(self, traffic: Traffic, scheduler: Scheduler, cost: Callable[[StepShape], StepCost]) -> None:
        self.traffic, self.scheduler, self.cost = traffic, scheduler, cost
        self.env = CountingEnvironment()
        self.requests: list[Request] = []
        self.completed = 0
        self.steps: dict[str, list] = defaultdict(list)
        self.busy_s = 0.0  # chip time spent in steps (copies included)
        self.dynamic_J = 0.0  # per chip, summed over steps
        self.matrix_flops = self.hbm_bytes = 0.0
        self.queue_area = self.system_area = 0.0  # request-seconds waiting for admission / in the system
        self._queued = self._in_system = 0
        self._last_change = 0.0
        self._next_closed = 0
        self._wake: simpy.Event | None = None

    def run(self) -> None:
        """Simulate until every request has completed."""
        if self.traffic.users:
            for _ in range(min(self.traffic.users, len(self.traffic))):
                self._arrive(self._make(self._next_closed, 0.0))
                self._next_closed += 1
        else:
            self.env.process(self._arrivals())
        self.env.process(self._engine())
        self.env.run()

    @property
    def events(self) -> int:
        return self.env.events_processed

    # Processes ----------------------------------------------------------------------------------
    def _arrivals(self) -> Iterator[simpy.Event]:
        env, t = self.env, self.traffic
        for i in range(len(t)):
            at = float(t.arrival_s[i])
            if at > env.now:
                yield env.timeout(at - env.now)
            self._arrive(self._make(i, at))

    def _engine(self) -> Iterator[simpy.Event]:
        env, scheduler, n = self.env, self.scheduler, len(self.traffic)
        while self.completed < n:
            plan = scheduler.plan(env.now)
            if plan is None:
                self._wake = env.event()
                yield self._wake
                continue
            start = env.now
            cost = self.cost(plan.shape) if plan.shape is not None else None
            if plan.admitted:
                self._count(-len(plan.admitted), 0)
            duration = plan.swap_s + (cost.time_s if cost else 0.0)
            made = len(plan.decodes) + sum(1 for r, new in plan.prefills if r.prefilled + new >= r.prefill_target)
            yield env.timeout(duration)
            done = scheduler.complete(plan, env.now)
            self.busy_s += duration
            if cost:
                self.dynamic_J += cost.dynamic_J
                self.matrix_flops += cost.matrix_flops
                self.hbm_bytes += cost.hbm_bytes
            self._record(start, plan, cost, made)
            if done:
                self.completed += len(done)
                self._count(0, -len(done))
                for _ in done:
                    if self.traffic.users and self._next_closed < n:
                        self._arrive(self._make(self._next_closed, env.now))
                        self._next_closed += 1

    # Bookkeeping --------------------------------------------------------------------------------
    def _make(self, i: int, at: float) -> Request:
        t = self.traffic
        req = Request(i, at, int(t.prompt_tokens[i]), int(t.output_tokens[i]), int(t.rows[i]))
        self.requests.append(req)
        return req

    def _arrive(self, req: Request) -> None:
        self._count(1, 1)
        self.scheduler.add(req)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _count(self, queued: int, in_system: int) -> None:
        now = self.env.now
        elapsed = now - self._last_change
        self.queue_area += self._queued * elapsed
        self.system_area += self._in_system * elapsed
        self._last_change = now
        self._queued += queued
        self._in_system += in_system

    def _record(self, start: float, plan, cost: StepCost | None, made: int) -> None:
        s, shape, kv = self.steps, plan.shape, self.scheduler.kv
        s["start_s"].append(start)
        s["end_s"].append(self.env.now)
        s["prefill_sequences"].append(len(shape.chunks) if shape else 0)
        s["prefill_tokens"].append(sum(new for new, _ in shape.chunks) if shape else 0)
        s["decode_sequences"].append(shape.decodes if shape else 0)
        s["batch_size"].append(len(shape.chunks) + shape.decodes if shape else 0)
        s["tokens_made"].append(made)
        s["kv_blocks_used"].append(kv.used)
        s["kv_cache_use"].append(kv.used / kv.blocks)
        s["waiting"].append(len(self.scheduler.waiting))
        s["running"].append(len(self.scheduler.running))
        s["preempted"].append(plan.preempted)
        s["swap_s"].append(plan.swap_s)
        s["energy_J"].append(cost.dynamic_J if cost else 0.0)

    def finish_areas(self) -> None:
        """Close the time integrals at the end of the run."""
        self._count(0, 0)
