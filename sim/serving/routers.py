"""Routers: which data-parallel replica an arriving request joins (``router.kind``, conf/router/).

A replica is one tensor-parallel group with its own scheduler and KV cache
(``parallel.dp`` of them). Replicas share nothing, so a request's latency depends only on the
requests its replica was given. The router sees each replica's queue, running requests and
KV cache at the arrival instant:

* ``round_robin``: replica ``i mod n`` for the i-th arrival;
* ``least_outstanding``: the fewest requests queued, running or swapped out (ties: the lowest
  number); with one replica, or the prefill pool of a disaggregated server, this is the default;
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


def outstanding(replica) -> int:
    """Requests a replica holds: queued, running or swapped out."""
    s = replica.scheduler
    return len(s.waiting) + len(s.running) + len(s.swapped)


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
    return lambda replicas: min(replicas, key=outstanding)
