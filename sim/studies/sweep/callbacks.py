"""The Hydra callback of ``llmsim -m``: the console of a multirun, and the report at the end.

Registered in ``conf/config.yaml`` under ``hydra.callbacks``. A point of a multirun prints no
summary of its own (sim/studies/job.py; its summary.json has it all): the console shows either
a progress bar or one line per point. The bar counts points as they finish (tqdm estimates the
time left from the mean time per point so far) and shows how many failed; it is drawn when
stderr is a terminal, or always with ``sweep.progress=true``, for the jobs that run in this
process (the basic launcher). Otherwise each point prints one line as it ends, in place of the
launcher's own line per job, named by its number (its folder) and its swept values:
``[#3, 4 of 6] workload.batch=8: ttft 83.6 ms, tpot 7.22 ms, 1,023 output tokens/s``, or
``failed`` (``reused`` for a point taken from an earlier sweep). With joblib, Ray or Slurm the
line comes from the worker that ran the point, in the order the points end.

When the multirun ends, the failed points are listed once with their reasons (from each point's
``failed.json``), and ``llmsim-report``'s table and charts are written into
``<sweep dir>/report/`` (one line) unless ``sweep.report=false``. A sweep with some failed points
exits 0; one where every point failed has nothing to report: one line and exit 2, as does one whose report
cannot be made (its points are kept for ``llmsim-report`` with other settings).

Before the first point runs, the callback stops a sweep that would do nothing useful: one with
no points (an empty range) or whose report names a metric the catalog lacks (``sweep.metric``,
``sweep.pareto``): one line and exit 2 (a ``SystemExit``, which Hydra's callback runner lets
through, unlike an ``Exception`` it would turn into a warning). While the sweep runs, Ctrl-C
raises ``Interrupted`` (the callback's SIGINT handler, put back when the sweep ends), whose line
says how many points finished, wherever in the sweep it lands.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sim.output.files import FolderInUse, hold_folder, release_folder
from sim.studies.sweep.points import held_point, marker_dir, new_sweep, sweep_id

LAUNCHER_LOG = logging.getLogger("hydra._internal.core_plugins.basic_launcher")
EXIT_ALL_FAILED = 2  # as for bad input: every point failed, so the sweep as asked cannot run


def _no_job_lines(record: logging.LogRecord) -> bool:
    """Logging filter: drop the basic launcher's ``#N : overrides`` line per job (the point's own line says it)."""
    return not str(record.msg).lstrip().startswith("#")


def _sweep_overrides(config: DictConfig) -> list:
    """The parsed overrides of the sweep's params and command line (Hydra's parser)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    return OverridesParser.create().parse_overrides(arguments)


def count_points(config: DictConfig) -> int | None:
    """How many jobs the basic sweeper makes of the sweep's params and command-line overrides."""
    try:
        sizes: dict[str, int] = {}
        for override in _sweep_overrides(config):
            key = override.get_key_element()
            sizes[key] = len(list(override.sweep_string_iterator())) if override.is_discrete_sweep() else 1
        return math.prod(sizes.values())
    except Exception:  # noqa: BLE001 - a sweep type we cannot count: the bar shows no total
        return None


def swept_keys(config: DictConfig) -> list[str]:
    """The keys the sweep varies (without ``+``), which name a point in its console line."""
    try:
        return [o.key_or_group for o in _sweep_overrides(config) if o.is_sweep_override()]
    except Exception:  # noqa: BLE001 - unknown: a point is named by all its overrides
        return []


def point_name(overrides: list[str], swept: list[str]) -> str:
    """A point's overrides of the swept keys (all of them when none is known as swept)."""
    mine = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept] if swept else list(overrides)
    return " ".join(mine or overrides)


def figures(summary: dict) -> str:
    """``ttft 24.5 ms, tpot 6.45 ms, 155.3 output tokens/s`` of a batch or (p50s) a serving summary."""
    from sim.output.console import fmt_time

    if "ttft_p50_s" in summary:  # a serving run: the medians over its requests
        times = f"ttft p50 {fmt_time(summary.get('ttft_p50_s'))}, tpot p50 {fmt_time(summary.get('tpot_p50_s'))}"
    else:
        times = f"ttft {fmt_time(summary.get('ttft_s'))}, tpot {fmt_time(summary.get('tpot_s'))}"
    rate = summary.get("output_tokens_per_s")
    return times + (f", {rate:,.4g} output tokens/s" if rate is not None else "")


def failures(sweep_dir: Path) -> list[tuple[int, list[str], str]]:
    """The failed points of the sweep in ``sweep_dir``: (number, overrides, reason), from their failed.json."""
    found = []
    for path in Path(sweep_dir).glob("*/failed.json"):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        number = body.get("point", path.parent.name)
        found.append((int(number) if str(number).isdigit() else -1, [str(o) for o in body.get("overrides", [])],
                      str(body.get("reason", "unknown reason"))))
    return sorted(found)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a multirun; its text is the line to print (how many points finished)."""


def finished_points(sweep_dir: Path) -> int:
    """Points of the sweep in ``sweep_dir`` whose files are all written (summary.json is written last) by this sweep
    run or kept by it (a folder still holding an earlier sweep's point does not count)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return 0
    current = sweep_id(sweep_dir)
    return sum(1 for p in sweep_dir.iterdir() if p.is_dir() and (p / "summary.json").exists()
               and (current is None or held_point(p).get("sweep") == current))


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
    from sim.config.schema import name_problem

    if problem := name_problem(OmegaConf.select(config, "name", default="default")):
        return problem
    if count_points(config) == 0:
        return "the sweep has no points: a swept value list or range() is empty (range(a,b,step) needs a < b " \
               "for step > 0)"
    if not OmegaConf.select(config, "sweep.report", default=True):
        return None
    from sim.metrics import catalog

    pareto = list(OmegaConf.select(config, "sweep.pareto") or [])
    if pareto and len(pareto) != 2:  # as the report would say after every point had run
        return f"sweep.pareto takes two metrics (x and y), got {len(pareto)}: {', '.join(map(str, pareto))}"
    names = [OmegaConf.select(config, "sweep.metric"), *pareto]
    for name in (n for n in names if n):
        try:
            catalog.metric(str(name))
        except catalog.UnknownMetric as err:
            return f"sweep.metric / sweep.pareto: {err}"
    try:  # every key a point's overrides name: the recipe's sweeper params and the command line's
        given = {o.key_or_group for o in _sweep_overrides(config)}
    except Exception:  # noqa: BLE001 - overrides we cannot parse: the report checks its axes itself
        given = set()
    x, y = OmegaConf.select(config, "sweep.x"), OmegaConf.select(config, "sweep.y")
    if x and x == y:
        return f"the regime map's axes are both {x}: choose two different swept keys for sweep.x and sweep.y"
    for axis in ("x", "y"):  # the report's axes: checked before the points run, as the metric is
        key = OmegaConf.select(config, f"sweep.{axis}")
        if key and given and key not in given:
            return f"sweep.{axis}={key} is not a parameter of this sweep; swept: {', '.join(swept_keys(config))}"
    return None


def _claim(sweep_dir: Path) -> str | None:
    """Make the sweep's folder and hold it for this multirun (``hold_folder``: a second sweep into it meanwhile
    would replace the first's id and mix its points into the first's report), remove the report an earlier sweep
    left there, give the sweep its id (sim/studies/sweep/points.py) and make sure the markers beside it can be
    written; why not, or None."""
    markers = marker_dir(sweep_dir)
    if (sweep_dir / "grid.json").exists():  # its report would read the grid's example point and table as its own
        return (f"{sweep_dir} holds llmsim-grid's results (grid.json): a sweep there would mix its points with "
                "them; choose another hydra.sweep.dir")
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        hold_folder(sweep_dir)
        drop_stale_report(sweep_dir)
        new_sweep(sweep_dir)  # its points are told from an earlier sweep's in the folder by it
        markers.mkdir(parents=True, exist_ok=True)
    except FolderInUse as err:
        return str(err)
    except OSError as err:
        release_folder(sweep_dir)  # the sweep stops here: the folder is not held after it
        return f"the sweep's records cannot be written: {err}"
    if not os.access(markers, os.W_OK):
        release_folder(sweep_dir)
        return f"{markers} (the finished points' markers) is not writable"
    return None


def drop_stale_report(sweep_dir: Path) -> None:
    """Remove the report an earlier sweep in ``sweep_dir`` wrote: from now on its points may be replaced, and a
    sweep run with sweep.report=false would leave it describing points that are no longer there."""
    report = sweep_dir / "report"
    if report.is_dir() and ((report / "points.parquet").exists() or (report / "points.csv").exists()):
        shutil.rmtree(report, ignore_errors=True)


class SweepCallback(Callback):
    """The console of a multirun (a bar, or a line per point; the failures at the end) and its report."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._launcher_log_level = logging.NOTSET
        self._failed = 0
        self._total: int | None = None
        self._swept: list[str] = []
        self._multirun = False  # Hydra calls on_job_end for a single run too: that one prints its summary
        self._sigint: Any = None  # the SIGINT handler before the sweep's, put back at its end
        self._sigterm: Any = None  # the same, SIGTERM's

    def __getstate__(self) -> dict:  # parallel launchers pickle callbacks: the bar and handlers stay here
        return {**self.__dict__, "_bar": None, "_launcher_log_level": logging.NOTSET, "_sigint": None, "_sigterm": None}

    def _catch_interrupt(self, sweep_dir: Path) -> None:
        """Ctrl-C from now on raises Interrupted with the sweep's count (main thread only, as signals are)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def interrupted(signum: int, frame: Any) -> None:
            raise Interrupted(interrupted_line(sweep_dir))

        self._sigint = signal.signal(signal.SIGINT, interrupted)
        self._sigterm = signal.signal(signal.SIGTERM, interrupted)  # kill, timeout, a scheduler's stop: the same

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        problem = check_sweep(config)
        if problem:
            print(f"llmsim: error: {problem}", file=sys.stderr)
            raise SystemExit(2)  # not an Exception: Hydra would turn that into a warning and go on
        self._catch_interrupt(Path(str(config.hydra.sweep.dir)))
        problem = _claim(Path(str(config.hydra.sweep.dir)))
        if problem:  # before any point runs, not after every point has (its marker could not be written)
            print(f"llmsim: error: {problem}", file=sys.stderr)
            raise SystemExit(2)
        self._multirun, self._total, self._swept = True, count_points(config), swept_keys(config)
        LAUNCHER_LOG.addFilter(_no_job_lines)  # each point prints its own line instead
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
        self._bar = tqdm(total=self._total, desc=f"llmsim {name}", unit="point", file=sys.stderr,
                         ncols=size.columns, nrows=size.lines, smoothing=0.05, mininterval=0.5)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not self._multirun:
            return
        summary = getattr(job_return, "_return_value", None)
        if not isinstance(summary, dict):
            self._failed += 1
        if self._bar is not None:
            if not isinstance(summary, dict):
                self._bar.set_postfix(failed=self._failed, refresh=False)
            self._bar.update(1)
            return
        number = OmegaConf.select(config, "hydra.job.num", default=None)
        overrides = list(OmegaConf.select(config, "hydra.overrides.task", default=None) or [])
        out_dir = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
        if isinstance(summary, dict):
            reused = out_dir is not None and (Path(out_dir) / "reused.json").exists()
            outcome = figures(summary) + (" (reused from an earlier sweep)" if reused else "")
        else:
            outcome = "failed (the reason is listed at the end)"
        where = f"#{number}, {number + 1} of {self._total}" if self._total and isinstance(number, int) else f"#{number}"
        print(f"[{where}] {point_name(overrides, self._swept)}: {outcome}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self._end(config)
        finally:
            release_folder(Path(str(config.hydra.sweep.dir)))
            LAUNCHER_LOG.removeFilter(_no_job_lines)
            if self._sigint is not None:
                signal.signal(signal.SIGINT, self._sigint)
                signal.signal(signal.SIGTERM, self._sigterm)
                self._sigint = self._sigterm = None

    def _end(self, config: DictConfig) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            LAUNCHER_LOG.setLevel(self._launcher_log_level)
        sweep_dir = Path(config.hydra.sweep.dir)
        failed = failures(sweep_dir)
        total = self._total or count_points(config)
        if total and len(failed) >= total:  # nothing ran: nothing to report
            reasons = {reason for _, _, reason in failed}
            first = f"#{failed[0][0]} {point_name(failed[0][1], self._swept)}: {failed[0][2]}"
            what = failed[0][2] if len(reasons) == 1 else f"{first} (the others: {sweep_dir}/*/failed.json)"
            print(f"llmsim: error: all {total} points failed: {what}", file=sys.stderr)
            raise SystemExit(EXIT_ALL_FAILED)
        if failed:
            print(f"{len(failed)} of {total or '?'} points failed:")
            for number, overrides, reason in failed:
                print(f"  #{number} {point_name(overrides, self._swept)}: {reason}")
        if OmegaConf.select(config, "sweep.report", default=True):
            self._report(sweep_dir)

    @staticmethod
    def _report(sweep_dir: Path) -> None:
        """Write the sweep's report; one line naming the folder and its files."""
        from sim.studies.sweep import ReportError
        from sim.studies.sweep.report import report_sweep

        try:
            written = report_sweep(sweep_dir)
        except (ReportError, OSError, ValueError) as err:
            print(f"llmsim-report: error: {err} (the points are saved; fix and run llmsim-report {sweep_dir})",
                  file=sys.stderr)
            raise SystemExit(EXIT_ALL_FAILED) from None  # the report asked for cannot be made: bad input, exit 2
        folders = ", ".join(sorted({str(p.parent) for p in written.values()}))
        print(f"llmsim-report: wrote {len(written)} files in {folders}: {', '.join(p.name for p in written.values())}")
