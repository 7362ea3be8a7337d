"""Leave-one-group-out calibration report (``llmsim-calibrate --holdout``): does the fit generalise?

A group is one source of the calibration set (the part of ``source`` before the first ':': vidur,
llmcompass, azure, gpu-stream, babelstream, splitwise) and, within a source whose second field
names a model preset (Vidur's per-model GEMM profiles), each model (vidur:llama2_7b, ...). For
each group the shared parameters are refitted without its rows (``calibrate.fit``, and
``calibrate.fit_runtime`` where the group has end-to-end rows that need host costs), its rows are
predicted with that refit (``validate.validate``), and their median |error| is set beside the
median the full fit gives them. A held-out median above 1.5 x the in-sample one flags a group the
fit leans on rather than generalises to (issue 12's criterion).

A group can be the only data for a parameter: every row whose prediction moves with it belongs to
the group (the eager runtime's host costs and the Splitwise rows, say). Its refit cannot know that
parameter, so the report names the parameters in ``only_data_for`` and gives no held-out figure
rather than one made from a value the fit never saw.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from sim.config.paths import presets
from sim.config.schema import RuntimeConfig
from sim.studies import calibrate
from sim.studies.validate import validate

FIT_KINDS = ("gemm", "memcpy", "allreduce")  # the kernel-level rows calibrate.fit fits the chip parameters on
EAGER = "vllm_eager"  # the runtime whose host costs calibrate.fit_runtime fits
FLAG_RATIO = 1.5
NUDGE = 0.8  # a parameter is scaled by this (or set to 1 from 0) to see which rows it moves
COLUMNS = ("group", "rows", "in_sample_median_pct", "held_out_median_pct", "ratio", "over_1_5x", "only_data_for")


def groups(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each group's rows as a boolean mask over ``frame``: sources first, then source:model groups."""
    parts = frame["source"].astype(str).str.split(":")
    source = parts.str[0]
    second = parts.str[1].fillna("")
    models = set(presets("model"))
    out = {name: (source == name).to_numpy() for name in dict.fromkeys(source)}
    for name in dict.fromkeys(source + ":" + second):
        head, _, model = name.partition(":")
        if model in models:
            out[name] = ((source == head) & (second == model)).to_numpy()
    return out


def runtimes(runtime: dict[str, float]) -> dict[str, RuntimeConfig]:
    """The eager runtime with fitted host costs, as llmsim-calibrate validates with it."""
    return {EAGER: calibrate.eager_runtime(runtime)}


def moved_by(frame: pd.DataFrame, fitted: dict[str, float]) -> dict[str, np.ndarray]:
    """For each fitted chip parameter, the kernel-level rows of ``frame`` whose prediction it moves."""
    kernel = frame["kind"].isin(FIT_KINDS).to_numpy()
    rows = frame[kernel]
    base = validate(rows, fitted)[0]["predicted_ms"].to_numpy(dtype=float)
    out = {}
    for key, value in fitted.items():
        nudged = validate(rows, {**fitted, key: value * NUDGE if value else 1.0})[0]["predicted_ms"]
        moved = ~np.isclose(nudged.to_numpy(dtype=float), base, rtol=1e-9, atol=0.0, equal_nan=True)
        mask = np.zeros(len(frame), dtype=bool)
        mask[kernel] = moved
        out[key] = mask
    return out


def only_data_for(mask: np.ndarray, moved: dict[str, np.ndarray], frame: pd.DataFrame,
                  runtime: dict[str, float]) -> list[str]:
    """The parameters no row outside ``mask`` informs but some row inside does."""
    names = [key for key, rows in moved.items() if rows[mask].any() and not rows[~mask].any()]
    eager = (frame["runtime"] == EAGER).to_numpy()
    if eager[mask].any() and not eager[~mask].any():
        names += list(runtime)
    return names


def _median_abs(out: pd.DataFrame) -> float:
    err = pd.to_numeric(out["error_pct"], errors="coerce").abs().dropna()
    return float(err.median()) if len(err) else float("nan")


def held_out(frame: pd.DataFrame, mask: np.ndarray, start: dict[str, float] | None = None) -> float:
    """Median |error| of the rows in ``mask`` predicted from a fit on the other rows alone (started at ``start``)."""
    rest, rows = frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)
    fitted = calibrate.fit(rest, start)
    eager = runtimes(calibrate.fit_runtime(rest, fitted)) if (rows["runtime"] == EAGER).any() else None
    return _median_abs(validate(rows, fitted, eager)[0])


def leave_one_group_out(frame: pd.DataFrame, full: tuple[dict, dict] | None = None,
                        progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per group (``COLUMNS``): its rows, in-sample and held-out median |error| (%), their ratio,
    whether held-out exceeds ``FLAG_RATIO`` x in-sample, and the parameters it alone informs.

    ``full``: the fit on all of ``frame`` (chip parameters, eager host costs) if already made;
    ``progress``: called with each group's name before its refit (refits take tens of seconds).
    """
    frame = frame.reset_index(drop=True)
    fitted, runtime = full if full is not None else (calibrate.fit(frame), None)
    runtime = runtime if runtime is not None else calibrate.fit_runtime(frame, fitted)
    in_sample = validate(frame, fitted, runtimes(runtime))[0]
    moved = moved_by(frame, fitted)
    lines = []
    for name, mask in groups(frame).items():
        alone = only_data_for(mask, moved, frame, runtime)
        inside = _median_abs(in_sample[mask])
        if progress is not None:
            progress(name)
        outside = float("nan") if alone else held_out(frame, mask, fitted)
        ratio = outside / inside if inside > 0 else float("nan")
        lines.append((name, int(mask.sum()), inside, outside, ratio, bool(ratio > FLAG_RATIO), ", ".join(alone)))
    return pd.DataFrame(lines, columns=list(COLUMNS))


def holdout_table(report: pd.DataFrame) -> str:
    """The report for a terminal (figures rounded, flags marked)."""
    shown = report.assign(**{c: report[c].round(1) for c in ("in_sample_median_pct", "held_out_median_pct")},
                          ratio=report["ratio"].round(2),
                          over_1_5x=report["over_1_5x"].map({True: "FLAG", False: ""}))
    return shown.astype(object).where(shown.notna(), "-").to_string(index=False)
