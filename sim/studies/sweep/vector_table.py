"""A batch of points as a sweep table: the vectorised path's columns, the scalar fallbacks' rows.

``points_table(cfgs)`` simulates the configs with ``sim.batch.vector.simulate_points`` and returns
one row per config, in order, with the columns ``summary_row`` gives a finished point (every
summary figure flattened, ``time_by_op_s.<kind>``, ``bound``) plus ``status`` and, for a point
that failed, ``reason`` and its ``bound`` (``capacity`` or ``invalid``), as ``llmsim-grid`` rows.
``attrs["fallbacks"]`` counts the points run on the scalar path, by reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.batch.vector import PointsResult, simulate_points
from sim.config.schema import RunConfig
from sim.metrics.summary import breakdown_by_kind, summarize
from sim.metrics.vector_summary import group_columns
from sim.studies.sweep.table import failed_bound, summary_row


def _group_frame(result: PointsResult) -> list[pd.DataFrame]:
    frames = []
    for group in result.groups:
        cols = group_columns(group)
        n = len(group.index)
        data = {k: (v if isinstance(v, (np.ndarray, list)) else [v] * n) for k, v in cols.items()}
        frame = pd.DataFrame(data, index=group.index)
        frame.insert(0, "status", "ok")
        frames.append(frame)
    return frames


def _scalar_rows(result: PointsResult) -> pd.DataFrame | None:
    rows, index = [], []
    for i, run in result.scalar.items():
        summary = summarize(run)
        summary["breakdown"] = breakdown_by_kind(run)
        rows.append({"status": "ok", **summary_row(summary)})
        index.append(i)
    for i, err in result.failed.items():
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        rows.append({"status": "failed", "reason": reason, "bound": failed_bound(reason)})
        index.append(i)
    return pd.DataFrame(rows, index=index) if rows else None


def points_table(cfgs: list[RunConfig]) -> pd.DataFrame:
    """One row per config of ``cfgs`` (in order): status, every summary figure, or the failure."""
    result = simulate_points(cfgs)
    return result_table(result)


def result_table(result: PointsResult) -> pd.DataFrame:
    frames = _group_frame(result)
    scalar = _scalar_rows(result)
    if scalar is not None:
        frames.append(scalar)
    table = pd.concat(frames) if len(frames) > 1 else frames[0] if frames else pd.DataFrame()
    table = table.sort_index()
    table.attrs["fallbacks"] = dict(result.fallbacks)
    table.attrs["vectorised"] = result.vectorised
    return table
