"""``llmsim-chips``: every hardware preset's datasheet peaks beside what the model predicts and what was measured.

For each preset in conf/hardware, per quantity:

* ``gemm_bf16_TFLOPS``, ``gemm_fp8_TFLOPS``, ``gemm_fp4_TFLOPS``: the datasheet matrix peak
  (``HardwareConfig.peak_flops``) and the predicted rate of one 8192 x 8192 x 8192 GEMM
  (``2 * 8192**3 / time``, the time from ``Coster`` on the op ``llmsim-validate`` builds for a GEMM
  row); fp8 and fp4 only where the chip's arrays take them;
* ``stream_GBps``: the datasheet HBM bandwidth and the predicted bandwidth of a copy that reads
  1 GiB and writes 1 GiB (``llmsim-validate``'s memcpy op; bytes moved / time, as STREAM-class
  benchmarks count);
* ``allreduce8_busbw_GBps``: the per-direction link bandwidth (a ring's bus-bandwidth ceiling; in-switch
  reduction, NVLS, halves the bytes each chip sends, so its bus bandwidth can exceed it) and
  the predicted bus bandwidth ``2 (n - 1) / n * S / time`` of an all-reduce of S = 1 GiB per chip
  over n = 8 chips (as nccl-tests reports it), where the chip's fabric reaches 8 chips;

and, where public, the measured achievable figure from ``data/published/achievable.csv`` with its
source, and the predicted figure's difference from it. The measured figures are printed beside
predictions, never fitted on. The predictions use whatever the cost model is (``Coster`` and the
fitted fields the presets take), so this table follows any change to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hwmodels.chip import HardwareConfig
from hwmodels.numerics import DType
from sim.config.paths import DATA_DIR, presets
from sim.config.presets import load_hardware
from sim.engine.costing import Coster
from sim.studies.validate import allreduce_op, gemm_op, memcpy_op

ACHIEVABLE = DATA_DIR / "published" / "achievable.csv"
ACHIEVABLE_COLUMNS = ("chip", "quantity", "value", "source", "note")
GEMM_SIZE = 8192  # M = N = K of the large square GEMM
STREAM_BYTES = 2 * 2**30  # 1 GiB read + 1 GiB written
ALLREDUCE_BYTES = 2**30  # per chip
ALLREDUCE_CHIPS = 8
COLUMNS = ("chip", "quantity", "datasheet", "predicted", "predicted_of_datasheet_pct", "measured",
           "predicted_vs_measured_pct", "source", "note")


class ChipsInputError(ValueError):
    """A measured-figures file that cannot be used: one line for the user."""


def gemm_TFLOPS(chip: HardwareConfig, dtype: DType, size: int = GEMM_SIZE) -> float:
    """Predicted TFLOP/s of one ``size``-cubed GEMM in ``dtype`` on ``chip``."""
    return 2.0 * size**3 / Coster(chip)(gemm_op(size, size, size, dtype)).time_s / 1e12


def stream_GBps(chip: HardwareConfig, nbytes: float = STREAM_BYTES) -> float:
    """Predicted GB/s of a copy moving ``nbytes`` (half read, half written) through HBM."""
    return nbytes / Coster(chip)(memcpy_op(nbytes)).time_s / 1e9


def allreduce_busbw_GBps(chip: HardwareConfig, nbytes: float = ALLREDUCE_BYTES, chips: int = ALLREDUCE_CHIPS) -> float:
    """Predicted bus bandwidth (GB/s, nccl-tests' definition) of an all-reduce of ``nbytes`` per chip."""
    return 2.0 * (chips - 1) / chips * nbytes / Coster(chip)(allreduce_op(nbytes, chips)).time_s / 1e9


@dataclass(frozen=True)
class Quantity:
    """One printed figure: its datasheet value and its prediction on a chip (None: the chip lacks it)."""

    name: str
    applies: Callable[[HardwareConfig], bool]
    datasheet: Callable[[HardwareConfig], float]
    predicted: Callable[[HardwareConfig], float]


QUANTITIES: tuple[Quantity, ...] = (
    Quantity("gemm_bf16_TFLOPS", lambda c: c.supports(DType.bf16), lambda c: c.peak_flops(DType.bf16) / 1e12,
             lambda c: gemm_TFLOPS(c, DType.bf16)),
    Quantity("gemm_fp8_TFLOPS", lambda c: c.supports(DType.fp8), lambda c: c.peak_flops(DType.fp8) / 1e12,
             lambda c: gemm_TFLOPS(c, DType.fp8)),
    Quantity("gemm_fp4_TFLOPS", lambda c: c.supports(DType.fp4), lambda c: c.peak_flops(DType.fp4) / 1e12,
             lambda c: gemm_TFLOPS(c, DType.fp4)),
    Quantity("stream_GBps", lambda c: True, lambda c: c.hbm_bandwidth_GBps, stream_GBps),
    Quantity("allreduce8_busbw_GBps", lambda c: c.max_chips >= ALLREDUCE_CHIPS, lambda c: c.link_bandwidth_GBps,
             allreduce_busbw_GBps),
)
QUANTITY_NAMES = tuple(q.name for q in QUANTITIES)


MEASURED_LIMIT = 1e7  # TFLOP/s or GB/s: 10 EFLOP/s or 10 PB/s on one chip is a unit slip, not a measurement


def read_achievable(path: Path = ACHIEVABLE, chips: Iterable[str] | None = None) -> pd.DataFrame:
    """The measured achievable figures at ``path``, checked: known chips and quantities, a value > 0,
    a source, one row per (chip, quantity).

    Raises:
        ChipsInputError: no such file, not a CSV, a missing column or a bad row (the first is named).
    """
    try:
        frame = pd.read_csv(path, dtype={"chip": str, "quantity": str, "source": str, "note": str})
    except FileNotFoundError:
        raise ChipsInputError(f"no file at '{path}'") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, IsADirectoryError) as err:
        raise ChipsInputError(f"'{path}' is not a readable CSV ({str(err).strip()})") from None
    missing = [c for c in ACHIEVABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise ChipsInputError(f"'{path}' lacks the column(s) {', '.join(missing)}; the header must name: "
                              f"{', '.join(ACHIEVABLE_COLUMNS)}")
    if frame.empty:
        raise ChipsInputError(f"'{path}' has a header but no measured figures")
    known = set(presets("hardware") if chips is None else chips)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    for index, row in enumerate(frame.to_dict("records")):
        _check_row(row, f"'{path}' row {index + 2}", known)  # +2: the header is line 1
    twice = frame[frame.duplicated(["chip", "quantity"])]
    if len(twice):
        raise ChipsInputError(f"'{path}' gives {twice['chip'].iloc[0]} {twice['quantity'].iloc[0]} twice; "
                              "keep one figure per chip and quantity")
    return frame.fillna({"note": ""})


def _check_row(row: dict, where: str, known: set[str]) -> None:
    if row["chip"] not in known:
        raise ChipsInputError(f"{where}: unknown chip '{row['chip']}'; known: {', '.join(sorted(known))}")
    if row["quantity"] not in QUANTITY_NAMES:
        raise ChipsInputError(f"{where}: unknown quantity '{row['quantity']}'; known: {', '.join(QUANTITY_NAMES)}")
    if not (isinstance(row["value"], float) and math.isfinite(row["value"]) and row["value"] > 0):
        raise ChipsInputError(f"{where}: value must be a number > 0")
    if row["value"] > MEASURED_LIMIT:
        raise ChipsInputError(f"{where}: value {row['value']:g} is out of range: at most {MEASURED_LIMIT:g} "
                              "(TFLOP/s or GB/s; a unit slip?)")
    if not isinstance(row["source"], str) or not row["source"].strip():
        raise ChipsInputError(f"{where}: no source; every measured figure names where it was published")


def chip_table(names: Iterable[str] | None = None, achievable: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per chip preset and quantity it has (``COLUMNS``); measured columns empty where none is known."""
    names = list(presets("hardware") if names is None else names)
    measured = read_achievable(chips=names) if achievable is None else achievable
    index = {(r["chip"], r["quantity"]): r for r in measured.to_dict("records")}
    rows = []
    for name in names:
        chip = load_hardware(name)
        for q in QUANTITIES:
            if not q.applies(chip):
                continue
            sheet, predicted = q.datasheet(chip), q.predicted(chip)
            found = index.get((name, q.name), {})
            value = found.get("value", math.nan)
            rows.append((name, q.name, sheet, predicted, predicted / sheet * 100, value,
                         (predicted - value) / value * 100, found.get("source", ""), found.get("note", "")))
    shown = {(r[0], r[1]) for r in rows}
    for chip, quantity in index:  # a measured figure for a quantity the chip lacks was dropped without a word
        if chip in names and (chip, quantity) not in shown:
            raise ChipsInputError(f"{chip} has no {quantity} (not in the preset: a format its arrays do not run, or "
                                  "fewer chips than the all-reduce's); remove that measured row")
    return pd.DataFrame(rows, columns=list(COLUMNS))


def format_table(table: pd.DataFrame) -> str:
    """The table for a terminal: rounded figures, sources as numbered references listed below."""
    sources = list(dict.fromkeys(s for s in table["source"] if s))
    shown = pd.DataFrame({
        "chip": table["chip"], "quantity": table["quantity"],
        "datasheet": table["datasheet"].map(_figure), "predicted": table["predicted"].map(_figure),
        "pred/sheet": table["predicted_of_datasheet_pct"].map(lambda v: f"{v:.0f}%"),
        "measured": table["measured"].map(_figure),
        "pred vs meas": table["predicted_vs_measured_pct"].map(lambda v: "" if math.isnan(v) else f"{v:+.1f}%"),
        "src": table["source"].map(lambda s: f"[{sources.index(s) + 1}]" if s else ""),
    })
    lines = [shown.to_string(index=False), "",
             "datasheet: matrix peak, HBM bandwidth, per-direction link bandwidth (a ring's bus-bandwidth ceiling; "
             "in-switch reduction can exceed it)",
             "measured (printed beside predictions, never fitted on), by source:"]
    for i, source in enumerate(sources, 1):
        lines.append(f"  [{i}] {source}")
        lines += [f"      {r['chip']} {r['quantity']}: {r['note']}" for r in table.to_dict("records")
                  if r["source"] == source and r["note"]]
    return "\n".join(lines)


def _figure(value: float) -> str:
    return "" if math.isnan(value) else f"{value:,.1f}"
