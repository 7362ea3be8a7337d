"""Routers: which data-parallel replica an arriving request joins (``router.kind``, conf/router/).

A replica is one tensor-parallel group with its own scheduler and KV cache
(``parallel.dp`` of them). Replicas share nothing, so a request's latency depends only on the
requests its replica was given. The router sees each replica's queue, running requests and
KV cache at the arrival instant:

* ``round_robin``: replica ``i mod n`` for the i-th arrival;
* ``least_outstanding``: the fewest requests queued, running or swapped out; among those tied, the
  fewest prompt tokens still to prefill (queued prompts and the rest of those being prefilled: the
  work a new request's first token waits behind), then the lowest number. With one replica, or the
  prefill pool of a disaggregated server, this is the default. Ties are the rule, not the exception:
  in the bursty test of tests/test_replicas.py (4 replicas, batches of 8) 127 of 200 arrivals found
  several replicas with the fewest requests, and in 106 of those the tied replicas held different
  prompt work, so breaking ties by replica number sent bursts to the replica already prefilling;
* ``least_kv``: the smallest KV load: blocks in use plus the blocks the queued prompts will take,
  over the cache's blocks (ties: fewest outstanding, lowest number);
* ``power_of_two``: two distinct replicas drawn at random from the run's seed, the one with
  fewer outstanding (Mitzenmacher, "The power of two choices in randomized load balancing",
  IEEE TPDS 2001).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from sim.config.schema import RouterKind
from sim.serving.request import State


def outstanding(replica) -> int:
    """Requests a replica holds: queued, running or swapped out."""
    s = replica.scheduler
    return len(s.waiting) + len(s.running) + len(s.swapped)


def pending_prefill(replica) -> int:
    """Prompt tokens a replica has still to prefill: its queued prompts and the rest of those it is prefilling."""
    s = replica.scheduler
    return (sum(r.prefill_target - r.prefilled for r in s.waiting)
            + sum(r.prefill_target - r.prefilled for r in s.running if r.state is State.prefilling))


def least_outstanding(replicas: Sequence):
    """The replica with the fewest requests; ties: the least prompt work to prefill, then the lowest number."""
    counts = [outstanding(r) for r in replicas]
    fewest = min(counts)
    tied = [r for r, c in zip(replicas, counts, strict=True) if c == fewest]
    return tied[0] if len(tied) == 1 else min(tied, key=pending_prefill)


def kv_load(replica) -> float:
    """A replica's KV blocks in use plus those its queued prompts will take, over its blocks."""
    s = replica.scheduler
    queued = sum(s.kv.blocks_for(r.prefill_target) for r in s.waiting)
    return (s.kv.used + queued) / s.kv.blocks


Route = Callable[[Sequence], object]


def make_router(kind: RouterKind, seed: int) -> Route:
    """The routing function of ``kind``: replicas -> the one the next arrival joins."""
    if kind is RouterKind.round_robin:
        turn = itertools.count()
        return lambda replicas: replicas[next(turn) % len(replicas)]
    if kind is RouterKind.least_kv:
        return lambda replicas: min(replicas, key=lambda r: (kv_load(r), outstanding(r)))
    if kind is RouterKind.power_of_two:
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])  # streams 0-2 draw the traffic

        def two_choices(replicas: Sequence) -> object:
            if len(replicas) == 1:
                return replicas[0]
            a, b = rng.choice(len(replicas), 2, replace=False)
            return min(replicas[min(a, b)], replicas[max(a, b)], key=outstanding)
        return two_choices
    return least_outstanding
