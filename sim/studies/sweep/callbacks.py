"""The Hydra callback of ``llmsim -m``: a progress bar with the time left, and the report at the end.

Registered in ``conf/config.yaml`` under ``hydra.callbacks``. The bar counts points as they
finish (tqdm estimates the time left from the mean time per point so far) and shows how many
failed; it is drawn when stderr is a terminal, or always with ``sweep.progress=true``. It
follows the jobs that run in this process (the basic launcher); with joblib, Ray or Slurm
the jobs end elsewhere, so the bar stays off and the launcher's own logging shows progress.
When the multirun ends, ``llmsim-report``'s table and charts are written into
``<sweep dir>/report/`` unless ``sweep.report=false``.

Before the first point runs, the callback stops a sweep that would do nothing useful: one with
no points (an empty range) or whose report names a metric the catalog lacks (``sweep.metric``,
``sweep.pareto``): one line and exit 2 (a ``SystemExit``, which Hydra's callback runner lets
through, unlike an ``Exception`` it would turn into a warning). While the sweep runs, Ctrl-C
raises ``Interrupted`` (the callback's SIGINT handler, put back when the sweep ends), whose line
says how many points finished, wherever in the sweep it lands.
"""

from __future__ import annotations

import logging
import math
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

LAUNCHER_LOG = logging.getLogger("hydra._internal.core_plugins.basic_launcher")


def count_points(config: DictConfig) -> int | None:
    """How many jobs the basic sweeper makes of the sweep's params and command-line overrides."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        arguments = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
        sizes: dict[str, int] = {}
        for override in OverridesParser.create().parse_overrides(arguments):
            key = override.get_key_element()
            sizes[key] = len(list(override.sweep_string_iterator())) if override.is_discrete_sweep() else 1
        return math.prod(sizes.values())
    except Exception:  # noqa: BLE001 - a sweep type we cannot count: the bar shows no total
        return None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a multirun; its text is the line to print (how many points finished)."""


def finished_points(sweep_dir: Path) -> int:
    """Points of the sweep in ``sweep_dir`` whose files are all written (summary.json is written last)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return 0
    return sum(1 for p in sweep_dir.iterdir() if p.is_dir() and (p / "summary.json").exists())


def interrupted_line(sweep_dir: Path) -> str:
    """``interrupted: N of M points finished; re-run to resume`` for the sweep in ``sweep_dir``.

    M comes from the ``multirun.yaml`` Hydra writes into the sweep folder; without it (or for a
    sweep type that cannot be counted) the line gives N alone.
    """
    total = None
    recorded = Path(sweep_dir) / "multirun.yaml"
    try:
        total = count_points(OmegaConf.load(recorded)) if recorded.exists() else None
    except Exception:  # noqa: BLE001 - an unreadable record: say what is known
        total = None
    done = finished_points(sweep_dir)
    if total is not None and done >= total > 0:
        return f"interrupted: all {total} points finished, the report is not written: llmsim-report {sweep_dir}"
    of = f" of {total}" if total is not None else ""
    return f"interrupted: {done}{of} points finished; re-run to resume"


def check_sweep(config: DictConfig) -> str | None:
    """Why the sweep of ``config`` should not start (no points, an unknown report metric), or None."""
    if count_points(config) == 0:
        return "the sweep has no points: a swept value list or range() is empty (range(a,b,step) needs a < b " \
               "for step > 0)"
    if not OmegaConf.select(config, "sweep.report", default=True):
        return None
    from sim.metrics import catalog

    names = [OmegaConf.select(config, "sweep.metric")] + list(OmegaConf.select(config, "sweep.pareto") or [])
    for name in (n for n in names if n):
        try:
            catalog.metric(str(name))
        except catalog.UnknownMetric as err:
            return f"sweep.metric / sweep.pareto: {err}"
    return None


class SweepCallback(Callback):
    """Progress bar over the points of a multirun, and the report when it ends."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._launcher_log_level = logging.NOTSET
        self._failed = 0
        self._sigint: Any = None  # the SIGINT handler before the sweep's, put back at its end

    def __getstate__(self) -> dict:  # parallel launchers pickle callbacks: the bar stays here
        return {"_bar": None, "_launcher_log_level": logging.NOTSET, "_failed": 0, "_sigint": None}

    def _catch_interrupt(self, sweep_dir: Path) -> None:
        """Ctrl-C from now on raises Interrupted with the sweep's count (main thread only, as signals are)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def interrupted(signum: int, frame: Any) -> None:
            raise Interrupted(interrupted_line(sweep_dir))

        self._sigint = signal.signal(signal.SIGINT, interrupted)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        problem = check_sweep(config)
        if problem:
            print(f"llmsim: error: {problem}", file=sys.stderr)
            raise SystemExit(2)  # not an Exception: Hydra would turn that into a warning and go on
        self._catch_interrupt(Path(str(config.hydra.sweep.dir)))
        progress = OmegaConf.select(config, "sweep.progress")
        show = progress if progress is not None else sys.stderr.isatty()
        launcher = str(OmegaConf.select(config, "hydra.launcher._target_") or "")
        if not show or "BasicLauncher" not in launcher:
            return
        from tqdm import tqdm

        # The launcher's line per job says what the bar says; keep it out of the bar's way.
        self._launcher_log_level = LAUNCHER_LOG.level
        LAUNCHER_LOG.setLevel(logging.WARNING)
        name = OmegaConf.select(config, "name") or "sweep"
        size = shutil.get_terminal_size()  # 80 x 24 where a terminal reports 0 x 0 (tqdm would hide the bar)
        self._bar = tqdm(total=count_points(config), desc=f"llmsim {name}", unit="point", file=sys.stderr,
                         ncols=size.columns, nrows=size.lines, smoothing=0.05, mininterval=0.5)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self._bar is None:
            return
        if getattr(job_return, "_return_value", None) is None:
            self._failed += 1
            self._bar.set_postfix(failed=self._failed, refresh=False)
        self._bar.update(1)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self._end(config)
        finally:
            if self._sigint is not None:
                signal.signal(signal.SIGINT, self._sigint)
                self._sigint = None

    def _end(self, config: DictConfig) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            LAUNCHER_LOG.setLevel(self._launcher_log_level)
        if not OmegaConf.select(config, "sweep.report", default=True):
            return
        from sim.studies.sweep import ReportError
        from sim.studies.sweep.report import print_written, report_sweep

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            print_written(report_sweep(sweep_dir))
        except (ReportError, OSError, ValueError) as err:
            print(f"llmsim-report: error: {err} (the points are saved; fix and run llmsim-report {sweep_dir})",
                  file=sys.stderr)
