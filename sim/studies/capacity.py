"""Capacity: the highest arrival rate a serving system sustains within its p99 latency targets.

``llmsim-capacity <overrides> slo.ttft_p99_s=2 slo.tpot_p99_s=0.2`` (sim/cli/capacity.py):

1. **offline**: ``base_requests`` requests at t = 0 (``workload.arrival=offline``); their requests
   per second over the makespan are the most the system pushes through that many requests (a
   few long outputs decoding in small batches at the end hold it down: with few requests the
   capacity under loose targets may exceed it). The search starts there.
2. **bracket**: a probe is one serving run at an offered Poisson rate (gamma when the workload
   says so) with the run's own seed. It *passes* when the run is not overloaded (its queueing
   delay does not grow with arrival time, sim/metrics/serving_summary.py) and its steady-state
   p99 TTFT and TPOT meet the targets (sim/metrics/slo.py). Starting at the offline rate, the
   rate halves until a probe passes, or doubles from a passing start until one fails.
3. **bisect**: at the geometric middle of the bracket until ``high / low - 1 <= width`` (5 %).
   The capacity is the bracket's low end: a probe there passed, a probe at its high end failed.

A probe runs ``base_requests``, then more until both p99s are *precise* (their bootstrap 90 %
intervals within +-5 %) and its arrivals span ``MIN_SPAN_LIFETIMES`` mean request lifetimes (a
shorter probe cannot show a slowly growing queue, so it cannot pass): as many as the widest
interval says are needed (half-widths shrink as
one over the root of the requests), at least twice as many, up to ``max_requests``; an
overloaded probe and the offline run are not extended. How many requests a probe runs depends
on its rate alone, never on the targets, and every choice of the next rate depends only on
which probes passed, so loosening a target never lowers the capacity: each probe that passed
still passes, and the bisection keeps the looser search at or above the tighter one. Step costs
are cached once for all probes (one step coster, ``sim.serving.run.make_coster``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sim.config.schema import ArrivalProcess, RunConfig, RunError, SloConfig, WorkloadKind
from sim.metrics.serving_summary import summarize_serving
from sim.metrics.slo import CI_HALF_WIDTH, meets_p99
from sim.serving.run import make_coster, simulate_serving

WIDTH = 0.05  # the bracket's high end over its low end, minus one, at most
BASE_REQUESTS = 1000
MAX_REQUESTS = 4000
STEPS_OUT = 10  # halvings or doublings while looking for the bracket


MIN_SPAN_LIFETIMES = 5  # a passing probe's arrivals span at least this many mean request lifetimes


@dataclass
class Probe:
    """One serving run at an offered rate (0: offline) and what it measured."""

    rate: float
    requests: int
    summary: dict
    passes: bool
    wall_s: float

    @property
    def steady(self) -> dict:
        return self.summary["steady_state"]

    def row(self) -> dict:
        """The probe as a table row."""
        s, st = self.summary, self.steady
        return {"offered_rate_per_s": self.rate, "requests": self.requests, "passes": self.passes,
                "overloaded": s["overloaded"], "precise": st["precise"],
                "ttft_p50_s": st["ttft_p50_s"], "ttft_p99_s": st["ttft_p99_s"],
                "ttft_p99_ci_low_s": st["ttft_p99_ci_s"][0], "ttft_p99_ci_high_s": st["ttft_p99_ci_s"][1],
                "tpot_p50_s": st["tpot_p50_s"], "tpot_p99_s": st["tpot_p99_s"],
                "tpot_p99_ci_low_s": st["tpot_p99_ci_s"][0], "tpot_p99_ci_high_s": st["tpot_p99_ci_s"][1],
                "requests_per_s": s["requests_per_s"], "output_tokens_per_s": s["output_tokens_per_s"],
                "usd_per_million_output_tokens": s["usd_per_million_output_tokens"],
                "joules_per_output_token": s["joules_per_output_token"], "wall_s": self.wall_s}


@dataclass
class Capacity:
    """The search: the offline run, every probe in the order run, and the bracket."""

    cfg: RunConfig
    offline: Probe
    probes: list[Probe] = field(default_factory=list)
    low: Probe | None = None  # the highest rate that passed (None: none did)
    high: Probe | None = None  # the lowest rate that failed above it (None: none did)
    wall_s: float = 0.0

    @property
    def capacity(self) -> float:
        """Requests per second sustained within the targets (0 when no probed rate was)."""
        return self.low.rate if self.low else 0.0

    @property
    def width(self) -> float | None:
        """The bracket's relative width (None when either end is missing)."""
        return self.high.rate / self.low.rate - 1 if self.low and self.high else None

    @property
    def output_tokens_per_s(self) -> float:
        """Output tokens per second at the capacity: the rate times the passing probe's mean output (the probe's own
        figure, over its start and drain, is lower)."""
        s = self.low.summary if self.low else None
        return self.capacity * s["output_tokens_per_s"] / s["requests_per_s"] if s and s["requests_per_s"] else 0.0

    @property
    def lower_bound(self) -> bool:
        """Whether the capacity is only a lower bound: the bracket's high end met the targets and was not
        overloaded, but was too short to show a steady state, so the probe length, not the system, stopped it."""
        return bool(self.low and self.high and too_short(self.high))


class Prober:
    """Runs probes of one configuration, sharing the step-cost cache; a rate probed once is not simulated
    again (a search under other targets of the same system reuses the runs: the summary's targets are
    the first search's, and each probe is judged against the targets it is asked for)."""

    def __init__(self, cfg: RunConfig, base: int, most: int, progress: Callable[[Probe], None] | None = None) -> None:
        self.cfg, self.base, self.most, self.progress = cfg, base, most, progress
        self.coster = make_coster(cfg)
        self.arrival = ArrivalProcess.gamma if cfg.workload.arrival is ArrivalProcess.gamma else ArrivalProcess.poisson
        self.runs: dict[float, tuple[int, dict, float]] = {}  # rate -> (requests, summary, wall seconds)

    def __call__(self, rate: float, slo: SloConfig | None = None) -> Probe:
        """A probe at ``rate`` requests per second (0: offline, every request at t = 0), judged against
        ``slo`` (default the config's)."""
        if rate not in self.runs:
            self.runs[rate] = self._run(rate)
        n, summary, wall = self.runs[rate]
        st = summary["steady_state"]
        passes = not summary["overloaded"] and long_enough(rate, n, summary) and \
            meets_p99(st["ttft_p99_s"], st["tpot_p99_s"], slo or self.cfg.slo) is True  # None: nothing measured
        probe = Probe(rate, n, summary, passes, wall)
        if self.progress is not None:
            self.progress(probe)
        return probe

    def _run(self, rate: float) -> tuple[int, dict, float]:
        started, n = time.perf_counter(), self.base
        while True:
            arrival = self.arrival if rate > 0 else ArrivalProcess.offline
            work = replace(self.cfg.workload, arrival=arrival, rate_per_s=rate or 1.0, num_requests=n)
            summary = summarize_serving(simulate_serving(replace(self.cfg, workload=work), self.coster))
            settled = summary["steady_state"]["precise"] and long_enough(rate, n, summary)
            if rate == 0 or settled or summary["overloaded"] or n >= self.most:
                return n, summary, time.perf_counter() - started
            n = self._more(n, summary["steady_state"])

    def _more(self, n: int, steady: dict) -> int:
        """Requests for the next try: an interval's half-width shrinks as one over the root of the requests,
        so enough to bring the widest within ``CI_HALF_WIDTH`` (with a fifth more), at least twice ``n``,
        in whole multiples of the base, at most ``most``."""
        widest = 0.0
        for key in ("ttft", "tpot"):
            value, (low, high) = steady[f"{key}_p99_s"], steady[f"{key}_p99_ci_s"]
            if value:
                widest = max(widest, (value - low) / value, (high - value) / value)
        need = n * 1.2 * (widest / CI_HALF_WIDTH) ** 2
        return int(min(self.most, max(2 * n, math.ceil(need / self.base) * self.base)))


def long_enough(rate: float, n: int, summary: dict) -> bool:
    """Whether a probe's arrivals span ``MIN_SPAN_LIFETIMES`` mean request lifetimes (end to end): a shorter
    probe ends before a slowly growing queue shows, so it can demonstrate no sustained rate. It depends on
    the rate alone (the requests a probe runs do), never on the targets."""
    if rate == 0:
        return True
    return n / rate >= MIN_SPAN_LIFETIMES * (summary.get("e2e_mean_s") or 0.0)


def offered(cfg: RunConfig) -> str:
    """The arrival process a probe offers its rate as (``Prober``): gamma when the workload says so, else Poisson."""
    return "gamma" if cfg.workload.arrival is ArrivalProcess.gamma else "Poisson"


def too_short(p: Probe) -> bool:
    """A probe that did not pass only because its arrivals span too few lifetimes (it met the targets, or they
    were not judged, and it was not overloaded)."""
    return (p.rate > 0 and not p.passes and not p.summary["overloaded"]
            and not long_enough(p.rate, p.requests, p.summary) and p.steady.get("meets_p99_slo") is not False)


def check_capacity_config(cfg: RunConfig, targets: bool = True) -> None:
    """What a capacity search (``targets``: with its p99 targets; False: the offline probe alone) needs of its config.

    Raises:
        RunError: not a serving run, no p99 target, or an arrival process it cannot scale.
    """
    if cfg.workload.kind is not WorkloadKind.serving:
        raise RunError("llmsim-capacity searches serving runs: add workload=serving")
    if not targets:  # the offline probe: every request at t = 0, whatever arrival process the config names
        if cfg.workload.arrival is ArrivalProcess.trace:
            raise RunError("llmsim-capacity --offline sends every request at t = 0, so a trace's arrival times would "
                           "be dropped: use its lengths with drawn arrivals (workload.lengths=azure_code|azure_conv), "
                           "or replay it with llmsim workload=serving workload.arrival=trace")
        return
    if not cfg.slo.has_p99:
        raise RunError("llmsim-capacity needs a p99 target: set slo.ttft_p99_s and/or slo.tpot_p99_s (seconds), "
                       "e.g. slo.ttft_p99_s=2 slo.tpot_p99_s=0.2")
    if cfg.workload.arrival not in (ArrivalProcess.poisson, ArrivalProcess.gamma):
        raise RunError(f"llmsim-capacity varies the rate of Poisson (or gamma) arrivals; workload.arrival="
                       f"{cfg.workload.arrival.value} has no rate: use poisson (lengths may still come from a trace: "
                       "workload.lengths=azure_conv)")
    if cfg.workload.turns > 1:
        raise RunError(f"llmsim-capacity finds a rate of requests; with workload.turns={cfg.workload.turns} the rate "
                       "is of conversations, whose later turns arrive after earlier ones complete: set "
                       "workload.turns=1")


def find_capacity(cfg: RunConfig, base_requests: int = BASE_REQUESTS, max_requests: int = MAX_REQUESTS,
                  width: float = WIDTH, progress: Callable[[Probe], None] | None = None,
                  prober: Prober | None = None) -> Capacity:
    """Search the capacity of ``cfg`` under its p99 targets (module docstring).

    Args:
        prober: one of an earlier search of the same system (only ``cfg.slo`` may differ), whose
            runs are reused; its request counts then apply.
    """
    check_capacity_config(cfg)
    if not 0 < width < 1 or not 1 <= base_requests <= max_requests:
        raise RunError(f"capacity search needs 0 < width < 1 and 1 <= base requests <= max requests (got {width}, "
                       f"{base_requests}, {max_requests})")
    started = time.perf_counter()
    runs = prober or Prober(cfg, base_requests, max_requests, progress)

    def probe(rate: float) -> Probe:
        return runs(rate, cfg.slo)

    found = Capacity(cfg, probe(0.0))
    found.probes, start = [], found.offline.summary["requests_per_s"]
    _bracket(found, probe, start)
    while found.low and found.high and found.high.rate / found.low.rate - 1 > width:
        mid = probe(math.sqrt(found.low.rate * found.high.rate))
        found.probes.append(mid)
        if mid.passes:
            found.low = mid
        else:
            found.high = mid
    found.wall_s = time.perf_counter() - started
    return found


def _bracket(found: Capacity, probe: Callable[[float], Probe], start: float) -> None:
    first = probe(start)
    found.probes.append(first)
    step, key = (2.0, "low") if first.passes else (0.5, "high")
    setattr(found, key, first)
    for _ in range(STEPS_OUT):
        nxt = probe(first.rate * step ** (len(found.probes)))
        found.probes.append(nxt)
        if nxt.passes == first.passes:
            setattr(found, key, nxt)
            continue
        setattr(found, "high" if first.passes else "low", nxt)
        return
