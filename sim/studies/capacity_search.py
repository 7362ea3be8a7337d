"""``llmsim-capacity ... --search``: the best way to lay a model out on a box, by capacity under the SLOs.

The box is the chips of the given config (``parallel.tp x parallel.dp``). Every layout of them as
``dp`` replicas of ``tp`` chips (``tp`` dividing the chips, the heads and the MLP, within one
fabric) is tried with ``scheduler.max_batch`` at its value and at a quarter of it, each by a
capacity search (sim/studies/capacity.py). They are ranked by capacity, and the table also gives
capacity per dollar (requests/s per $ per hour of the box's chips) and per watt (requests/s per
W of average power at capacity). A layout that cannot run says why (the model does not fit,
the cache holds no request); for the others the report names what stopped each at the high end
of its bracket: the queue (p99 TTFT over its target while TPOT holds), the step time (p99 TPOT
over its target) or throughput (the queue grew without bound), with its KV cache's room in
sequences of mean length and its HBM and compute use at capacity beside the winner's.
Pipeline parallelism is not tried: serving runs model tensor-parallel groups only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.config.schema import RunConfig, RunError, check_run
from sim.studies.capacity import Capacity, find_capacity


@dataclass
class Candidate:
    """One layout and its capacity search (None with the reason it could not run)."""

    tp: int
    dp: int
    max_batch: int
    found: Capacity | None
    failure: str = ""

    @property
    def name(self) -> str:
        return f"{self.dp} x TP{self.tp}, max {self.max_batch} sequences"

    @property
    def capacity(self) -> float:
        return self.found.capacity if self.found else 0.0

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
    """(tp, dp, max_batch) of every layout of the config's chips that passes the run checks."""
    chips, found = cfg.parallel.tp * cfg.parallel.dp, []
    batches = sorted({cfg.scheduler.max_batch, max(1, cfg.scheduler.max_batch // 4)}, reverse=True)
    for tp in range(1, chips + 1):
        if chips % tp:
            continue
        try:
            check_run(replace(cfg, parallel=replace(cfg.parallel, tp=tp, dp=chips // tp)))
        except RunError:
            continue
        found += [(tp, chips // tp, batch) for batch in batches]
    return found


def search_layouts(cfg: RunConfig, base_requests: int, max_requests: int, progress=None) -> list[Candidate]:
    """Every layout's capacity, best first (ties: fewer chips per replica)."""
    out = []
    for tp, dp, batch in layouts(cfg):
        trial = replace(cfg, parallel=replace(cfg.parallel, tp=tp, dp=dp),
                        scheduler=replace(cfg.scheduler, max_batch=batch))
        try:
            cand = Candidate(tp, dp, batch, find_capacity(trial, base_requests, max_requests))
        except RunError as err:
            cand = Candidate(tp, dp, batch, None, str(err))
        if progress is not None:
            progress(cand)
        out.append(cand)
    return sorted(out, key=lambda c: (-c.capacity, c.tp, -c.max_batch))


def why(c: Candidate, best: Candidate) -> str:
    """Why ``c`` carries less than ``best``, from its own search."""
    if c.found is None:
        return f"cannot run: {c.failure}"
    high, st = c.found.high, None
    if high is None:
        return "no failing rate found"
    st, cfg = high.steady, c.found.cfg.slo
    if high.summary["overloaded"]:
        stop = f"throughput: the queue grows without bound at {high.rate:.3g} requests/s"
    elif cfg.tpot_p99_s is not None and st["tpot_p99_s"] is not None and st["tpot_p99_s"] > cfg.tpot_p99_s:
        stop = f"step time: p99 TPOT {st['tpot_p99_s'] * 1e3:.0f} ms at {high.rate:.3g} requests/s"
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
    lines = ["  layout                              capacity/s  per $/h of chips  per kW   why it carries less"]
    for c in cands:
        reason = "best" if c is best else why(c, best)
        lines.append(f"  {c.name:<35} {c.capacity:>10.3g}  {c.per_usd_hour():>16.3g}  {c.per_watt() * 1e3:>6.3g}"
                     f"   {reason}")
    return "\n".join(lines)
