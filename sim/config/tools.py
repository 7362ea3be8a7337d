"""Settings of the tools around a run (files and console, multirun reports, design search).

None of these changes a run's numbers, so none is part of ``RunConfig`` or of a sweep point's
reuse key (sim/studies/sweep/points.py); ``AppConfig`` (sim/config/schema.py) adds them beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class OutputConfig:
    write_files: bool = True  # summary.json, ops.parquet, ops.csv, config.yaml
    print_summary: bool = True  # a single run's full summary; a multirun point prints one line (sweep/callbacks.py)
    trace: bool = False  # also trace.json: Chrome trace (Perfetto) of the prefill and the first decode steps


@dataclass
class SweepConfig:
    """How a multirun behaves and what its report draws; nothing here changes a point's results."""

    rerun: bool = False  # simulate every point, even one that finished in an earlier sweep beside this one
    report: bool = True  # write the table and charts (llmsim-report) when the multirun ends
    progress: Optional[bool] = None  # progress bar with time left on stderr; null: when stderr is a terminal
    x: Optional[str] = None  # regime-map axes (swept keys); null: the first two swept keys
    y: Optional[str] = None
    metric: str = "output_tokens_per_s"  # contours of the regime map
    pareto: list[str] = field(default_factory=list)  # [x, y] metrics; empty: peak power (or cost, ttft) vs tokens/s


@dataclass
class SearchConfig:
    """A design-space search (``llmsim-search +search=<recipe>``, sim/studies/search/); nothing here changes a run."""

    trials: int = 50  # designs evaluated in all (a resumed search runs only the ones missing)
    seed: int = 0  # sampler seed: same seed, same space -> same trials (TPE with jobs > 1 excepted)
    jobs: int = 0  # processes simulating each batch's designs (the same trials; 0: one per core); TPE: workers
    # sharing the study (0: one, so that the trials follow from the seed)
    sampler: str = "nsga2"  # nsga2 | tpe
    batch: int = 0  # trials asked and evaluated together (ask/tell); 0: an NSGA-II generation, 1 for TPE
    out: Optional[str] = None  # output folder; null: results/search/<name>
    fresh: bool = False  # delete an earlier study in the output folder instead of resuming it
    objectives: list[str] = field(default_factory=lambda: ["output_tokens_per_s_per_usd", "tpot_s"])
    constraints: dict[str, Any] = field(default_factory=dict)  # metric: "<= limit" | ">= limit"
    space: dict[str, Any] = field(default_factory=dict)  # key: {choices: [..]} | {low, high, step, log}
    derived: dict[str, Any] = field(default_factory=dict)  # key: arithmetic over space keys (nested from the CLI)
    reference: Optional[str] = "h100_sxm"  # hardware preset to compare with; null: none
    reference_overrides: list[str] = field(default_factory=list)  # e.g. [parallel.tp=8]
