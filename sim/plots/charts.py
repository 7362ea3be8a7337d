"""The charts, keyed by ``Chart``: each one's label (what it shows), its file name and the function
that draws it. Reports look charts up here (sim/studies/sweep/report.py, the serving job,
llmsim-sensitivity) rather than naming modules; a new chart is a module with its draw function,
a member of ``Chart`` and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path

from sim.plots.breakdown import plot_breakdown
from sim.plots.pareto import plot_pareto
from sim.plots.regime import plot_regime
from sim.plots.roofline import plot_roofline
from sim.plots.serving_timeline import plot_serving
from sim.plots.timeline import plot_decode_step
from sim.plots.tornado import plot_sensitivity


class Chart(Enum):
    regime_map = "regime_map"
    breakdown_by_bound = "breakdown_by_bound"
    breakdown_by_op = "breakdown_by_op"
    pareto = "pareto"
    roofline = "roofline"
    decode_step = "decode_step"
    serving = "serving"
    sensitivity = "sensitivity"


@dataclass(frozen=True)
class ChartEntry:
    """A chart: what it shows, the file it is written to (``<stem><tag>.png``) and how it is drawn."""

    label: str
    stem: str
    draw: Callable[..., Path]

    def file(self, tag: str = "") -> str:
        return f"{self.stem}{tag}.png"


CHARTS: dict[Chart, ChartEntry] = {
    Chart.regime_map: ChartEntry("dominant bound over two swept axes, contours of a metric", "regime_map",
                                 plot_regime),
    Chart.breakdown_by_bound: ChartEntry("time by bound, stacked, per sweep point", "breakdown_by_bound",
                                         partial(plot_breakdown, by="bound")),
    Chart.breakdown_by_op: ChartEntry("time by operator type, stacked, per sweep point", "breakdown_by_op",
                                      partial(plot_breakdown, by="op")),
    Chart.pareto: ChartEntry("the Pareto front of two metrics", "pareto", plot_pareto),
    Chart.roofline: ChartEntry("one run's ops against the chip's compute and bandwidth ceilings", "roofline",
                               plot_roofline),
    Chart.decode_step: ChartEntry("Gantt of one decode step and one layer", "decode_step", plot_decode_step),
    Chart.serving: ChartEntry("a serving run's latency percentiles, batch, queue and KV-cache use over time",
                              "serving", plot_serving),
    Chart.sensitivity: ChartEntry("change in a metric for each hardware parameter and software option",
                                  "sensitivity", plot_sensitivity),
}
