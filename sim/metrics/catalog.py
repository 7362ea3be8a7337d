"""The metric catalog: every number a summary holds, with its unit, which way is better and its label.

Names are summary.json's keys flattened to dotted names (``utilisation.hbm_bandwidth``), as the
sweep table, search and sensitivity see them. A name ending in ``.*`` is a family: it covers
every key under that node (``time_by_bound_s.memory``, ``area.by_part_mm2.sram``). The console,
the charts (axis labels, which way a Pareto front faces), the sweep report, sensitivity and
search all read it; a metric added to a summary (sim/metrics/summary.py, and its batch-path twin
sim/metrics/vector_summary.py; or serving_summary.py) is added here, and a test checks that every
numeric key of a single-batch and a serving summary has an entry.

``better`` says which way a user optimising the metric would go; for figures that describe
rather than judge a run (chips, the run's batch) it is the cheaper way.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import Enum


class Better(Enum):
    high = "high"
    low = "low"


class UnknownMetric(ValueError):
    """A metric name the catalog does not know; the message is one line for the user."""


@dataclass(frozen=True)
class Metric:
    """One metric (or family of metrics, ``name`` ending in ``.*``).

    Attributes:
        name: the dotted summary key.
        unit: its unit as printed ("s", "tokens/s", "J", "USD", ...); "" for counts and ratios.
        better: which way is better.
        title: what it is, without the unit ("time to first token").
        unit_in_title: the title already ends in the unit ("output tokens/s"): no "(unit)" after it.
        member: for a member of a family, its key under the family's node ("memory").
    """

    name: str
    unit: str
    better: Better
    title: str
    unit_in_title: bool = False
    member: str = ""

    @property
    def label(self) -> str:
        """The title with its unit, for axes and tables: "time to first token (s)", "time by bound (s): memory"."""
        text = self.title if self.unit_in_title or not self.unit else f"{self.title} ({self.unit})"
        return f"{text}: {self.member}" if self.member else text

    @property
    def higher_is_better(self) -> bool:
        return self.better is Better.high


H, L = Better.high, Better.low
LATENCY_TITLES = {"queueing_delay": "queueing delay", "ttft": "time to first token", "tpot": "time per output token",
                  "e2e": "end to end"}
PERCENTILES = (50, 90, 99)


def _rate(name: str, title: str) -> Metric:
    return Metric(name, "/s", H, title, unit_in_title=True)


_BATCH = (
    Metric("ttft_s", "s", L, "time to first token"),
    Metric("tpot_s", "s", L, "time per output token"),
    Metric("total_s", "s", L, "total time"),
    _rate("output_tokens_per_s", "output tokens/s"),
    _rate("prefill_tokens_per_s", "prefill tokens/s"),
    Metric("time_by_bound_s.*", "s", L, "time by bound"),
    Metric("time_by_op_s.*", "s", L, "time by operator type"),
    Metric("time_by_tier_s.*", "s", L, "interconnect time by network tier"),
    Metric("time_by_part_s.*", "s", L, "op time by model part"),
    Metric("host_overhead_s", "s", L, "host overhead"),
    Metric("flops_per_chip", "FLOP", L, "FLOPs per chip"),
    Metric("matrix_flops_per_chip", "FLOP", L, "matrix FLOPs per chip"),
    Metric("hbm_bytes_per_chip", "B", L, "HBM bytes per chip"),
    Metric("link_bytes_per_chip", "B", L, "link bytes per chip"),
    Metric("utilisation.*", "", H, "utilisation"),
    Metric("busy_fraction.*", "", H, "busy fraction"),
    Metric("utilisation_by_resource.*", "", H, "utilisation of a declared resource"),
    Metric("hbm_GB_per_chip.*", "GB", L, "HBM per chip"),
    Metric("hbm_GB_per_chip.capacity", "GB", H, "HBM capacity per chip"),
    Metric("peaks.matrix_TFLOPS", "TFLOP/s", H, "peak matrix compute"),
    Metric("peaks.hbm_GBps", "GB/s", H, "peak HBM bandwidth"),
    Metric("peaks.link_GBps_per_direction", "GB/s", H, "peak link bandwidth per direction"),
    Metric("peaks.ridge_flop_per_byte", "FLOP/byte", L, "ridge point"),
    Metric("pipeline.*", "", L, "pipeline"),
    Metric("kv_offload.kv_on_host_GB", "GB", L, "KV cache per chip in host memory"),
    Metric("kv_offload.*", "", L, "KV offload to host memory"),
    Metric("context_parallel.*", "", L, "context parallelism"),
)
_SERVING = (
    Metric("completed_requests", "", H, "completed requests"),
    Metric("requests", "", H, "requests"),
    *(Metric(f"{key}_p{p}_s", "s", L, f"{words}, p{p}") for key, words in LATENCY_TITLES.items() for p in PERCENTILES),
    *(Metric(f"{key}_mean_s", "s", L, f"{words}, mean") for key, words in LATENCY_TITLES.items()),
    _rate("prompt_tokens_per_s", "prompt tokens/s"),
    _rate("requests_per_s", "requests/s"),
    _rate("goodput_requests_per_s", "goodput requests/s"),
    Metric("slo_attainment", "", H, "requests meeting the SLO (fraction)"),
    Metric("slo.*", "s", H, "SLO"),
    Metric("preemptions", "", L, "preemptions"),
    Metric("queue_growth_s_per_s", "s/s", L, "queueing-delay growth"),
    Metric("duration_s", "s", L, "duration"),
    Metric("output_tokens", "", H, "output tokens"),
    Metric("prompt_tokens", "", H, "prompt tokens"),
    Metric("littles_law.*", "", L, "Little's law"),
    Metric("steps", "", L, "steps"),
    Metric("batch_size_mean", "sequences", H, "mean batch"),
    Metric("batch_size_max", "sequences", H, "largest batch"),
    Metric("kv_cache_use_mean", "", H, "mean KV-cache use (fraction)"),
    Metric("kv_cache_use_max", "", H, "peak KV-cache use (fraction)"),
    Metric("kv_cache.*", "", H, "KV cache"),
    Metric("swapped_GB_per_chip", "GB", L, "swapped per chip"),
    Metric("instances", "", L, "instances"),
    Metric("kv_moves.count", "", L, "KV moves"),
    Metric("kv_moves.GB_per_chip", "GB", L, "KV moved per chip"),
    Metric("kv_moves.mean_s", "s", L, "mean KV move"),
    Metric("busy_fraction", "", H, "chip busy (fraction)"),
    Metric("steady_state.*", "s", L, "steady-state p99"),
    Metric("steady_state.measured_requests", "", H, "steady-state requests measured"),
    Metric("steady_state.excluded_requests", "", L, "warm-up and drain requests left out"),
    Metric("prefix_cache.*", "", H, "prefix cache"),
    Metric("prefix_cache.saved_prefill_tokens", "", H, "prefill tokens saved by the prefix cache"),
    Metric("prefix_cache.evictions", "", L, "prefix-cache evictions"),
    Metric("prefix_cache.ttft_mean_hit_s", "s", L, "mean TTFT of prefix-cache hits"),
    Metric("prefix_cache.ttft_mean_miss_s", "s", L, "mean TTFT of prefix-cache misses"),
    Metric("load.requests_by_instance.*", "", L, "requests by instance"),
    Metric("load.busy_fraction_by_instance.*", "", H, "busy by instance (fraction)"),
    Metric("load.request_imbalance", "", L, "request imbalance (busiest over mean)"),
    Metric("load.busy_imbalance", "", L, "busy-time imbalance (busiest over mean)"),
)
_ECONOMICS = (
    Metric("energy_J", "J", L, "energy"),
    Metric("avg_power_W", "W", L, "avg power"),
    Metric("peak_power_W", "W", L, "peak power"),
    Metric("sustained_clock_GHz", "GHz", H, "sustained clock"),
    Metric("energy.min_clock_GHz", "GHz", H, "lowest sustained clock"),
    Metric("energy.boost_clock_GHz", "GHz", H, "boost clock"),
    Metric("energy.sustained_clock_GHz", "GHz", H, "sustained clock"),
    Metric("area.hbm_stacks", "", L, "HBM stacks"),
    Metric("joules_per_output_token", "J", L, "energy per output token"),
    Metric("chip_area_mm2", "mm^2", L, "chip area"),
    Metric("chip_cost_usd", "USD", L, "chip cost"),
    Metric("usd_per_chip_hour", "USD", L, "price per chip-hour"),
    Metric("usd_per_million_output_tokens", "USD", L, "cost per million output tokens"),
    Metric("usd_per_million_tokens", "USD", L, "cost per million tokens"),
    Metric("output_tokens_per_s_per_usd", "tokens/s per USD", H, "output tokens/s per dollar of chips"),
    Metric("output_tokens_per_s_per_W", "tokens/s per W", H, "output tokens/s per watt"),
    Metric("energy.*", "J", L, "energy"),
    Metric("energy.avg_power_W_all_chips", "W", L, "average power, all chips"),
    Metric("energy.static_power_W", "W", L, "static power per chip"),
    Metric("energy.board_power_W", "W", L, "board power"),
    Metric("energy.power_W_by_phase.*", "W", L, "power by phase"),
    Metric("area.*", "mm^2", L, "area"),
    Metric("area.num_dies", "", L, "dies per chip"),
    Metric("cost.*", "USD", L, "cost"),
    Metric("cost.dies_per_wafer", "", H, "dies per wafer"),
    Metric("cost.die_yield", "", H, "die yield (fraction)"),
    # figures of a searched design (sim/studies/search/evaluate.py)
    Metric("die_area_mm2", "mm^2", L, "die area"),
    Metric("max_power_W", "W", L, "maximum power per chip"),
    Metric("peak_matrix_TFLOPS", "TFLOP/s", H, "peak matrix compute"),
    Metric("chips", "", L, "chips"),
    Metric("system_cost_usd", "USD", L, "cost of the chips"),
    Metric("run.*", "", L, "run"),
    Metric("provenance.*", "", L, "provenance"),
)
CATALOG: dict[str, Metric] = {m.name: m for m in (*_BATCH, *_SERVING, *_ECONOMICS)}


def find(name: str) -> Metric | None:
    """The catalog's entry for ``name`` (a family member gets its own title), or None."""
    if name in CATALOG:
        return CATALOG[name]
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the deepest family that covers it
        family = CATALOG.get(".".join(parts[:i]) + ".*")
        if family is not None:
            leaf = " ".join(parts[i:]).replace("_", " ")
            return Metric(name, family.unit, family.better, family.title, family.unit_in_title, leaf)
    return None


def metric(name: str) -> Metric:
    """The catalog's entry for ``name``; :class:`UnknownMetric` (one line naming the known ones) if none."""
    found = find(name)
    if found is None:
        close = difflib.get_close_matches(name, list(CATALOG), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UnknownMetric(f"'{name}' is not a metric{hint}; known: {', '.join(CATALOG)} "
                            "(x.* covers every key under x)")
    return found


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better; :class:`UnknownMetric` if the catalog lacks it."""
    return metric(name).higher_is_better


def label(name: str) -> str | None:
    """The metric's label with its unit, or None when the catalog lacks it."""
    found = find(name)
    return found.label if found is not None else None
