"""The kinds of run, keyed by ``workload.kind``: for each, how it is simulated, summarised and reported.

``WORKLOADS[kind]`` is what the ``llmsim`` command, the search and the single-configuration
studies look up instead of asking which kind a run is. It lives on the studies floor because it
joins every floor below: the simulation (sim/batch, sim/serving), the summary (sim/metrics) and
the files, console lines and charts (sim/output, sim/plots).

A new kind of run is a member of ``WorkloadKind``, its simulate / summarize / report functions
and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sim.batch.run import simulate
from sim.config.schema import RunConfig, WorkloadKind
from sim.metrics.run_summary import Summary
from sim.metrics.serving_summary import serving_summary
from sim.metrics.summary import batch_summary
from sim.serving.run import simulate_serving
from sim.studies.batch_job import report_batch
from sim.studies.serving_job import report_serving

Report = Callable[[Any, DictConfig, Path, "Callable[[], None] | None", bool], dict]


@dataclass(frozen=True)
class WorkloadEntry:
    """One kind of run.

    Attributes:
        label: how people name it.
        simulate: config -> result (raises RunError and friends for a config that cannot run).
        summarize: result -> the typed summary (sim/metrics/run_summary.py).
        report: (result, composed config, output folder, on-finished, quiet) -> summary.json's
            content, after writing the kind's files (summary.json last) and printing its console
            summary (not when quiet: a multirun point).
        one_config_studies: whether llmsim-grid and llmsim-sensitivity, which vary one batch's
            config in-process, apply (serving runs are swept with ``llmsim -m``).
    """

    label: str
    simulate: Callable[[RunConfig], Any]
    summarize: Callable[[Any], Summary]
    report: Report
    one_config_studies: bool


WORKLOADS: dict[WorkloadKind, WorkloadEntry] = {
    WorkloadKind.single_batch: WorkloadEntry("single batch: prefill, then decode", simulate, batch_summary,
                                             report_batch, one_config_studies=True),
    WorkloadKind.serving: WorkloadEntry("serving: a stream of requests through a scheduler", simulate_serving,
                                        serving_summary, report_serving, one_config_studies=False),
}


def workload(kind: WorkloadKind | str) -> WorkloadEntry:
    """The entry of ``kind`` (an enum member or its value, as a composed config may hold it)."""
    return WORKLOADS[WorkloadKind(getattr(kind, "value", kind))]
