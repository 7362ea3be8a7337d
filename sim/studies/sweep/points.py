"""A point's identity across sweeps, and skipping the points already finished.

The key of a point is a hash of the run's part of its composed config (the top-level keys of
``RunConfig``: what changes its numbers), not of the tools' settings beside it (``name``,
``output``, ``sweep``, ``search``; sim/config/tools.py). When a point of a multirun finishes, a marker
``<key>.json`` goes into ``.finished/`` beside the sweep folder (normally
``results/sweeps/<name>/.finished/``), naming the folder that holds its files. A later
multirun whose sweep folder has the same parent finds the marker, copies that point's files
into its own point folder (plus ``reused.json`` saying from where) and skips the simulation;
``sweep.rerun=true`` simulates every point again. One marker per point, each written
atomically, so parallel workers (joblib, Ray, Slurm) never contend for a shared index.

Only finished points are skipped; failed points are tried again (a failure is found before
any simulating, so it costs little). The key holds the config, not the code version: after
changing the code, re-run with ``sweep.rerun=true``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sim.config.schema import run_fields
from sim.output.files import atomic_write, code_version, remove_stale_temps

MARKERS = ".finished"
# Files of a finished point that a re-run copies; summary.json last (its presence means done).
RESULT_FILES = ("config.yaml", "ops.parquet", "ops.csv", "trace.json", "requests.parquet", "requests.csv",
                "steps.parquet", "steps.csv", "serving.png", "summary.json")  # summary last: it marks a point done


def point_key(dcfg: DictConfig) -> str:
    """A 16-hex-digit hash of the run's part of ``dcfg``: the fields that change a point's results."""
    whole = OmegaConf.to_container(dcfg, resolve=True)
    plain = {key: whole[key] for key in run_fields() if key in whole}
    text = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def marker_dir(sweep_dir: Path) -> Path:
    """Where the markers of sweeps beside ``sweep_dir`` live."""
    return Path(sweep_dir).resolve().parent / MARKERS


def mark_finished(key: str, sweep_dir: Path, out_dir: Path) -> None:
    """Record that the point ``key`` finished with its files in ``out_dir``."""
    body = {"key": key, "dir": str(Path(out_dir).resolve()), "code_version": code_version()}
    atomic_write(marker_dir(sweep_dir) / f"{key}.json", lambda p: p.write_text(json.dumps(body) + "\n"))


def finished_dir(key: str, sweep_dir: Path, out_dir: Path, trace: bool = False) -> Path | None:
    """The folder of an earlier finished run of point ``key`` (with a trace.json if ``trace``), or None."""
    marker = marker_dir(sweep_dir) / f"{key}.json"
    if not marker.exists():
        return None
    try:
        source = Path(json.loads(marker.read_text())["dir"])
    except (OSError, ValueError, KeyError):
        return None
    if source == Path(out_dir).resolve() or not (source / "summary.json").exists():
        return None
    if trace and not (source / "trace.json").exists():
        return None
    return source


def reuse(source: Path, out_dir: Path) -> dict:
    """Copy a finished point's files from ``source`` into ``out_dir``; return its summary."""
    note = {"reused_from": str(source)}
    atomic_write(out_dir / "reused.json", lambda p: p.write_text(json.dumps(note) + "\n"))
    for name in RESULT_FILES:  # summary.json last
        src = source / name
        if src.exists():
            atomic_write(out_dir / name, lambda p, s=src: shutil.copyfile(s, p))
    return json.loads((out_dir / "summary.json").read_text())


# Files whose presence says how a point ended; an earlier run's are removed before a point runs again.
OUTCOME_FILES = ("summary.json", "failed.json", "reused.json")


def start_point(out_dir: Path) -> None:
    """Make ``out_dir`` ready for a point to run (again): no temporary files of a killed write, no outcome.

    A point folder written into before (a sweep re-run into the same ``hydra.sweep.dir``, or a run
    killed mid-way) may hold temporary files and an earlier run's summary.json; both go, so that the
    folder counts as finished only when this run writes its summary.json, after every other file.
    """
    remove_stale_temps(out_dir)
    for name in OUTCOME_FILES:
        (Path(out_dir) / name).unlink(missing_ok=True)
