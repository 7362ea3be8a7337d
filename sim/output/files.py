"""Files a run writes: summary.json, ops.parquet, ops.csv, config.yaml.

Every file is written to a temporary name in the same folder (``.<name>.<random>.tmp``) and
renamed into place, so a reader (or an interrupted run) never sees a half-written file; the file
gets the mode an ordinary ``open`` would give it (0666 less the umask: 0644 under umask 022), so
results on a shared file system are readable by others as Hydra's own files are. A write killed
before its rename (SIGKILL) leaves its temporary file: ``remove_stale_temps`` clears a folder of
them when a job starts writing there again. Each output carries the config's hash, the seed and
the code version.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]


TEMP_SUFFIX = ".tmp"
# What may differ between two runs of the same config and seed; everything else a run or a sweep
# writes is the same, byte for byte, whether it ran straight through or was interrupted and resumed
# (tests/test_faults.py holds a sweep to that). Fields: dotted keys of summary.json and grid.json,
# and columns of a sweep's table (points.csv, points.parquet): the wall-clock time a simulation took.
VOLATILE_FIELDS = ("run.sim_wall_s", "wall_s")
# Files, as glob patterns under a run's or a sweep's folder: Hydra's own records and logs (they name
# the folder and the time of each start), and the id of each sweep run with the points it stamps
# (sim/studies/sweep/points.py).
VOLATILE_FILES = (".hydra/*", "*.log", "multirun.yaml", ".sweep_id", "point.json")


class OutputWriteError(OSError):
    """A result file that could not be written (a folder in its place, a full disk, no permission); its text
    names the file. The commands print it as one line and exit 2 (sim/cli/common.py ``one_line_errors``)."""


class FolderInUse(OutputWriteError):
    """A folder another process is writing (``hold_folder``)."""


_HELD: dict[Path, int] = {}  # folders this process holds: their descriptors


def hold_folder(folder: Path) -> None:
    """Hold ``folder`` (which exists) for this process: an exclusive advisory lock on the folder itself (``flock``
    on its descriptor: no file is added to it), until ``release_folder`` or the process ends, however it ends.
    Held already by this process: nothing to do. Where the system has no ``flock`` (Windows), nothing is held.

    Raises:
        FolderInUse: another process holds it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        return
    folder = Path(folder).absolute()
    if folder in _HELD:
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise FolderInUse(f"{folder} is being written by another llmsim command: wait for it to end, or write "
                          "elsewhere") from None
    _HELD[folder] = fd


def release_folder(folder: Path) -> None:
    """Let ``folder`` go (``hold_folder``); nothing to do if this process does not hold it."""
    fd = _HELD.pop(Path(folder).absolute(), None)
    if fd is not None:
        os.close(fd)


@contextmanager
def holding(folder: Path) -> Iterator[Path]:
    """``folder``, made if missing and held (``hold_folder``) while the block writes into it; let go after it, and
    removed again if it was made here and nothing was written (a command refused midway leaves no folder).

    Raises:
        FolderInUse: another process holds it.
        OutputWriteError: it cannot be made.
    """
    folder = Path(folder)
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputWriteError(f"output folder {folder} cannot be made: {err.strerror}") from None
    held = folder.absolute() in _HELD
    hold_folder(folder)  # FolderInUse: the folder is the other process's (left as it is)
    try:
        yield folder
    finally:
        if made and not held:
            _remove_if_empty(folder)  # while still held: nobody else can have taken it meanwhile
        if not held:
            release_folder(folder)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # something was written, or another process made it meanwhile: it stays


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    The file ends with mode 0666 less the process umask (``mkstemp`` alone would leave 0600).

    Raises:
        OutputWriteError: the file could not be written (nothing is left of it: no temporary file, and
            whatever was at ``path`` before is still there).
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        os.close(fd)
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, OutputWriteError):
            raise OutputWriteError(f"{path} could not be written: {err.strerror or err}") from err
        raise


def read_json_object(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing, not a file, unreadable or not a JSON object (a file
    truncated or edited by hand: a sweep then counts its point as not finished, a report as failed)."""
    try:
        body = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def current_umask() -> int:
    """The process's file-mode creation mask (read from /proc where it can be, without changing it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it and put it back
    os.umask(mask)
    return mask


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files ``atomic_write`` left in ``folder`` when killed mid-write; return them.

    Call it only on a folder that no other process is writing into at the time (a point's own
    folder when its job starts, a command's output folder before it writes).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def config_hash(config_yaml: str) -> str:
    return hashlib.sha256(config_yaml.encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def code_version() -> str:
    """Package version, plus the git commit (and '+dirty') when run from a checkout."""
    try:
        version = metadata.version("llmsim")
    except metadata.PackageNotFoundError:
        version = "unknown"
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return f"{version}+{commit}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return version


def provenance(config_yaml: str, seed: int) -> dict:
    return {"config_hash": config_hash(config_yaml), "seed": seed, "code_version": code_version()}


def write_run(out_dir: Path, summary: dict, breakdown: list[dict], ops: dict[str, list], config_yaml: str,
              seed: int) -> None:
    """Write a run's files under ``out_dir``."""
    body = _finite({**summary, "breakdown": breakdown, "provenance": provenance(config_yaml, seed)})
    atomic_write(out_dir / "config.yaml", lambda p: p.write_text(config_yaml))
    frame = pd.DataFrame(ops)
    atomic_write(out_dir / "ops.parquet", lambda p: frame.to_parquet(p, index=False))
    atomic_write(out_dir / "ops.csv", lambda p: frame.to_csv(p, index=False))
    atomic_write(out_dir / "summary.json", lambda p: p.write_text(json.dumps(body, indent=2, allow_nan=False) + "\n"))


def _finite(value):
    """JSON has no infinity: an op that moves no bytes has no intensity (null)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
