"""Latency percentiles of a serving run as server benchmarks measure them (MLPerf Inference's LLM
server scenario; the same rules as issue 15 states them):

* TPOT of a request = (end-to-end - TTFT) / (output tokens - 1); a one-token request has none;
* the p99 is over requests, of those arriving in the steady state: the ones arriving in the first
  and the last ``WARMUP_FRACTION`` of the arrival span are left out (warm-up and drain); with
  every request at t = 0 (offline) all count;
* a p99 is *precise* when its bootstrap ``CI_LEVEL`` interval lies within ``CI_HALF_WIDTH`` of
  it (Efron's percentile bootstrap: ``RESAMPLES`` resamples from a fixed seed, so the same run gives
  the same interval; the interval's ends are Hyndman and Fan's type-7 quantiles of the resampled
  p99s; tests/test_capacity.py holds it to scipy.stats.bootstrap's percentile method, bit for bit since
  scipy 1.17, which takes a second to import); otherwise more requests are needed (llmsim-capacity
  runs them).

A run meets its p99 targets (``slo.ttft_p99_s``, ``slo.tpot_p99_s``) when each p99 is within its
target; a target left null is not checked.
"""

from __future__ import annotations

import math

import numpy as np

from sim.config.schema import SloConfig

WARMUP_FRACTION = 0.1
CI_LEVEL = 0.9
CI_HALF_WIDTH = 0.05
RESAMPLES = 300
PERCENTILE = 99


def steady_state(arrival_s: np.ndarray) -> np.ndarray:
    """Mask of the requests arriving outside the first and the last ``WARMUP_FRACTION`` of the arrival span."""
    first, last = float(np.min(arrival_s)), float(np.max(arrival_s))
    span = last - first
    if span <= 0:
        return np.ones(arrival_s.shape, dtype=bool)
    return (arrival_s >= first + WARMUP_FRACTION * span) & (arrival_s <= last - WARMUP_FRACTION * span)


def p99_with_interval(values: np.ndarray) -> dict:
    """The p99 of ``values`` (NaNs dropped), its bootstrap interval, and whether that interval is within
    ``CI_HALF_WIDTH`` of it."""
    values = values[~np.isnan(values)]
    if values.size < 2:
        value = float(values[0]) if values.size else None
        return {"p99_s": value, "ci_s": [value, value], "samples": int(values.size), "precise": False}
    value = float(np.percentile(values, PERCENTILE))
    low, high = (value, value) if np.ptp(values) == 0 else bootstrap_interval(values)
    precise = low >= value * (1 - CI_HALF_WIDTH) and high <= value * (1 + CI_HALF_WIDTH)
    return {"p99_s": value, "ci_s": [low, high], "samples": int(values.size), "precise": bool(precise)}


def bootstrap_interval(values: np.ndarray) -> tuple[float, float]:
    """The ``CI_LEVEL`` percentile-bootstrap interval of the p99 of ``values``: the p99 of each of ``RESAMPLES``
    resamples (drawn with replacement, from seed 0), then the two-sided interval's ends as type-7 quantiles
    (Hyndman and Fan 1996: h = p (n - 1), interpolated between the sorted values around it)."""
    picks = np.random.default_rng(0).integers(0, values.size, (RESAMPLES, values.size))
    resampled = np.sort(resampled_percentiles(values, picks))
    alpha = (1 - CI_LEVEL) / 2
    p = np.array([alpha, 1 - alpha])
    n = resampled.size
    h = p * n + (1 - p)  # one more than the 0-based position p (n - 1): within [1, n) for 0 < p < 1
    above = (h // 1).astype(np.int64)
    frac = h % 1
    low, high = (1 - frac) * resampled[above - 1] + frac * resampled[above]
    return float(low), float(high)


def resampled_percentiles(values: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """``np.percentile(values[picks], PERCENTILE, axis=-1)`` for resamples of ``values`` (NaN-free) of its own size,
    bit for bit, without sorting or partitioning every resample: a resample's p99 lies between two of its
    order statistics near its top, which are found among the picks above a rank that about ``8 sqrt(m) + 16``
    more than the ``m`` needed clear (a resample with too few falls back to partitioning it), then
    interpolated as numpy's linear method does (from the nearer end when the weight is at least 1/2). Where
    0.0 and -0.0 tie, which one numpy's partition picks is its own: the zero's sign may differ."""
    n = values.size
    if n < 2:
        return np.percentile(values[picks], PERCENTILE, axis=-1)
    order = np.argsort(values, kind="stable")
    rank = np.empty(n, dtype=np.int32)  # each value's position in sorted order
    rank[order] = np.arange(n, dtype=np.int32)
    ranks = rank[picks]
    h = (n - 1) * (PERCENTILE / 100)  # numpy's virtual index of the linear method
    k = int(h)
    gamma = h - k
    top = n - k  # order statistics k .. n - 1 of a resample
    mask = ranks >= max(0, n - math.ceil(top + 8 * math.sqrt(top) + 16))
    counts = np.count_nonzero(mask, axis=1)
    rows = np.repeat(np.arange(len(picks), dtype=np.int64), counts)
    kept = np.sort(ranks[mask] + rows * n) - rows * n  # each resample's picks above the rank, in order
    at = np.cumsum(counts) - counts + k - (n - counts)  # where its order statistic k is among them
    short = counts < top
    low, high = np.zeros(len(picks), dtype=np.int64), np.zeros(len(picks), dtype=np.int64)
    low[~short], high[~short] = kept[at[~short]], kept[at[~short] + 1]
    for i in np.flatnonzero(short):
        part = np.partition(ranks[i], [k, k + 1])
        low[i], high[i] = part[k], part[k + 1]
    ordered = values[order]
    a, b = ordered[low], ordered[high]
    diff = b - a
    return a + diff * gamma if gamma < 0.5 else b - diff * (1 - gamma)


def steady_p99(cols: dict[str, np.ndarray], slo: SloConfig) -> dict:
    """The steady-state p99 TTFT and TPOT with their intervals, and whether they meet the p99 targets."""
    keep = steady_state(cols["arrival_s"])
    ttft, tpot = p99_with_interval(cols["ttft_s"][keep]), p99_with_interval(cols["tpot_s"][keep])
    meets = meets_p99(ttft["p99_s"], tpot["p99_s"], slo) if slo.has_p99 else None
    return {"measured_requests": int(keep.sum()), "excluded_requests": int((~keep).sum()),
            "ttft_p50_s": _median(cols["ttft_s"][keep]), "tpot_p50_s": _median(cols["tpot_s"][keep]),
            "ttft_p99_s": ttft["p99_s"], "ttft_p99_ci_s": ttft["ci_s"], "tpot_p99_s": tpot["p99_s"],
            "tpot_p99_ci_s": tpot["ci_s"], "precise": ttft["precise"] and tpot["precise"],
            "targets": {"ttft_p99_s": slo.ttft_p99_s, "tpot_p99_s": slo.tpot_p99_s}, "meets_p99_slo": meets}


def meets_p99(ttft_p99: float | None, tpot_p99: float | None, slo: SloConfig) -> bool | None:
    """Whether the p99s meet the p99 targets of ``slo`` (a null target always holds; a missing TPOT p99, when every
    request made one token, meets any target); None, not judged, when nothing was measured (no TTFT p99: every
    request has one)."""
    if ttft_p99 is None:
        return None
    return all(target is None or value is None or value <= target
               for value, target in ((ttft_p99, slo.ttft_p99_s), (tpot_p99, slo.tpot_p99_s)))


def _median(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else None
