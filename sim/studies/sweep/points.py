"""A point's identity across sweeps, and skipping the points already finished.

The key of a point is a hash of three things: the run's part of its composed config (the
top-level keys of ``RunConfig``: what changes its numbers), not the tools' settings beside it
(``name``, ``output``, ``sweep``, ``search``; sim/config/tools.py); the contents of every input
file the config names (``INPUT_FILES``: a Hugging Face config.json, a serving trace CSV), so an
edited file is never mistaken for the old one; and the simulator's model version
(sim/engine/model_version.py), bumped whenever the code gives a config different numbers. A
calibration file needs no digest: composition writes its fitted values into ``hardware``
(sim/config/compose.with_calibration), where the key sees them; likewise a Hugging Face
model's resolved architecture is written into ``model`` (with_resolved_model).

When a point of a multirun finishes, a marker ``<key>.json`` goes into ``.finished/`` beside
the sweep folder (normally ``results/sweeps/<name>/.finished/``), naming the folder that holds
its files. A later multirun whose sweep folder has the same parent finds the marker, copies
that point's files into its own point folder (plus ``reused.json`` saying from where) and skips
the simulation; ``sweep.rerun=true`` simulates every point again. The same sweep run again
into its own folder (``hydra.sweep.dir`` as before: resuming an interrupted sweep) keeps each
point whose marker names its folder and whose config.yaml is the one it would write
(``finished_here``), and simulates the rest. One marker per point, each
written atomically, so parallel workers (joblib, Ray, Slurm) never contend for a shared index.

Only finished points are skipped; failed points are tried again (a failure is found before
any simulating, so it costs little). A code change that leaves the model version as it is
(a refactor, printing) keeps the earlier points reusable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sim.config.schema import run_fields
from sim.engine.model_version import MODEL_VERSION
from sim.output.files import TEMP_SUFFIX, atomic_write, code_version, read_json_object, remove_stale_temps
from sim.serving.traces import trace_path
from workloads.model import hf_config_file

MARKERS = ".finished"
# In a point's folder, written once its files are: the point it holds (its key) and the sweep run that wrote or
# kept it. A marker is trusted only when the folder it names still holds its point (a later sweep or run into
# that folder replaces it), and a sweep's report and interrupt count only the points this sweep run wrote or kept.
POINT_FILE = "point.json"
SWEEP_ID = ".sweep_id"  # in the sweep folder: a new id per multirun (sim/studies/sweep/callbacks.py)
# Files of a finished point that a re-run copies; summary.json last (its presence means done).
RESULT_FILES = ("config.yaml", "ops.parquet", "ops.csv", "trace.json", "requests.parquet", "requests.csv",
                "steps.parquet", "steps.csv", "serving.png", "summary.json")  # summary last: it marks a point done
# Config fields that name a file the run reads, each with how to find the file from the value (a shipped trace by
# its name too: editing data/traces/ must not reuse results of the old file).
INPUT_FILES = {"model.hf_config_path": hf_config_file, "workload.trace_path": Path, "workload.trace": trace_path}


def point_key(dcfg: DictConfig) -> str:
    """A 16-hex-digit hash of what fixes a point's results: the run's part of ``dcfg``, the
    contents of the input files it names, and the model version."""
    whole = OmegaConf.to_container(dcfg, resolve=True)
    plain = {key: whole[key] for key in run_fields() if key in whole}
    identity = {"run": plain, "inputs": input_digests(dcfg), "model_version": MODEL_VERSION}
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def input_digests(dcfg: DictConfig) -> dict[str, str]:
    """SHA-256 of each input file ``dcfg`` names, by field (``"missing"`` for a file that cannot be read)."""
    digests = {}
    for name, locate in INPUT_FILES.items():
        value = OmegaConf.select(dcfg, name, default=None)
        if value:
            try:
                digests[name] = hashlib.sha256(locate(value).read_bytes()).hexdigest()
            except OSError:
                digests[name] = "missing"  # a run that reads it fails and is never marked finished
    return digests


def marker_dir(sweep_dir: Path) -> Path:
    """Where the markers of sweeps beside ``sweep_dir`` live."""
    return Path(sweep_dir).resolve().parent / MARKERS


def new_sweep(sweep_dir: Path) -> None:
    """Give the multirun starting in ``sweep_dir`` its own id (its points are told from an earlier sweep's by it)."""
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(sweep_dir) / SWEEP_ID, lambda p: p.write_text(uuid.uuid4().hex + "\n"))


def sweep_id(sweep_dir: Path) -> str | None:
    """The id of the multirun last started in ``sweep_dir`` (None: none recorded, as before this file existed)."""
    try:
        return (Path(sweep_dir) / SWEEP_ID).read_text().strip() or None
    except OSError:
        return None


def held_point(folder: Path) -> dict:
    """``point.json`` of a point folder: its ``key`` and ``sweep`` ({} when missing or unreadable)."""
    return read_json_object(Path(folder) / POINT_FILE) or {}


def keep_point(key: str, sweep_dir: Path, out_dir: Path) -> None:
    """Say that ``out_dir`` holds point ``key`` for the sweep run now in ``sweep_dir``."""
    body = {"key": key, "sweep": sweep_id(sweep_dir)}
    atomic_write(Path(out_dir) / POINT_FILE, lambda p: p.write_text(json.dumps(body) + "\n"))


def mark_finished(key: str, sweep_dir: Path, out_dir: Path) -> None:
    """Record that the point ``key`` finished with its files in ``out_dir``: in the folder, then by the marker."""
    keep_point(key, sweep_dir, out_dir)
    body = {"key": key, "dir": str(Path(out_dir).resolve()), "code_version": code_version(),
            "model_version": MODEL_VERSION}
    marker = marker_dir(sweep_dir) / f"{key}.json"
    for stale in marker.parent.glob(f".{marker.name}.*{TEMP_SUFFIX}"):  # this marker's write, killed before
        stale.unlink(missing_ok=True)
    atomic_write(marker, lambda p: p.write_text(json.dumps(body) + "\n"))


def finished_dir(key: str, sweep_dir: Path, out_dir: Path, trace: bool = False) -> Path | None:
    """The folder of an earlier finished run of point ``key`` (with a trace.json if ``trace``), or None."""
    marker = marker_dir(sweep_dir) / f"{key}.json"
    if not marker.exists():
        return None
    try:
        source = Path(json.loads(marker.read_text())["dir"])
    except (OSError, ValueError, KeyError):
        return None
    if source == Path(out_dir).resolve() or read_json_object(source / "summary.json") is None:
        return None  # gone, or not a summary one can read: the point is simulated, not copied
    if held_point(source).get("key") != key:
        return None  # the folder now holds another point (a later sweep or run wrote into it)
    if trace and not (source / "trace.json").exists():
        return None
    return source


def finished_here(key: str, sweep_dir: Path, out_dir: Path, config_yaml: str) -> bool:
    """Whether ``out_dir`` already holds point ``key``, finished by an earlier run of this same sweep.

    True when the point's marker names ``out_dir``, its summary.json is there (written after every
    other file) and its config.yaml is ``config_yaml``, the text this run would write: a folder
    since overwritten by another point (another sweep into the same ``hydra.sweep.dir``) fails
    the last test.
    """
    out_dir = Path(out_dir)
    try:
        named = Path(json.loads((marker_dir(sweep_dir) / f"{key}.json").read_text())["dir"])
        written = (out_dir / "config.yaml").read_text()
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return named == out_dir.resolve() and read_json_object(out_dir / "summary.json") is not None \
        and written == config_yaml and held_point(out_dir).get("key") == key


def reuse(source: Path, out_dir: Path) -> dict | None:
    """Copy a finished point's files from ``source`` into ``out_dir``; return its summary, or None when the source's
    summary.json went missing meanwhile (a folder removed while this sweep ran: the point is simulated)."""
    note = {"reused_from": str(source)}
    atomic_write(out_dir / "reused.json", lambda p: p.write_text(json.dumps(note) + "\n"))
    try:
        for name in RESULT_FILES:  # summary.json last
            src = source / name
            if src.exists() or name == "summary.json":
                atomic_write(out_dir / name, lambda p, s=src: _copy(s, p))
        return json.loads((out_dir / "summary.json").read_text())
    except SourceGone:
        start_point(out_dir)  # nothing copied counts as this point's outcome
        return None


class SourceGone(Exception):
    """A file of the point being reused is not there (not an OSError: ``atomic_write`` would blame its target)."""


def _copy(source: Path, target: Path) -> None:
    try:
        shutil.copyfile(source, target)
    except FileNotFoundError as err:
        if err.filename != os.fspath(source):
            raise
        raise SourceGone(str(source)) from err


# Files whose presence says how a point ended; an earlier run's are removed before a point runs again.
OUTCOME_FILES = ("summary.json", "failed.json", "reused.json", POINT_FILE)


def start_point(out_dir: Path) -> None:
    """Make ``out_dir`` ready for a point to run (again): no temporary files of a killed write, no outcome.

    A point folder written into before (a sweep re-run into the same ``hydra.sweep.dir``, or a run
    killed mid-way) may hold temporary files and an earlier run's summary.json; both go, so that the
    folder counts as finished only when this run writes its summary.json, after every other file.
    """
    remove_stale_temps(out_dir)
    for name in OUTCOME_FILES:
        (Path(out_dir) / name).unlink(missing_ok=True)
