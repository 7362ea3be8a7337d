"""A run as a timeline: op slices on the chip's resources, and the Chrome trace format.

Built from the per-op table (``ops.parquet`` / ``metrics.ops_columns``), so a finished run's
trace can be made again from its files. Tracks (one process each in the trace): one per declared
resource of the chip (``sim.engine.resources.RESOURCES``: compute arrays, vector unit, HBM,
links), plus one for the passes. An op is a slice on the track of the unit that does its work
(arrays, vector unit or links) from its start to its end; an op with work on another resource
(HBM bytes, or a resource added to the declaration) also has a slice on that track from the end
of its fixed delay for as long as that work takes alone (capped at the op's end; the table's
``<resource>_work_s`` column). Where slices overlap on a track (concurrent ops), they go on
separate rows ("lanes").

Repeated layers are one record with a ``count`` in the table; here every instance is laid out
back to back, which is what both fidelities simulate. Only the prefill and the first
``decode_steps`` decode steps are written (a 70B model over 256 steps would be hundreds of MB
and show the same step over and over); the trace says so in its metadata. A closed-form decode
segment (``sim/batch/closed_form.py``) is shown as its mean step, named with the steps it stands for.

Open ``trace.json`` in https://ui.perfetto.dev (or chrome://tracing). Times are microseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sim.engine.resources import RESOURCES, Resource
from sim.output.files import atomic_write

TRACKS = tuple(r.label for r in RESOURCES)
US = 1e6


@dataclass(frozen=True)
class Slice:
    """One op instance on one track; seconds."""

    track: str
    name: str
    kind: str
    phase: str
    step: int
    segment: str  # pre, layer (repeated) or post
    layer: int  # instance of a repeated layer (0 for pre/post segments)
    start_s: float
    dur_s: float
    bound: str
    args: dict


def steps_to_show(ops: pd.DataFrame, decode_steps: int) -> list[tuple[str, int]]:
    """(phase, step) of the passes a trace shows: the prefill and the first decode steps."""
    passes = ops[["phase", "step"]].drop_duplicates()
    prefill = [("prefill", int(s)) for s in passes[passes["phase"] == "prefill"]["step"]]
    decode = sorted(int(s) for s in passes[passes["phase"] == "decode"]["step"])[:decode_steps]
    return prefill + [("decode", s) for s in decode]


def slices(ops: pd.DataFrame, decode_steps: int = 2, resources: tuple[Resource, ...] = RESOURCES) -> list[Slice]:
    """The slices of the prefill and the first ``decode_steps`` decode steps, every layer laid out."""
    tracks = {r.name: r.label for r in resources}
    out: list[Slice] = []
    for phase, step in steps_to_show(ops, decode_steps):
        rows = ops[(ops["phase"] == phase) & (ops["step"] == step)].sort_values("start_s", kind="stable")
        for segment in rows["segment"].drop_duplicates():
            # Records hold a repeated layer's first instance; the simulation ran the others
            # back to back before the next segment (whose records already start after them).
            seg = rows[rows["segment"] == segment]
            span = float(seg["end_s"].max() - seg["start_s"].min())
            records = list(seg.itertuples(index=False))  # read once, laid out once per layer
            # A closed-form segment's count covers every step its mean step stands for: lay out one step.
            stands = int(seg["steps"].max()) if "steps" in seg else 1
            for layer in range(int(seg["count"].max()) // max(1, stands)):
                for r in records:
                    out.extend(_op_slices(r, phase, step, segment, layer, r.start_s + layer * span, tracks))
    return out


def _op_slices(r, phase: str, step: int, segment: str, layer: int, start_s: float,
               tracks: dict[str, str]) -> list[Slice]:
    """The op's slice on its unit's track, and one per other resource it puts work on."""
    dur = float(r.end_s - r.start_s)
    args = {"bound": r.bound, "layer": layer, "compute_us": r.compute_s * US, "memory_us": r.memory_s * US,
            "link_us": r.link_s * US, "overhead_us": r.overhead_s * US, "flops": r.flops, "hbm_bytes": r.hbm_bytes}
    unit = r.unit if r.unit in tracks else "vector"
    made = [Slice(tracks[unit], r.op, r.kind, phase, step, segment, layer, start_s, dur, r.bound, args)]
    row = r._asdict()
    for name, track in tracks.items():
        work = row.get(f"{name}_work_s", 0.0)
        if name != unit and work > 0:
            begin = start_s + min(r.overhead_s, dur)
            length = max(0.0, min(work, start_s + dur - begin))
            made.append(Slice(track, r.op, r.kind, phase, step, segment, layer, begin, length, r.bound, args))
    return made


def _lanes(items: list[Slice]) -> list[int]:
    """A row per slice so that no two slices on one row overlap (greedy, in start order)."""
    order = sorted(range(len(items)), key=lambda i: items[i].start_s)
    ends: list[float] = []
    lane = [0] * len(items)
    for i in order:
        s = items[i]
        for j, end in enumerate(ends):
            if end <= s.start_s + 1e-15:
                lane[i], ends[j] = j, s.start_s + s.dur_s
                break
        else:
            lane[i] = len(ends)
            ends.append(s.start_s + s.dur_s)
    return lane


def _steps_of(ops: pd.DataFrame, phase: str, step: int) -> int:
    """Decode steps the pass ``(phase, step)`` stands for (a closed-form segment's mean step: several)."""
    if "steps" not in ops:
        return 1
    rows = ops.loc[(ops["phase"] == phase) & (ops["step"] == step), "steps"]
    return int(rows.iloc[0]) if len(rows) else 1


def chrome_trace(ops: pd.DataFrame, decode_steps: int = 2, title: str = "llmsim run",
                 resources: tuple[Resource, ...] = RESOURCES) -> dict:
    """The trace-event JSON object (``ph: "X"`` complete events, a process per track)."""
    items = slices(ops, decode_steps, resources)
    tracks = [r.label for r in resources]
    events: list[dict] = []
    pids = {"passes": 1, **{name: i + 2 for i, name in enumerate(tracks)}}
    for name, pid in pids.items():
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": pid}})
    for track in tracks:
        on_track = [s for s in items if s.track == track]
        for s, lane in zip(on_track, _lanes(on_track), strict=True):
            events.append({"ph": "X", "name": s.name, "cat": s.kind, "pid": pids[track], "tid": lane,
                           "ts": s.start_s * US, "dur": s.dur_s * US,
                           "args": {"phase": s.phase, "step": s.step, **s.args}})
    shown = steps_to_show(ops, decode_steps)
    for phase, step in shown:
        in_pass = [s for s in items if s.phase == phase and s.step == step]
        start = min(s.start_s for s in in_pass)
        end = max(s.start_s + s.dur_s for s in in_pass)
        stands = _steps_of(ops, phase, step)
        name = "prefill" if phase == "prefill" else f"decode step {step}" if stands == 1 else \
            f"decode steps {step}-{step + stands - 1} (their mean step)"
        events.append({"ph": "X", "name": name, "cat": phase, "pid": 1, "tid": 0, "ts": start * US,
                       "dur": (end - start) * US, "args": {"phase": phase, "step": step}})
    decode = ops.loc[ops["phase"] == "decode"]
    total_steps = int(decode.groupby("step")["steps"].first().sum() if "steps" in ops else decode["step"].nunique())
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"title": title, "shown": f"prefill and decode steps {[s for p, s in shown if p == 'decode']}"
                          f" of {total_steps}; every layer laid out", "time_unit": "us"}}


def write_trace(ops: pd.DataFrame | dict, path: Path, decode_steps: int = 2, title: str = "llmsim run") -> Path:
    """Write ``trace.json`` for the per-op table ``ops`` (a DataFrame or ``ops_columns`` dict), atomically."""
    frame = ops if isinstance(ops, pd.DataFrame) else pd.DataFrame(ops)
    body = chrome_trace(frame, decode_steps, title)
    atomic_write(Path(path), lambda p: p.write_text(json.dumps(body, separators=(",", ":"))))
    return Path(path)
