"""Files of a serving run: summary.json, requests.parquet/.csv, steps.parquet/.csv, config.yaml.

Each is written to a temporary name beside it and renamed into place (``sim.output.files.atomic_write``);
the summary carries the provenance (config hash, seed, code version).

The two tables (a replayed trace has hundreds of thousands of steps) go through pyarrow, column by
column in C++, not row by row in Python: the Parquet files hold the same columns and values as a
pandas frame of them would; the CSV files hold the same values, each float in its shortest
round-trip form (Arrow's: ``1`` for 1.0, ``0.00001`` for 1e-05; NaN as an empty field, booleans as
``true``/``false``), so reading them back gives the same numbers bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from sim.output.files import _finite, atomic_write, provenance

FILES = ("summary.json", "requests.parquet", "requests.csv", "steps.parquet", "steps.csv", "config.yaml")


def write_tables(out_dir: Path, requests: dict, steps: dict, config_yaml: str) -> None:
    """config.yaml and the two tables (each as Parquet and CSV)."""
    atomic_write(out_dir / "config.yaml", lambda p: p.write_text(config_yaml))
    for name, columns in (("requests", requests), ("steps", steps)):
        table = _table(columns)
        atomic_write(out_dir / f"{name}.parquet", lambda p, t=table: pq.write_table(t, p))
        atomic_write(out_dir / f"{name}.csv", lambda p, t=table: write_csv(t, p))


def write_summary(out_dir: Path, summary: dict, config_yaml: str, seed: int) -> None:
    """summary.json with the run's provenance: written last, its presence means the run's files are done."""
    body = _finite({**summary, "provenance": provenance(config_yaml, seed)})
    atomic_write(out_dir / "summary.json", lambda p: p.write_text(json.dumps(body, indent=2, allow_nan=False) + "\n"))


def _table(columns: dict) -> pa.Table:
    """The columns as an Arrow table, each typed as pandas would type it (lists of numbers become int64,
    float64 or bool arrays first)."""
    arrays = {}
    for key, values in columns.items():
        values = values if isinstance(values, np.ndarray) else np.asarray(values)
        if values.dtype.kind == "U":
            values = values.astype(object)
        arrays[key] = pa.array(values)
    return pa.table(arrays)


def write_csv(table: pa.Table, path: Path) -> None:
    """The table as CSV: an unquoted header line, then Arrow's rows (NaN written as an empty field, as
    pandas writes it)."""
    body = pa.table({name: pa.array(col.to_numpy(zero_copy_only=False), from_pandas=True)
                     if pa.types.is_floating(col.type) else col for name, col in zip(table.column_names,
                                                                                        table.columns, strict=True)})
    with open(path, "wb") as f:
        f.write((",".join(table.column_names) + "\n").encode())
        pa_csv.write_csv(body, f, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
