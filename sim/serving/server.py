"""The server as SimPy processes: requests arrive, each instance runs one scheduler step after another.

An instance is one tensor-parallel group running a scheduler: the whole server, one of
``parallel.dp`` data-parallel replicas, or one member of a prefill or decode pool
(``scheduler=disaggregated``, sim/serving/disaggregated.py). Processes share one environment:

* arrivals: at its arrival time each request joins the queue of the instance (among those that
  take prompts) the router picks (sim/serving/routers.py); a closed loop has no arrival
  process: its first ``users`` requests arrive at time 0 and each completion sends the next
  request at once;
* one engine per instance: asks its scheduler for a step, holds the instance for the step's
  time (host-link copies of a preemption by swapping first), applies the step and records
  completions; with nothing to do it sleeps until woken (an arrival, a KV cache handed over).

Events are arrivals, steps, completions and KV transfers, so a run's cost grows with the
scheduler steps, not with layers or ops; runs of decode-only steps are advanced together
(sim/serving/decode_runs.py), one event per run on a lone instance. Alongside, the server
integrates over time the number of requests waiting for their first admission and the number in
the system (Little's law), and records one row per step (instance, time, batch, tokens, KV-cache use, queue).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import simpy

from sim.config.schema import RunError
from sim.engine.des import CountingEnvironment
from sim.serving.decode_runs import DecodeRun, apply_run, can_run, plan_run
from sim.serving.request import Request, State
from sim.serving.routers import Route, outstanding
from sim.serving.schedulers import Scheduler, StepPlan, StepShape
from sim.serving.step_cost import StepCost
from sim.serving.step_log import RunRows, StepLog
from sim.serving.traffic import Traffic

# A run walks its requests a few times (its counts, then applying it: a few us each) where a step walks them about
# once, so a run of a few steps over a wide batch costs more than stepping (an overloaded server's runs end at the
# next arrival or completion, 1.2 steps on average); after one, the instance goes step by step for a while. Either
# way gives the same numbers, bit for bit: only the cost of getting them changes.
SHORT_RUN, WIDE_RUN, REST_STEPS = 3, 64, 8


@dataclass(eq=False)
class Instance:
    """One tensor-parallel group and its scheduler; ``role`` is both, prefill or decode."""

    name: str
    role: str
    scheduler: Scheduler
    wake_event: simpy.Event | None = None
    pipe: str = ""  # the pipeline whose stages its steps pass through (a virtual engine); "": none
    rest: int = 0  # times it goes step by step where it could try a run (its last run was too short to pay)


@dataclass(frozen=True)
class Pipeline:
    """Pipeline parallelism: ``layers`` per stage; a step's tokens cross from one stage to the next in
    ``send_s(tokens)`` seconds."""

    layers: tuple[int, ...]
    send_s: Callable[[int], float]

    def stage_s(self, cost: StepCost) -> list[float]:
        """Each stage's share of a step: the host's costs and the embedding on the first, its layers, the
        head on the last."""
        pre, layer, post = cost.spans
        host = max(0.0, cost.time_s - (pre + layer * sum(self.layers) + post))
        times = [layer * n for n in self.layers]
        times[0] += host + pre
        times[-1] += post
        return times


class Handoff(Protocol):
    """What moves requests between instances after a step (disaggregated serving)."""

    def after_step(self, inst: Instance, plan: StepPlan) -> None: ...


class Server:
    """One serving run over one or more instances of the same chips."""

    runs = True  # advance runs of decode-only steps together (sim/serving/decode_runs.py); False: step by step

    def __init__(self, traffic: Traffic, instances: list[Instance], cost: Callable[[StepShape], StepCost],
                 route: Route | None = None) -> None:
        self.traffic, self.instances, self.cost = traffic, instances, cost
        self.front = [i for i in instances if i.role != "decode"]  # where new requests queue
        self.route = route or (lambda front: min(front, key=outstanding))
        self.pipeline: Pipeline | None = None  # pipeline parallelism (its stages are shared per ``pipe``)
        self._stages: dict[str, list[simpy.Resource]] = {}
        self.env = CountingEnvironment()
        self.handoff: Handoff | None = None
        self.requests: list[Request] = []
        self.completed = 0
        self.log = StepLog()  # the steps as they end; when the run ends, the table and its totals:
        self._codes = {inst.name: i for i, inst in enumerate(instances)}  # an instance's code in the log
        self.steps: dict[str, np.ndarray] = {}
        self.busy_s = 0.0  # instance time spent in steps (copies included), summed over instances
        self.busy_by: dict[str, float] = {}  # the same, per instance
        self.dynamic_J = 0.0  # per chip of a group, summed over every instance's steps and KV moves
        self.matrix_flops = self.hbm_bytes = 0.0
        self.queue_area = self.system_area = 0.0  # request-seconds waiting for admission / in the system
        self._queued = self._in_system = 0
        self._last_change = 0.0
        self._due: list[tuple[float, int]] = []  # completions inside a run, not yet counted: (time, requests)
        self._next_closed = 0
        self._next_at = 0.0  # when the next arrival comes (inf: no more); decode runs stop at it
        if traffic.turns > 1:
            self.runs = False  # a turn's follow-up may arrive in the middle of any run: step by step
        self._arrival_times: list[float] | None = None  # event times of open-loop arrivals, beside other instances
        # each request's (prompt, output, row) as Python ints, read once (a numpy scalar per field costs more)
        self._fields = list(zip(traffic.prompt_tokens.tolist(), traffic.output_tokens.tolist(), traffic.rows.tolist(),
                                strict=True))
        if len(instances) > 1 and not traffic.users:
            self._arrival_times = _event_times(traffic.arrival_s)

    def run(self) -> None:
        """Simulate until every request has completed."""
        if self.traffic.users:
            # a completion sends the next request: with one instance taking them it ends a run anyway
            self._next_at = float("inf") if len(self.front) == 1 else 0.0
            for _ in range(min(self.traffic.users, len(self.traffic))):
                self._arrive(self._make(self._next_closed, 0.0))
                self._next_closed += 1
        else:
            self.env.process(self._arrivals())
        for inst in self.instances:
            self.env.process(self._engine(inst))
        self.env.run()
        if self.completed < len(self.traffic):  # every instance asleep with requests left: never a silent result
            left = next(r for r in self.requests if r.state is not State.done) if self.requests else None
            raise RunError(f"the serving run stalled with {len(self.traffic) - self.completed:,} of "
                           f"{len(self.traffic):,} requests unfinished"
                           f"{f' ({self.traffic.where(left.rid)}: {left.state.value})' if left else ''}; "
                           "please report the config (a scheduler that cannot place a request it holds)")
        self._count(0, 0)  # close the time integrals
        self.steps, totals = self.log.finish([i.name for i in self.instances])
        self.busy_s, self.busy_by, self.dynamic_J = totals.busy_s, totals.busy_by, totals.dynamic_J
        self.matrix_flops, self.hbm_bytes = totals.matrix_flops, totals.hbm_bytes

    @property
    def events(self) -> int:
        return self.env.events_processed

    def wake(self, inst: Instance) -> None:
        """Rouse an idle instance: it has something new to do."""
        if inst.wake_event is not None and not inst.wake_event.triggered:
            inst.wake_event.succeed()

    # Processes ----------------------------------------------------------------------------------
    def _arrivals(self) -> Iterator[simpy.Event]:
        env, t = self.env, self.traffic
        for i in range(len(t)):
            if t.follows(i):
                continue  # a later turn: it arrives after the turn before it (``_completed``)
            at = float(t.arrival_s[i])
            # runs stop at the time SimPy fires the arrival: now + (at - now), which may be an ulp off ``at``
            self._next_at = env.now + (at - env.now) if at > env.now else env.now
            if at > env.now:
                yield env.timeout(at - env.now)
            self._arrive(self._make(i, at))
        self._next_at = float("inf")

    def _engine(self, inst: Instance) -> Iterator[simpy.Event]:
        env, scheduler, n = self.env, inst.scheduler, len(self.traffic)
        while self.completed < n:
            run = self._decode_run(inst)
            if run is not None:
                if run.steps <= SHORT_RUN and run.decodes >= WIDE_RUN:
                    inst.rest = REST_STEPS
                done = yield from self._advance_run(inst, run)
                self._completed(done)
                continue
            plan = scheduler.plan(env.now)
            if plan is None:
                inst.wake_event = env.event()
                yield inst.wake_event
                continue
            start = env.now
            cost = self.cost(plan.shape) if plan.shape is not None else None
            if plan.admitted:
                self._count(-len(plan.admitted), 0)
            if self.pipeline is not None and inst.pipe and cost is not None:
                yield from self._through_stages(inst, plan, cost)
                duration = env.now - start
            else:
                duration = plan.swap_s + (cost.time_s if cost else 0.0)
                yield env.timeout(duration)
            done = scheduler.complete(plan, env.now)
            self._record(inst, start, plan, scheduler.made, cost, duration)
            self._completed(done)
            if self.handoff is not None:
                self.handoff.after_step(inst, plan)

    def _decode_run(self, inst: Instance) -> DecodeRun | None:
        """The decode-only steps the instance can advance together now, if any. Beside other instances, with
        open-loop arrivals, a run may span arrivals: one routed to this instance ends it after the step it
        came in (``_advance_run``), as the step-by-step engine would replan then."""
        if not self.runs or self.pipeline is not None or self.handoff is not None or not can_run(inst.scheduler):
            return None
        if inst.rest:
            inst.rest -= 1
            return None
        if self._arrival_times is not None:
            if self._next_at <= self.env.now:
                return None
            return plan_run(inst.scheduler, self.env.now, float("inf"), self.cost, self._arrival_times)
        # alone, with open-loop arrivals a completion sends no request: the run goes on past it
        return plan_run(inst.scheduler, self.env.now, self._next_at, self.cost, through=not self.traffic.users)

    def _completed(self, done: list[Request]) -> None:
        """Count completions; in a closed loop each sends the next request."""
        if done:
            n = len(self.traffic)
            self.completed += len(done)
            self._count(0, -len(done))
            for req in done:
                if self.traffic.users and self._next_closed < n:
                    self._arrive(self._make(self._next_closed, self.env.now))
                    self._next_closed += 1
                if not req.last_turn:
                    self.env.process(self._next_turn(req.rid + 1))

    def _next_turn(self, i: int) -> Iterator[simpy.Event]:
        """Request ``i``, a later turn, arrives its think time after the turn before it completed."""
        think = float(self.traffic.think_s[i])
        if think > 0:
            yield self.env.timeout(think)
        self._arrive(self._make(i, self.env.now))

    def _advance_run(self, inst: Instance, run: DecodeRun) -> Iterator[simpy.Event]:
        """Wait out a run's steps and account them as the engine accounts each step; the requests its last
        step completed. Alone, the instance waits once; beside others it waits for each step's end (and
        shows each step's KV use to the router), so that the steps of all instances are recorded and
        summed in the step-by-step order."""
        last = run.steps - 1
        earlier = [(run.ends[j], len(group)) for j, group, _ in run.finished if j < last]
        self._due += earlier  # counted in the time integrals at their steps' ends (a lone instance's run only)
        ran = yield from self._run_steps(inst, run)
        if ran.pending:
            self.cost.commit(ran.pending, ran.costs)
        done = apply_run(inst.scheduler, ran)
        self._account(inst, ran, ran.steps - 1 if len(self.instances) > 1 else 0, ran.steps)
        before = sum(requests for _, requests in earlier)
        self.completed += before
        return done[before:]  # the last step's: the engine completes them as a step's

    def _run_steps(self, inst: Instance, run: DecodeRun) -> Iterator[simpy.Event]:
        """Wait to the end of the run's last step, accounting the steps before it; the run as it ran (cut
        after the step in which a request came to this instance: the step-by-step engine replans then)."""
        if len(self.instances) == 1:
            yield self.env.at(run.ends[-1])
            return run
        for j, end in enumerate(run.ends[:-1]):
            inst.scheduler.kv.used = run.used[j]
            yield self.env.at(end)
            if len(inst.scheduler.waiting) != run.waiting:
                return run.cut(j + 1)
            self._account(inst, run, j, j + 1)
        inst.scheduler.kv.used = run.used[-1]
        yield self.env.at(run.ends[-1])
        return run

    def _account(self, inst: Instance, run: DecodeRun, first: int, last: int) -> None:
        """Log steps ``first`` to ``last - 1`` of a run (its last step after the run was applied, as the engine logs
        a step after completing it)."""
        scheduler = inst.scheduler
        tail = (len(scheduler.waiting), len(scheduler.running), scheduler.kv.used) if last == run.steps else None
        completed = [(j - first, len(group), blocks) for j, group, blocks in run.finished if first <= j < last] \
            if run.finished else []
        code = self._codes[inst.name]
        if first == 0 and last == run.steps:
            rows = RunRows(code, run.start, run.ends, run.costs, run.used, run.decodes, run.waiting,
                           scheduler.kv.blocks, completed, tail)
        else:
            rows = RunRows(code, run.ends[first - 1] if first else run.start, run.ends[first:last],
                           run.costs[first:last], run.used[first:last], run.decoding(first), run.waiting,
                           scheduler.kv.blocks, completed, tail)
        self.log.run(rows)

    def _through_stages(self, inst: Instance, plan: StepPlan, cost: StepCost) -> Iterator[simpy.Event]:
        """A step of a virtual engine through the pipeline: each stage in turn, one step at a time per
        stage, the hidden states sent between them."""
        pipe = self.pipeline
        stages = self._stages.setdefault(inst.pipe, [simpy.Resource(self.env, 1) for _ in pipe.layers])
        times = pipe.stage_s(cost)
        times[0] += plan.swap_s
        for s, (slot, seconds) in enumerate(zip(stages, times, strict=True)):
            with slot.request() as turn:
                yield turn
                yield self.env.timeout(seconds)
            if s < len(stages) - 1:
                yield self.env.timeout(pipe.send_s(plan.shape.tokens))

    # Bookkeeping --------------------------------------------------------------------------------
    def _make(self, i: int, at: float) -> Request:
        t = self.traffic
        prompt, output, row = self._fields[i]
        req = Request(i, at, prompt, output, row, shared=min(t.shared_prefix, prompt))
        if t.turns > 1:
            req.conv, req.context = i // t.turns, int(t.context[i])
            req.last_turn = not (i + 1 < len(t) and t.follows(i + 1))
        self.requests.append(req)
        return req

    def _arrive(self, req: Request) -> None:
        self._count(1, 1)
        inst = self.route(self.front)
        req.instance = inst.name
        inst.scheduler.add(req)
        self.wake(inst)

    def _count(self, queued: int, in_system: int) -> None:
        if self._due:  # completions inside a run come before any other change (an arrival its last step spans)
            due, self._due = self._due, []
            for at, requests in due:
                self._change(at, 0, -requests)
        self._change(self.env.now, queued, in_system)

    def _change(self, now: float, queued: int, in_system: int) -> None:
        elapsed = now - self._last_change
        self.queue_area += self._queued * elapsed
        self.system_area += self._in_system * elapsed
        self._last_change = now
        self._queued += queued
        self._in_system += in_system

    def _record(self, inst: Instance, start: float, plan: StepPlan, made: int, cost: StepCost | None,
                duration: float) -> None:
        shape, scheduler, kv = plan.shape, inst.scheduler, inst.scheduler.kv
        verify = shape.drafts if shape else 0  # speculative decoding: the last chunks verify that many decodes
        prompts = shape.chunks[:len(shape.chunks) - verify] if shape else ()
        prefill = (len(prompts), sum(new for new, _ in prompts))
        decodes = shape.decodes + verify if shape else 0
        work = (cost.dynamic_J, duration, cost.matrix_flops, cost.hbm_bytes) if cost else (0.0, duration, 0.0, 0.0)
        self.log.step((self._codes[inst.name], start, self.env.now, *prefill, decodes, prefill[0] + decodes, made,
                       kv.used, kv.used / kv.blocks, len(scheduler.waiting), len(scheduler.running), plan.preempted,
                       plan.swap_s, *work))


def _event_times(arrival_s) -> list[float]:
    """The times SimPy fires the arrivals at: ``_arrivals`` waits ``at - now`` from the previous one's time."""
    times, now = [], 0.0
    for at in arrival_s.tolist():
        if at > now:
            now = now + (at - now)
        times.append(now)
    return times
