"""``llmsim-capacity ... --search``: the best way to lay a model out on a box, by capacity under the SLOs.

The box is the chips of the given config (``parallel.tp x parallel.pp x parallel.dp``). The search
runs in two stages, each candidate a capacity search (sim/studies/capacity.py):

1. layouts: every split of the chips into ``dp`` replicas of ``tp x pp`` chips (``tp`` dividing the
   heads and the MLP within one fabric, ``pp`` at most one stage per layer, pipeline stages only
   with the continuous and chunked-prefill schedulers), each in the config's weight and KV formats
   and, where the chip runs fp8 matrices and the config's formats are wider, in fp8 weights and fp8
   KV cache. Every one is first sized without simulating (sim/serving/run.py ``plan_memory``): a
   layout whose weights and workspace leave no KV cache, or whose cache cannot hold the longest
   request, is pruned before any probe and listed with the reason. Of those that fit, the first
   ``max_layouts`` (fewest pipeline stages first, then fewest chips per replica, the config's
   formats before fp8) are probed; the rest are listed as not probed.
2. knobs: around the best layout, ``scheduler.max_batch`` (max sequences) at a quarter of its value
   and ``scheduler.token_budget`` at a quarter of its value: the chunk size with
   ``scheduler=chunked_prefill``, the max batched tokens with ``continuous`` (a longer prompt still
   runs alone); not below four KV blocks.

So the probes are bounded: at most ``max_layouts + 2`` capacity searches. Candidates are ranked by
capacity; the table also gives capacity per dollar (requests/s per $ per hour of the box's chips)
and per watt (requests/s per W of average power at capacity). For each loser the report names what
stopped it at the high end of its bracket: the queue (p99 TTFT over its target while TPOT holds),
the step time (p99 TPOT over its target) or throughput (the queue grew without bound), with its KV
cache's room in sequences of mean length and its HBM and compute use at capacity beside the winner's;
a pruned layout names the memory it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hwmodels.numerics import DType
from sim.config.schema import RunConfig, RunError
from sim.config.workload import SchedulerKind
from sim.serving.run import check_serving, plan_memory
from sim.studies.capacity import MIN_SPAN_LIFETIMES, Capacity, find_capacity, long_enough

MAX_LAYOUTS = 8  # layouts probed at most by default: each is a capacity search of about ten probes


@dataclass
class Candidate:
    """One way to serve on the box and its capacity search (None: not probed, ``failure`` says why)."""

    cfg: RunConfig
    found: Capacity | None
    failure: str = ""

    @property
    def tp(self) -> int:
        return self.cfg.parallel.tp

    @property
    def pp(self) -> int:
        return self.cfg.parallel.pp

    @property
    def dp(self) -> int:
        return self.cfg.parallel.dp

    @property
    def max_batch(self) -> int:
        return self.cfg.scheduler.max_batch

    @property
    def name(self) -> str:
        s, p = self.cfg.scheduler, self.cfg.precision
        pipe = f" x PP{self.pp}" if self.pp > 1 else ""
        chunk = f", chunk {s.token_budget}" if s.kind is SchedulerKind.chunked_prefill else f", {s.token_budget} tokens"
        return f"{self.dp} x TP{self.tp}{pipe}, {p.weights.value}/{p.kv_cache.value} KV, max {s.max_batch}{chunk}"

    @property
    def capacity(self) -> float:
        return self.found.capacity if self.found else 0.0

    @property
    def probes(self) -> int:
        """Serving runs its search made (the offline run included)."""
        return len(self.found.probes) + 1 if self.found else 0

    def at_capacity(self) -> dict | None:
        """The summary of the highest passing probe (None: none passed)."""
        return self.found.low.summary if self.found and self.found.low else None

    def per_usd_hour(self) -> float:
        s = self.at_capacity()
        return self.capacity / (s["usd_per_chip_hour"] * s["run"]["chips"]) if s else 0.0

    def per_watt(self) -> float:
        s = self.at_capacity()
        return self.capacity / (s["avg_power_W"] * s["run"]["chips"]) if s else 0.0


def layouts(cfg: RunConfig) -> list[tuple[int, int, int]]:
    """(tp, pp, dp) of every split of the config's chips that passes the serving checks, fewest
    pipeline stages first, then fewest chips per replica.

    Raises:
        RunError: no split passes them (the reason the config's own layout fails, else the first split's).
    """
    chips, found, why = cfg.parallel.tp * cfg.parallel.pp * cfg.parallel.dp, [], None
    own = (cfg.parallel.tp, cfg.parallel.pp)
    for pp in range(1, chips + 1):
        for tp in range(1, chips // pp + 1):
            if chips % (tp * pp):
                continue
            try:
                check_serving(replace(cfg, parallel=replace(cfg.parallel, tp=tp, pp=pp, dp=chips // (tp * pp))))
            except RunError as err:
                if why is None or (tp, pp) == own:  # the first split's reason, unless the config's own layout's
                    why = err
                continue
            found.append((tp, pp, chips // (tp * pp)))
    if not found:  # nothing to search
        raise RunError(f"no split of the {chips} chip{'s' if chips != 1 else ''} can serve this config: {why}")
    return found


def formats(cfg: RunConfig) -> list[tuple[DType, DType]]:
    """(weights, KV cache) formats to try: the config's, and fp8 for both where the chip's matrices run
    fp8 and the config's are wider."""
    p = cfg.precision
    out = [(p.weights, p.kv_cache)]
    narrow = (min(p.weights, DType.fp8, key=lambda d: d.bits), min(p.kv_cache, DType.fp8, key=lambda d: d.bits))
    if cfg.hardware.supports(DType.fp8) and narrow not in out and p.activations.bits >= 8:
        out.append(narrow)
    return out


def _with(cfg: RunConfig, tp: int, pp: int, dp: int, fmt: tuple[DType, DType]) -> RunConfig:
    return replace(cfg, parallel=replace(cfg.parallel, tp=tp, pp=pp, dp=dp),
                   precision=replace(cfg.precision, weights=fmt[0], kv_cache=fmt[1]))


def _sized(trial: RunConfig, requests: int) -> str:
    """Why ``trial`` cannot be served ('' when it fits): sized without a simulation, for the most ``requests`` a probe
    may draw (``--max-requests``, not ``workload.num_requests``, which the probes do not read): a probe that grows
    draws the same first requests and more, so a layout sized for fewer could fail part-way through its search."""
    try:
        plan_memory(replace(trial, workload=replace(trial.workload, num_requests=requests)))
    except RunError as err:
        return f"pruned before probing: {err}"
    return ""


def search_layouts(cfg: RunConfig, base_requests: int, max_requests: int, progress=None,
                   max_layouts: int = MAX_LAYOUTS) -> list[Candidate]:
    """Every candidate, best first (ties: fewer chips per replica, more sequences); the unprobed last.

    Raises:
        RunError: ``max_layouts`` below 1, no split of the chips passes the serving checks (``layouts``), or no
            layout could be probed (none fits in memory) or served.
    """
    if max_layouts < 1:
        raise RunError(f"--max-layouts must be >= 1 (got {max_layouts})")
    out, probed = [], []

    def probe(trial: RunConfig) -> Candidate:
        try:
            cand = Candidate(trial, find_capacity(trial, base_requests, max_requests))
        except RunError as err:
            cand = Candidate(trial, None, str(err))
        if progress is not None:
            progress(cand)
        return cand

    trials = [_with(cfg, tp, pp, dp, fmt) for tp, pp, dp in layouts(cfg) for fmt in formats(cfg)]
    trials.sort(key=lambda t: (t.parallel.pp, t.parallel.tp, t.precision.weights.bits < cfg.precision.weights.bits))
    for trial in trials:
        pruned = _sized(trial, max_requests)
        if pruned or len(probed) >= max_layouts:
            out.append(Candidate(trial, None, pruned or f"not probed: over --max-layouts={max_layouts}"))
            continue
        probed.append(probe(trial))
    if not any(c.found for c in probed):  # a table of refusals is no result: one line, the first reason
        first = (probed + out)[0]
        chips = cfg.parallel.tp * cfg.parallel.pp * cfg.parallel.dp
        where = f"{chips} chip{'s' if chips != 1 else ''}"
        reason = f"{first.name}: {first.failure.removeprefix('pruned before probing: ')}"
        skipped = sum(c.failure.startswith("not probed") for c in out)
        if skipped:  # others fit in memory but --max-layouts left them out: say so, not that nothing serves
            raise RunError(f"no probed layout of the {where} serves {cfg.model.name} on {cfg.hardware.name} "
                           f"({reason}); {skipped} more fit in memory but were not probed "
                           f"(--max-layouts={max_layouts}): raise it")
        raise RunError(f"no layout of the {where} serves {cfg.model.name} on {cfg.hardware.name}: {reason}")
    best = max(probed, key=lambda c: c.capacity, default=None)
    if best is not None and best.capacity > 0:
        probed += [probe(t) for t in _knobs(best.cfg) if not _sized(t, max_requests)]
    return sorted(probed, key=lambda c: (-c.capacity, c.tp * c.pp, -c.max_batch)) + out


def _knobs(cfg: RunConfig) -> list[RunConfig]:
    """The best layout with a quarter of its sequences, and a quarter of its chunk (max batched tokens)."""
    s, out = cfg.scheduler, []
    if s.max_batch >= 4:
        out.append(replace(cfg, scheduler=replace(s, max_batch=s.max_batch // 4)))
    if s.kind in (SchedulerKind.chunked_prefill, SchedulerKind.continuous) and \
            s.token_budget >= 16 * cfg.attention.kv_block_tokens:
        out.append(replace(cfg, scheduler=replace(s, token_budget=s.token_budget // 4)))
    return out


def why(c: Candidate, best: Candidate) -> str:
    """Why ``c`` carries less than ``best``, from its own search."""
    if c.found is None:
        return c.failure if c.failure.startswith(("pruned", "not probed")) else f"cannot run: {c.failure}"
    high = c.found.high
    if high is None:
        return "no failing rate found"
    st, cfg = high.steady, c.found.cfg.slo
    if high.summary["overloaded"]:
        stop = f"throughput: the queue grows without bound at {high.rate:.3g} requests/s"
    elif cfg.tpot_p99_s is not None and st["tpot_p99_s"] is not None and st["tpot_p99_s"] > cfg.tpot_p99_s:
        stop = f"step time: p99 TPOT {st['tpot_p99_s'] * 1e3:.0f} ms at {high.rate:.3g} requests/s"
    elif not long_enough(high.rate, high.requests, high.summary):
        stop = (f"not measured: the probe at {high.rate:.3g} requests/s met the targets but its {high.requests:,} "
                f"requests span under {MIN_SPAN_LIFETIMES} mean lifetimes, so its capacity is a lower bound "
                "(raise --max-requests to compare it)")
    else:
        stop = f"queue: p99 TTFT {st['ttft_p99_s']:.3g} s at {high.rate:.3g} requests/s"
    s, b = c.at_capacity() or high.summary, best.at_capacity() or best.found.offline.summary
    return (f"{stop}; KV cache holds {s['kv_cache']['sequences_fit_at_mean_lengths']:,} sequences per replica "
            f"(best {b['kv_cache']['sequences_fit_at_mean_lengths']:,}); HBM {s['utilisation']['hbm_bandwidth']:.0%}, "
            f"compute {s['utilisation']['compute_arrays']:.0%} used (best {b['utilisation']['hbm_bandwidth']:.0%}, "
            f"{b['utilisation']['compute_arrays']:.0%})")


def render_search(cands: list[Candidate]) -> str:
    """The ranking, with capacity per dollar and per watt, and why each loser loses."""
    best = cands[0]
    lines = [f"  {'layout':<52} {'requests/s':>10}  {'req/s per $/h':>16}  {'per kW':>6}   why it carries less "
             "(-: not run)"]
    for c in cands:
        reason = "best" if c is best and c.found else why(c, best)
        at_least = ">=" if c.found and c.found.lower_bound else ""  # the probe length stopped it (see why)
        figures = (f"{at_least + format(c.capacity, '.3g'):>10}  {c.per_usd_hour():>16.3g}  {c.per_watt() * 1e3:>6.3g}"
                   if c.found
                   else f"{'-':>10}  {'-':>16}  {'-':>6}")  # not probed or cannot run: no capacity, not zero
        lines.append(f"  {c.name:<52} {figures}   {reason}")
    return "\n".join(lines)
