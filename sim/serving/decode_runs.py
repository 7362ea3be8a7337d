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
  makes some request's last token (``apply_run`` completes it as ``Scheduler._token`` does);
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
from sim.serving.step_cost import StepCost

MAX_RUN = 4096  # steps planned at most at once (a longer run continues in the next)
AHEAD = 1024  # decode-only signatures priced together at most (sim/serving/decode_prices.py)
SPAN_AHEAD = 128  # at most, for a run that may span arrivals (where the next one here is unknown)
MIN_AHEAD = 6  # fewer are priced one at a time (cheaper than the arrays' fixed cost)


@dataclass
class DecodeRun:
    """Steps advanced together: each one's end time, cost and KV blocks in use after its growth."""

    start: float
    ends: list[float]
    costs: list[StepCost]
    used: list[int]
    waiting: int  # the queue's length during the run (before the arrival its last step may span)
    decodes: int  # requests decoding in every step
    pending: dict | None = None  # signatures first priced for this run, cached once its steps ran (StepCoster.commit)

    @property
    def steps(self) -> int:
        return len(self.ends)

    def cut(self, k: int) -> DecodeRun:
        """The run's first ``k`` steps (none of which makes a request's last token before its last step)."""
        return DecodeRun(self.start, self.ends[:k], self.costs[:k], self.used[:k], self.waiting, self.decodes,
                         self.pending)


_DECODING = {State.decoding}


def can_run(s: Scheduler) -> bool:
    """Whether the scheduler's state allows a run at all (before looking at lengths and blocks)."""
    return (type(s) in (ContinuousScheduler, ChunkedPrefillScheduler) and not s.k and not s.swapped
            and bool(s.running) and not s.model.sliding_window and not s.model.attention_chunk
            and {r.state for r in s.running} == _DECODING)


def _queue_stays(s: Scheduler) -> bool | None:
    """Whether the queue's head stays queued whatever the cache holds: True (empty queue, full batch, no
    token budget), False (prefix caching: its lookups are counted), None (it depends on the free blocks)."""
    if not s.waiting or len(s.running) >= s.cfg.max_batch:
        return True
    if isinstance(s, ChunkedPrefillScheduler) and s.cfg.token_budget - len(s.running) <= 0:
        return True
    return False if s.prefix else None


def _head_blocked(s: Scheduler, used: int) -> bool:
    """The queue's head cannot be admitted with ``used`` blocks in use."""
    head = s.waiting[0]
    return s.kv.needed(head, s._reserve(head)) > s.kv.blocks - used


def plan_run(s: Scheduler, now: float, until: float, cost: Callable[[StepShape], StepCost],
             arrivals: list[float] | None = None) -> DecodeRun | None:
    """The decode-only steps the scheduler runs from ``now`` (all but the last ending before ``until``; the
    last may make some requests' last tokens), or None when there are none. ``arrivals``: the arrivals'
    event times, in order (an instance beside others, whose run may span arrivals routed elsewhere): no
    step of the run ends at one of them (which comes first at one instant is SimPy's order)."""
    reqs = s.running
    stays = _queue_stays(s)
    if now >= until or stays is False:
        return None
    n, b, page, blocks = len(reqs), s.kv.block_tokens, s.ex.kv_block_tokens, s.kv.blocks
    used = s.kv.used
    if stays is None and not _head_blocked(s, used + n):  # admitted at the first step (a step takes <= n blocks)
        return None
    if used + n > blocks and sum([r.kv_tokens >= (r.blocks + r.shared_blocks) * b for r in reqs]) > blocks - used:
        return None  # the first step's new blocks do not fit: it preempts (a saturated cache, step after step)
    grow, late, cross, total, pages, steps = _counts(reqs, b, page)
    ends, costs, useds, start = [], [], [], now
    pending = {} if arrivals and hasattr(cost, "commit") else None
    decode, cache, kb, unfused = _lookups(cost)
    j, last = 0, getattr(cost, "recent_s", 0.0)  # the last step's time (before the first: the coster's last one)
    a = bisect_left(arrivals, now) if arrivals else 0  # the next arrival from now on
    tie = arrivals[a] if arrivals and a < len(arrivals) else float("inf")
    if tie == now:  # one at this very instant, perhaps not yet routed: step by step
        return None
    cap = SPAN_AHEAD if arrivals else AHEAD

    def ahead() -> tuple[np.ndarray, np.ndarray] | None:
        """Step ``j``'s and the coming steps' keys that the run may reach (judged by the last step's time), or
        None when that is too few to price together."""
        m = min(steps - j, cap if until == float("inf") else int((until - now) / last) + 2, cap) if last > 0 else 0
        return _coming(j, m, n, total, page, pages, cross) if m >= MIN_AHEAD else None

    for j in range(steps):
        if late and j in late:
            grow[j % b] += late.pop(j)
        used += grow[j % b]
        if used > blocks or now >= until or (stays is None and not _head_blocked(s, used)):
            break
        pairs = total + n * (j + 1)
        if page:
            pages += cross[j % page]
        cached = pages * page if page else pairs
        p = round(pairs / kb)  # StepCoster.decode_step's cache lookup inline (the inner loop); a miss goes through it
        c = (cache and cache.get(((), n, p, round(cached / kb), p if unfused else 0, n))) or \
            decode(n, pairs, cached, ahead, pending)
        last = c.time_s
        end = now + last
        if end == until:  # which comes first at the same instant is SimPy's order: step by step
            break
        if end >= tie:
            a = bisect_left(arrivals, end, a)
            tie = arrivals[a] if a < len(arrivals) else float("inf")
            if end == tie:
                break
        ends.append(end)
        costs.append(c)
        useds.append(used)
        now = end
    return DecodeRun(start, ends, costs, useds, len(s.waiting), n, pending) if ends else None


def _lookups(cost: Callable[[StepShape], StepCost]) -> tuple[Callable, dict | None, int, bool]:
    """How a run prices a decode-only step: the coster's ``decode_step`` (or a shape through ``cost``), and
    its signature cache, block and unfused flag to look up first (None: no cache to look up)."""
    decode = getattr(cost, "decode_step", None) or \
        (lambda n, pairs, cached, _, __: cost(StepShape((), n, pairs, cached, pairs, n)))
    cache, kb, unfused = cost.decode_cache() if hasattr(cost, "decode_cache") else (None, 1, False)
    return decode, cache, kb, unfused


def _coming(j: int, m: int, n: int, total: int, page: int, pages: int, cross: list[int]) -> tuple[np.ndarray, ...]:
    """(summed keys, keys read from whole pages) of steps ``j .. j + m - 1`` of a run (``pages``: step j's)."""
    js = np.arange(j, j + m, dtype=np.int64)
    pairs = total + n * (js + 1)
    if not page:
        return pairs, pairs
    later = np.cumsum(np.asarray(cross, dtype=np.int64)[(js[1:]) % page])
    return pairs, (pages + np.concatenate(([0], later))) * page


def _counts(reqs: list[Request], b: int, page: int) -> tuple[list[int], dict[int, int], list[int], int, int, int]:
    """Per run: requests taking a block at step j (``grow[j % b]``, joined from step j on by ``late[j]``),
    decodes whose keys reach a new page at step j (``cross[j % page]``), the summed keys, the pages read
    and the steps before the first request's last token (at most MAX_RUN)."""
    if len(reqs) < 48:  # few requests: a loop is cheaper than numpy
        return _loop_counts(reqs, b, page)
    kvs = [r.kv_tokens for r in reqs]
    steps = min(MAX_RUN, min([r.output_tokens - r.generated for r in reqs]))
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
    grow, late, cross, total, pages, steps = [0] * b, {}, [0] * max(1, page), 0, 0, MAX_RUN
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
        steps = min(steps, r.output_tokens - r.generated)
    return grow, late, cross, total, pages, steps

def apply_run(s: Scheduler, run: DecodeRun) -> list[Request]:
    """The requests and the cache after the run's steps; the requests its last step completed."""
    k, b = run.steps, s.kv.block_tokens
    done: list[Request] = []
    for req in s.running:
        kv = req.kv_tokens = req.kv_tokens + k
        held = -(-kv // b) - req.shared_blocks
        if held > req.blocks:
            req.blocks = held
        made = req.generated = req.generated + k
        if made >= req.output_tokens:
            done.append(req)
    s.kv.used = run.used[-1]
    s.made = len(s.running)
    for req in done:  # as ``Scheduler._token`` completes a request
        req.state = State.done
        req.finish_s = run.ends[-1]
        s._release_finished(req)
    if done:
        s.running = [r for r in s.running if r.state is not State.done]
    return done
