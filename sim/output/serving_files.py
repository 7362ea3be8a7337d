"""Files of a serving run: summary.json, requests.parquet/.csv, steps.parquet/.csv, config.yaml.

Each is written to a temporary name beside it and renamed into place (``sim.output.files.atomic_write``);
the summary carries the provenance (config hash, seed, code version).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sim.output.files import _finite, atomic_write, provenance

FILES = ("summary.json", "requests.parquet", "requests.csv", "steps.parquet", "steps.csv", "config.yaml")


def write_serving(out_dir: Path, summary: dict, requests: dict, steps: dict, config_yaml: str, seed: int) -> None:
    """Write a serving run's files under ``out_dir`` (summary.json last: its presence means done)."""
    atomic_write(out_dir / "config.yaml", lambda p: p.write_text(config_yaml))
    for name, columns in (("requests", requests), ("steps", steps)):
        frame = pd.DataFrame(columns)
        atomic_write(out_dir / f"{name}.parquet", lambda p, f=frame: f.to_parquet(p, index=False))
        atomic_write(out_dir / f"{name}.csv", lambda p, f=frame: f.to_csv(p, index=False))
    body = _finite({**summary, "provenance": provenance(config_yaml, seed)})
    atomic_write(out_dir / "summary.json", lambda p: p.write_text(json.dumps(body, indent=2, allow_nan=False) + "\n"))
