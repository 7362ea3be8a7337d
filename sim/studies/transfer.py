"""The transfer check: does a model fitted on A100 alone predict another chip's GEMMs?

``data/transfer_check/vidur_gemms.csv`` holds the same projection GEMMs measured on A100-80GB and
H100-SXM (provenance in its README). It is for checking, never for fitting: nothing in
``llmsim-calibrate`` reads it. ``transfer_medians`` reduces ``validate``'s output to the median
|error| per hardware, over all rows and per band of M (the GEMM's token count): weight reads
(M <= 64), the middle (128 <= M <= 512) and compute-bound GEMMs (M >= 1024), the bands issue 12
holds the H100 rows to. A row whose M lies between bands counts only in ``all``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from sim.config.paths import DATA_DIR
from sim.studies.validate import read_measurements, validate

TRANSFER_CHECK = DATA_DIR / "transfer_check" / "vidur_gemms.csv"
ALL = "all"
BANDS: dict[str, tuple[float, float]] = {  # name: (lowest M, highest M), both included
    "M<=64": (1, 64),
    "128<=M<=512": (128, 512),
    "M>=1024": (1024, math.inf),
}
COLUMNS = ("hardware", "band", "rows", "median_abs_error_pct")


def read_transfer_check(path: Path = TRANSFER_CHECK) -> pd.DataFrame:
    """The transfer-check rows (``llmsim-validate`` format), header checked."""
    return read_measurements(path)


def band(m: float) -> str | None:
    """The M band of a GEMM with ``m`` rows, or None between bands (or for no M)."""
    for name, (low, high) in BANDS.items():
        if low <= m <= high:
            return name
    return None


def transfer_medians(out: pd.DataFrame) -> pd.DataFrame:
    """Median |error_pct| per hardware, over all its predicted rows and per M band (``COLUMNS``).

    ``out``: ``validate``'s output (rows with ``hardware``, ``m`` and ``error_pct``); rows it
    could not predict (NaN error) are left out. A band with no rows on a hardware has no line.
    """
    frame = out.assign(abs_err=pd.to_numeric(out["error_pct"], errors="coerce").abs())
    frame = frame[frame["abs_err"].notna()]
    frame = frame.assign(band=[band(m) for m in pd.to_numeric(frame["m"], errors="coerce")])
    lines = []
    for hardware, part in frame.groupby("hardware", sort=True):
        lines.append((hardware, ALL, len(part), float(part["abs_err"].median())))
        for name in BANDS:
            rows = part[part["band"] == name]
            if len(rows):
                lines.append((hardware, name, len(rows), float(rows["abs_err"].median())))
    return pd.DataFrame(lines, columns=list(COLUMNS))


def transfer_report(frame: pd.DataFrame | None = None, chip_changes: dict | None = None,
                    runtimes: Mapping | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Predict the transfer check (default: the shipped file) and reduce it to medians.

    Returns the predicted rows, ``transfer_medians`` of them and the rows that could not be predicted.
    """
    rows = read_transfer_check() if frame is None else frame
    out, problems = validate(rows, chip_changes, runtimes)
    return out, transfer_medians(out), problems


def medians_table(medians: pd.DataFrame) -> str:
    """The medians as a readable table: one line per hardware, a column per band (rows in brackets)."""
    if medians.empty:
        return "no rows predicted"
    cells = medians.assign(cell=[f"{e:.1f}% ({n})" for e, n in zip(medians["median_abs_error_pct"],
                                                                     medians["rows"], strict=True)])
    wide = cells.pivot(index="hardware", columns="band", values="cell").fillna("-")
    order = [c for c in (ALL, *BANDS) if c in wide.columns]
    return "median |error| (rows)\n" + wide[order].to_string()
