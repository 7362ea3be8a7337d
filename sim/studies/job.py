"""One point of the ``llmsim`` command: simulate a composed config, print it, write its files.

Inside a multirun a point that finished in an earlier sweep beside this one is reused, one
already finished in its own folder (the same sweep run again to resume it) is kept, and a
point that cannot run leaves ``failed.json`` with its reason while the sweep goes on. A point of a
multirun prints nothing itself: the sweep's callback (sim/studies/sweep/callbacks.py) shows a
bar or one line per point and lists the failures at the end; a single run prints its summary
(``output.print_summary``) or its error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from hwmodels.calibration import CalibrationError
from hwmodels.chip import HardwareError
from sim.config.checks import ignored_settings
from sim.config.compose import to_run_config, with_calibration, with_resolved_model
from sim.config.errors import interrupted_by
from sim.config.overrides import EXIT_BAD_INPUT
from sim.config.schema import RunConfig, RunError
from sim.config.system import apply_scale_up
from sim.output.files import atomic_write, remove_stale_temps
from sim.studies.kinds import WORKLOADS
from sim.studies.sweep.callbacks import Interrupted, interrupted_line
from sim.studies.sweep.points import (
    POINT_FILE,
    finished_dir,
    finished_here,
    keep_point,
    mark_finished,
    point_key,
    reuse,
    start_point,
    sweep_id,
)
from workloads.model import ModelError


def run_job(dcfg: DictConfig) -> dict | None:
    """Simulate one composed config, print its summary and write its files.

    The point's folder is cleared of a killed earlier write first, and of an earlier outcome
    unless it is this point, finished (a resumed sweep keeps it: sim/studies/sweep/points.py
    ``finished_here``, ``start_point``). Ctrl-C during a multirun point raises ``Interrupted``, whose text says how
    many points of the sweep finished; in a single run the KeyboardInterrupt goes up as it is.
    """
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    remove_stale_temps(Path(hc.runtime.output_dir))
    try:
        return _run_point(dcfg)
    except Exception as err:
        # Ctrl-C inside a library (a plot drawn aside, pyarrow) whose clean-up then failed: an interrupt, raised as
        # one (Hydra would print its "Error executing job" line for the other error)
        stop = interrupted_by(err)
        if stop is not None:
            raise (Interrupted(interrupted_line(Path(hc.sweep.dir))) if multirun else stop) from None
        if isinstance(err, BrokenPipeError):
            raise  # the console's reader went away, not a file of the point (sim/cli/llmsim.py)
        if isinstance(err, OSError):  # a file of the point's folder could not be cleared, copied or written
            return _fail(Path(hc.runtime.output_dir), str(err))
        raise
    except KeyboardInterrupt as err:
        if multirun and not isinstance(err, Interrupted):
            raise Interrupted(interrupted_line(Path(hc.sweep.dir))) from None
        raise


def _run_point(dcfg: DictConfig) -> dict | None:
    hc = HydraConfig.get()
    dcfg = apply_scale_up(dcfg)  # config.yaml then shows the chip as simulated
    out_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        dcfg = with_calibration(dcfg)  # the fitted chip fields no preset sets, from calibration=<path> or shipped
        dcfg = with_resolved_model(dcfg)  # a Hugging Face model's architecture as read from its config.json
    except (CalibrationError, ModelError) as err:
        return _fail(out_dir, str(err))
    key = point_key(dcfg) if multirun and dcfg.output.write_files else None
    if key and not dcfg.sweep.rerun and finished_here(key, Path(hc.sweep.dir), out_dir,
                                                       OmegaConf.to_yaml(dcfg, resolve=True)):
        keep_point(key, Path(hc.sweep.dir), out_dir)  # kept by this sweep run: its report counts it
        return json.loads((out_dir / "summary.json").read_text())  # a resumed sweep: this point is done
    if key:
        start_point(out_dir)  # an earlier outcome in this folder goes: it counts as done only when rewritten
    elif dcfg.output.write_files:  # a run into a point's folder replaces that point: no marker may trust it
        (out_dir / POINT_FILE).unlink(missing_ok=True)
    if key and not dcfg.sweep.rerun:  # finished in an earlier sweep beside this one: reuse it
        source = finished_dir(key, Path(hc.sweep.dir), out_dir, trace=dcfg.output.trace)
        summary = reuse(source, out_dir) if source is not None else None
        if summary is not None:
            keep_point(key, Path(hc.sweep.dir), out_dir)
            return summary
    try:
        cfg: RunConfig = to_run_config(dcfg)  # the run's part; the tools' settings stay in dcfg
        kind = WORKLOADS[cfg.workload.kind]  # single batch (sim/batch/) or serving (sim/serving/)
        result = kind.simulate(cfg)
    except (HardwareError, ModelError, RunError) as err:
        return _fail(out_dir, str(err))
    except Exception as err:  # noqa: BLE001 - in a sweep, a bug fails its point, not the sweep
        if not multirun:
            raise
        return _fail(out_dir, f"internal error: {type(err).__name__}: {err}")
    ignored = ignored_settings(cfg)
    if ignored and not multirun:  # one line before the summary (a sweep's points would repeat it)
        print(f"llmsim: note: this run does not read {', '.join(ignored)}", file=sys.stderr, flush=True)
    done = (lambda: mark_finished(key, Path(hc.sweep.dir), out_dir)) if key else None
    return kind.report(result, dcfg, out_dir, done, multirun)  # a file it cannot write: run_job's OSError


def _fail(out_dir: Path, reason: str) -> None:
    """A single run: the reason on stderr, exit 2. A multirun point: ``failed.json`` (its number,
    overrides and reason, which the sweep's callback lists at the end), and the sweep goes on."""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        print(f"llmsim: error: {reason}", file=sys.stderr)
        drop_records_only(out_dir)
        sys.exit(EXIT_BAD_INPUT)
    body = {"point": hc.job.num, "overrides": list(hc.overrides.task), "reason": reason,
            "sweep": sweep_id(Path(hc.sweep.dir))}
    try:
        start_point(out_dir)  # no earlier summary.json beside the failure
        atomic_write(out_dir / "failed.json", lambda p: p.write_text(json.dumps(body) + "\n"))
    except OSError as err:  # its folder cannot take even that (a full disk): the reason goes to stderr
        also = "" if str(err) == reason else f" (and {err})"
        print(f"llmsim: point {hc.job.num} failed: {reason}{also}", file=sys.stderr)
    return None


def drop_records_only(out_dir: Path) -> None:
    """Remove the run folder Hydra made for a refused single run when it holds nothing but Hydra's records
    (``.hydra/`` and an empty log): a refusal leaves no folder behind. A folder with anything else in it (an
    earlier run's files, the user's own) is left as it is."""
    try:
        entries = {p.name: p for p in out_dir.iterdir()}
        logs = [p for name, p in entries.items() if name != ".hydra"]
        if ".hydra" not in entries or any(not p.is_file() or p.suffix != ".log" or p.stat().st_size for p in logs):
            return
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            (entries[".hydra"] / name).unlink(missing_ok=True)
        entries[".hydra"].rmdir()  # fails (and stops here) if it held anything else
        for log in logs:
            log.unlink()
        out_dir.rmdir()
    except OSError:
        pass  # best effort: the refusal's line is what matters
