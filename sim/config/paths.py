"""Where the package's own files are, and where a command's outputs go.

The Hydra config tree (conf/ in the repo) and the measurements (data/) are installed as the
resource-only packages ``sim.conf`` and ``sim.data`` (pyproject.toml maps the top-level folders
in); they are found here through ``importlib.resources``, never through the working directory
or a checkout, so an installed package, an editable install and a checkout read the same
files. Both are plain folders on disk (pip never installs zipped), which Hydra's config search
path needs.

Outputs go where the user says, relative paths resolved against the working directory as Hydra
does; ``output_dir`` checks such a folder before anything is computed.
"""

from __future__ import annotations

import os
import tempfile
from importlib.resources import files
from pathlib import Path

CONF_DIR = Path(str(files("sim.conf")))  # Hydra's config tree: presets, recipes, the default run
DATA_DIR = Path(str(files("sim.data")))  # measurements: calibration, validation


class OutputDirError(ValueError):
    """An output folder that cannot be written (a file, or a folder without write permission)."""


def presets(group: str) -> list[str]:
    """The preset names of a config group (``hardware``, ``model``, ...), sorted."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def output_dir(path: str | os.PathLike, create: bool = True) -> Path:
    """``path`` resolved against the working directory, checked writable (and made when ``create``).

    Raises:
        OutputDirError: ``path`` (or the nearest folder above it that exists) is a file or not writable.
    """
    out = Path(path).expanduser().absolute()
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputDirError(f"output folder {out} cannot be made: {existing} is a file")
    if not _can_write(existing):
        raise OutputDirError(f"output folder {out} is not writable: no write permission on {existing}")
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputDirError(f"output folder {out} cannot be made: {err.strerror}") from None
    return out


def _can_write(folder: Path) -> bool:
    """Whether a file can be made in ``folder``: tried, not asked (``os.access`` says yes to root
    everywhere, even in /proc or on a read-only mount)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".llmsim-write-check.")
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True
