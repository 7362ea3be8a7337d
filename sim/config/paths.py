"""Where the package's own files are: the Hydra config tree and the shipped data.

Everything the package reads of its own is found here, never through the working directory.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF_DIR = REPO / "conf"  # Hydra's config tree: presets, recipes, the default run
DATA_DIR = REPO / "data"  # measurements: calibration, validation


def presets(group: str) -> list[str]:
    """The preset names of a config group (``hardware``, ``model``, ...), sorted."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
