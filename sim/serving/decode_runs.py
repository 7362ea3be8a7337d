"""Runs of decode-only steps advanced together: the serving simulation's events grow with arrivals and
completions, not with scheduler steps.

Between an arrival and a completion a continuous or chunked-prefill instance often runs the same
kind of step again and again: every running request decodes one token, nobody is admitted (the
queue is empty, or its head cannot be admitted), nobody is preempted. Such a step changes only
counters that grow in closed form: each request's context grows by one token, and it takes a new
KV block every ``block`` tokens (at a step known in advance from its context and the blocks it
holds). So ``plan_run`` finds how many such steps follow, their shapes (decode count, summed keys,
keys read from whole pages) and their costs from the step coster (the same cached signatures as
step by step), and the end of each step by the same float additions SimPy makes (``now +
duration``). The server waits to the exact end time of the last step (with several instances, to
each step's end, so that all instances' steps are recorded and summed in the step-by-step order),
and ``apply_run`` updates the requests and the cache as the steps would have.

What a run may contain (anything else is simulated step by step):

* every running request is decoding, none swapped out, no speculative decoding, no sliding-window
  or chunked attention (a decode then attends to its whole context);
* the queue is empty, or its head cannot be admitted at any of the run's steps (the batch is full,
  a chunked step has no token budget left, or its blocks do not fit; never with prefix caching,
  whose lookups are counted);
* the cache holds every decode's growth without preempting; the run ends with the first step that
  makes some request's last token (``apply_run`` completes it as ``Scheduler._token`` does), except
  on a lone instance with open-loop arrivals and an empty queue: a completion there sends no new
  request and nothing waits for its room, so the run goes on with the requests left (out of the
  counts, their blocks freed) and the server counts each completion at its step's end;
* every step starts before the next arrival (``until``); the last step may span it, since the
  arrival only joins the queue and the step does not look at the queue. The router sees the
  instance's outstanding requests, which a run does not change, and (several instances) its KV
  use, which the server sets at each step's start as the step-by-step plan would.

A test (tests/test_decode_runs.py) holds runs to the step-by-step simulation bit for bit.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.serving.request import Request, State
from sim.serving.schedulers import ChunkedPrefillScheduler, ContinuousScheduler, Scheduler, StepShape
from sim.serving.step_cost import KEY, StepCost

MAX_RUN = 4096  # steps planned at most at once (a longer run continues in the next)


@dataclass
class DecodeRun:
    """Steps advanced together: each one's end time and cost, the KV blocks in use during it (after its growth),
    the requests decoding in the first, and the steps that completed requests."""

    start: float
    ends: list[float]
    costs: list[StepCost]
    used: list[int]
    decodes: int
    finished: list[tuple[int, list[Request], int]]  # (step, requests it completed in running order, their blocks)
    waiting: int  # the queue's length during the run (before the arrival its last step may span)
    pending: dict | None = None  # signatures first priced for this run, cached once its steps ran (StepCoster.commit)

    @property
    def steps(self) -> int:
        return len(self.ends)

    def cut(self, k: int) -> DecodeRun:
        """The run's first ``k`` steps."""
        return DecodeRun(self.start, self.ends[:k], self.costs[:k], self.used[:k], self.decodes,
                         [f for f in self.finished if f[0] < k], self.waiting, self.pending)

    def decoding(self, j: int) -> int:
        """Requests decoding in step ``j``."""
        return self.decodes - sum([len(group) for i, group, _ in self.finished if i < j])


_DECODING = {State.decoding}


def can_run(s: Scheduler) -> bool:
    """Whether the scheduler allows a run at all (before looking at its requests' states, lengths and blocks)."""
    return (type(s) in (ContinuousScheduler, ChunkedPrefillScheduler) and not s.k and not s.swapped
            and bool(s.running) and not s.model.sliding_window and not s.model.attention_chunk)


def _queue_stays(s: Scheduler) -> bool | None:
    """Whether the queue's head stays queued whatever the cache holds: True (empty queue, full batch, no
    token budget), False (prefix caching: its lookups are counted), None (it depends on the free blocks)."""
    if not s.waiting or len(s.running) >= s.cfg.max_batch:
        return True
    if isinstance(s, ChunkedPrefillScheduler) and s.cfg.token_budget - len(s.running) <= 0:
        return True
    return False if s.prefix else None


def _may_start(s: Scheduler, stays: bool | None) -> bool:
    """Whether a run's first step is decode-only: its new blocks fit (a saturated cache preempts step after step)
    and the queue's head is not admitted with them in use (``stays`` None: that depends on the free blocks)."""
    n, b, used, blocks = len(s.running), s.kv.block_tokens, s.kv.used, s.kv.blocks
    if stays is None and not _head_blocked(s, used + n):
        return False  # admitted even if every decode takes a block
    if stays and used + n <= blocks:
        return True
    new = sum([r.kv_tokens >= (r.blocks + r.shared_blocks) * b for r in s.running])  # the first step's new blocks
    return used + new <= blocks and (stays or _head_blocked(s, used + new))


def _head_blocked(s: Scheduler, used: int) -> bool:
    """The queue's head cannot be admitted with ``used`` blocks in use."""
    head = s.waiting[0]
    return s.kv.needed(head, s._reserve(head)) > s.kv.blocks - used


def plan_run(s: Scheduler, now: float, until: float, cost: Callable[[StepShape], StepCost],
             arrivals: list[float] | None = None, through: bool = False) -> DecodeRun | None:
    """The decode-only steps the scheduler runs from ``now`` (all but the last ending before ``until``), or None.
    It ends with the first step making some requests' last tokens, unless ``through`` (a lone instance whose
    completions send no request) and the queue is empty. ``arrivals``: arrivals' event times, in order (a run
    beside other instances may span arrivals routed elsewhere; no step ends at one: SimPy orders the tie)."""
    if now >= until or (stays := _queue_stays(s)) is False or not _may_start(s, stays) or \
            {r.state for r in s.running} != _DECODING:  # last: a walk of the batch, where the queue's head is cheaper
        return None
    n, b, page, blocks, used = len(s.running), s.kv.block_tokens, s.ex.kv_block_tokens, s.kv.blocks, s.kv.used
    grow, late, cross, total, pages, steps = _counts(s.running, b, page)
    through = through and not s.waiting  # completions end the run when their room could admit the queue's head
    ends, costs, useds, finished, start, alive, first_n = [], [], [], [], now, s.running, n
    decode, index, kb, pending = _lookups(cost, arrivals)
    prices, same = index.setdefault(n, {}), page and page == kb
    a, tie = _next_arrival(arrivals, now, 0)
    if tie == now:  # one at this very instant, perhaps not yet routed: step by step
        return None
    for j in range(MAX_RUN if through else min(steps, MAX_RUN)):
        jb = j % b
        if late and j in late:
            grow[jb] += late.pop(j)
        used += grow[jb]
        if used > blocks or now >= until or (stays is None and not _head_blocked(s, used)):
            break
        pairs = total + n * (j + 1)
        if page:
            pages += cross[j % page]
        cached = pages * page if page else pairs
        # StepCoster.decode_step's lookup inline (its block's pages: round(cached / kb) is ``pages``); a miss: via it
        c = prices.get(round(pairs / kb) * KEY + (pages if same else round(cached / kb))) or \
            decode(n, pairs, cached, pending)
        end = now + c[0]  # its time_s
        if end == until:  # which comes first at the same instant is SimPy's order: step by step
            break
        if end >= tie:
            a, tie = _next_arrival(arrivals, end, a)
            if end == tie:
                break
        ends.append(end)
        costs.append(c)
        useds.append(used)
        now = end
        if j + 1 == steps:  # some requests' last tokens: out of the counts, their blocks freed
            group, alive, steps, (keys, read, freed) = _drop(alive, steps, j, b, page, grow, late, cross)
            total, pages, used, n = total - keys, pages - read, used - freed, n - len(group)
            finished.append((j, group, freed))
            prices = index.setdefault(n, {})
            if not through or not n:
                break
    return DecodeRun(start, ends, costs, useds, first_n, finished, len(s.waiting), pending) if ends else None


def _next_arrival(arrivals: list[float] | None, now: float, a: int) -> tuple[int, float]:
    """The position of the first of ``arrivals`` at or after ``now`` (searched from ``a``) and its time (inf: none)."""
    if not arrivals:
        return 0, float("inf")
    a = bisect_left(arrivals, now, a)
    return a, arrivals[a] if a < len(arrivals) else float("inf")


def _drop(alive: list[Request], steps: int, j: int, b: int, page: int, grow: list[int], late: dict[int, int],
          cross: list[int]) -> tuple[list[Request], list[Request], int, tuple[int, int, int]]:
    """Take the requests that made their last tokens at step ``j`` (the ``steps``-th) out of a run's block and page
    counts (``_counts``): those requests, the others, the steps to the others' next last token, and the keys of the
    taken at the run's start, their pages and their blocks after step ``j`` (as ``apply_run`` sets them, and
    ``Scheduler._release_finished`` frees them)."""
    group = [r for r in alive if r.output_tokens - r.generated == steps]
    rest = [r for r in alive if r.output_tokens - r.generated != steps]
    keys = read = freed = 0
    for r in group:
        k = r.kv_tokens
        keys += k
        f = (r.blocks + r.shared_blocks) * b - k
        if f < b:
            grow[f] -= 1
        elif f <= j:  # joined ``grow`` at step f
            grow[f % b] -= 1
        else:
            late[f] -= 1
        if page:
            cross[-k % page] -= 1
            read -= -(k + j + 1) // page
        freed += max(r.blocks, -(-(k + j + 1) // b) - r.shared_blocks)
    return group, rest, min([r.output_tokens - r.generated for r in rest], default=0), (keys, read, freed)


def _lookups(cost: Callable[[StepShape], StepCost], arrivals: list[float] | None
             ) -> tuple[Callable, dict[int, dict[int, StepCost]], int, dict | None]:
    """How a run prices a decode-only step: the coster's ``decode_step`` (or a shape through ``cost``), its cached
    decode-only prices to look up first with the block their keys are rounded to (none: an empty index), and where
    a run that may be cut short (spanning ``arrivals``) keeps the signatures it priced first (None: the cache)."""
    decode = getattr(cost, "decode_step", None) or \
        (lambda n, pairs, cached, _: cost(StepShape((), n, pairs, cached, pairs, n)))
    index, kb = cost.decode_index() if hasattr(cost, "decode_index") else ({}, 1)
    return decode, index, kb, {} if arrivals and hasattr(cost, "commit") else None


def _counts(reqs: list[Request], b: int, page: int) -> tuple[list[int], dict[int, int], list[int], int, int, int]:
    """Per run: requests taking a block at step j (``grow[j % b]``, joined from step j on by ``late[j]``),
    decodes whose keys reach a new page at step j (``cross[j % page]``), the summed keys, the pages read
    and the steps to the first request's last token."""
    if len(reqs) < 48:  # few requests: a loop is cheaper than numpy
        return _loop_counts(reqs, b, page)
    kvs = [r.kv_tokens for r in reqs]
    steps = min([r.output_tokens - r.generated for r in reqs])
    kv = np.array(kvs, dtype=np.int64)
    first = np.array([r.blocks + r.shared_blocks for r in reqs], dtype=np.int64) * b - kv  # step j writes kv + j + 1
    if first.min() < 0:  # blocks that do not hold the tokens (never seen): the loop's list indexing decides
        return _loop_counts(reqs, b, page)
    early = first < b
    grow = np.bincount(first[early], minlength=b).tolist()
    late: dict[int, int] = {}
    if not early.all():
        values, counts = np.unique(first[~early], return_counts=True)
        late = dict(zip(values.tolist(), counts.tolist(), strict=True))
    cross, pages = [0], 0
    if page:
        cross = np.bincount(-kv % page, minlength=page).tolist()
        pages = int(-(-kv // page).sum())
    return grow, late, cross, sum(kvs), pages, steps


def _loop_counts(reqs: list[Request], b: int, page: int) -> tuple[list[int], dict[int, int], list[int], int, int, int]:
    """``_counts`` one request at a time."""
    grow, late, cross, total, pages, steps = [0] * b, {}, [0] * max(1, page), 0, 0, 1 << 62
    for r in reqs:
        k = r.kv_tokens
        total += k
        f = (r.blocks + r.shared_blocks) * b - k  # step j writes token k + j + 1
        if f < b:
            grow[f] += 1
        else:
            late[f] = late.get(f, 0) + 1
        if page:
            cross[-k % page] += 1
            pages -= -k // page
        left = r.output_tokens - r.generated
        if left < steps:
            steps = left
    return grow, late, cross, total, pages, steps

def apply_run(s: Scheduler, run: DecodeRun) -> list[Request]:
    """The requests and the cache after the run's steps; the requests it completed, step by step (each step's in
    running order, as ``Scheduler._token`` completes them)."""
    b, steps = s.kv.block_tokens, run.steps
    taken = {id(req): j + 1 for j, group, _ in run.finished for req in group}  # steps of those that completed
    for req in s.running:
        k = taken.get(id(req), steps) if taken else steps
        kv = req.kv_tokens = req.kv_tokens + k
        held = -(-kv // b) - req.shared_blocks
        if held > req.blocks:
            req.blocks = held
        req.generated += k
    done: list[Request] = []
    for j, group, _ in run.finished:
        for req in group:
            req.state = State.done
            req.finish_s = run.ends[j]
            done.append(req)
    # the blocks in use during the last step, with those freed earlier in the run back: released below as they were
    s.kv.used = run.used[-1] + sum([f[2] for f in run.finished if f[0] < steps - 1])
    s.made = run.decoding(steps - 1)
    for req in done:  # as ``Scheduler._token`` completes a request
        s._release_finished(req)
    if done:
        s.running = [r for r in s.running if r.state is not State.done]
    return done
