"""The charts, keyed by ``Chart``: each one's label (what it shows), its file name and the function
that draws it. Reports look charts up here (sim/studies/sweep/report.py, the serving job,
llmsim-sensitivity) rather than naming modules; a new chart is a module with its draw function,
a member of ``Chart`` and one entry here. Draw functions are imported on first use, so looking a
chart up (every ``llmsim`` run does) does not import matplotlib.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class Chart(Enum):
    regime_map = "regime_map"
    breakdown_by_bound = "breakdown_by_bound"
    breakdown_by_op = "breakdown_by_op"
    pareto = "pareto"
    roofline = "roofline"
    decode_step = "decode_step"
    serving = "serving"
    sensitivity = "sensitivity"
    latency_load = "latency_load"


@dataclass(frozen=True)
class ChartEntry:
    """A chart: what it shows, the file it is written to (``<stem><tag>.png``) and how it is drawn
    (``target``: ``"module:function"`` under sim/plots/, called with ``options`` as keywords)."""

    label: str
    stem: str
    target: str
    options: dict = field(default_factory=dict)

    def draw(self, *args, **kwargs) -> Path:
        """Draw the chart (its module imported now, matplotlib with it)."""
        module, function = self.target.split(":")
        return getattr(importlib.import_module(module), function)(*args, **self.options, **kwargs)

    def file(self, tag: str = "") -> str:
        return f"{self.stem}{tag}.png"


CHARTS: dict[Chart, ChartEntry] = {
    Chart.regime_map: ChartEntry("dominant bound over two swept axes, contours of a metric", "regime_map",
                                 "sim.plots.regime:plot_regime"),
    Chart.breakdown_by_bound: ChartEntry("time by bound, stacked, per sweep point", "breakdown_by_bound",
                                         "sim.plots.breakdown:plot_breakdown", {"by": "bound"}),
    Chart.breakdown_by_op: ChartEntry("time by operator type, stacked, per sweep point", "breakdown_by_op",
                                      "sim.plots.breakdown:plot_breakdown", {"by": "op"}),
    Chart.pareto: ChartEntry("the Pareto front of two metrics", "pareto", "sim.plots.pareto:plot_pareto"),
    Chart.roofline: ChartEntry("one run's ops against the chip's compute and bandwidth ceilings", "roofline",
                               "sim.plots.roofline:plot_roofline"),
    Chart.decode_step: ChartEntry("Gantt of one decode step and one layer", "decode_step",
                                  "sim.plots.timeline:plot_decode_step"),
    Chart.serving: ChartEntry("a serving run's latency percentiles, batch, queue and KV-cache use over time",
                              "serving", "sim.plots.serving_timeline:plot_serving"),
    Chart.sensitivity: ChartEntry("change in a metric for each hardware parameter and software option",
                                  "sensitivity", "sim.plots.tornado:plot_sensitivity"),
    Chart.latency_load: ChartEntry("p50 and p99 TTFT and TPOT against the offered rate, the capacity marked",
                                   "latency_vs_load", "sim.plots.latency_load:plot_latency_load"),
}
