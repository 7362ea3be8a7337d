"""The step table of a serving run and the totals summed over it, built once when the run ends.

The server logs one row per scheduler step, in the order the steps end (instances' steps
interleaved as SimPy runs them), and the dynamic energy of KV moves between instances where they
happen. A run of decode-only steps (sim/serving/decode_runs.py) is logged as one entry whatever
its length and expanded into its rows only at the end, with numpy: a trace replay has hundreds of
thousands of steps, most of them in runs, and a row written column by column as it happens cost
more than planning its step.

The totals (busy time per instance and overall, dynamic energy, matrix FLOPs, HBM bytes) are sums
over the rows in that order, taken as ``np.cumsum`` takes them: one addition after another, left
to right, the bits of adding each step's figure to a running total as it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from operator import attrgetter, itemgetter

import numpy as np

COLUMNS = ("instance", "start_s", "end_s", "prefill_sequences", "prefill_tokens", "decode_sequences", "batch_size",
           "tokens_made", "kv_blocks_used", "kv_cache_use", "waiting", "running", "preempted", "swap_s", "energy_J")
_HIDDEN = ("busy_s", "matrix_flops", "hbm_bytes")  # per row, summed into the totals; not columns of the table
_FLOATS = {"start_s", "end_s", "kv_cache_use", "swap_s", "energy_J", *_HIDDEN}


@dataclass(slots=True)
class RunRows:
    """Consecutive steps of a decode run (sim/serving/decode_runs.py), each list one per step. A step that
    completed requests shows them gone and their blocks freed (``completed``: (step, requests, blocks)); the
    last step's row, when it is the run's, shows the queue, the running requests and the blocks in use after the
    run was applied (``tail``)."""

    instance: int  # its position among the server's instances
    start: float  # the first step's start
    ends: list[float]
    costs: list  # StepCost: (time_s, dynamic_J, matrix_flops, flops, hbm_bytes, spans)
    used: list[int]  # blocks in use during the step
    decodes: int  # requests decoding in the first step
    waiting: int
    blocks: int  # the instance's cache, in blocks
    completed: list[tuple[int, int, int]]
    tail: tuple[int, int, int] | None  # (waiting, running, blocks in use) after the run's last step


@dataclass(frozen=True)
class Totals:
    busy_s: float
    busy_by: dict[str, float]
    dynamic_J: float
    matrix_flops: float
    hbm_bytes: float


class StepLog:
    """Rows as they happen: a tuple per step (``COLUMNS`` then ``_HIDDEN``, the instance by its position), a
    ``RunRows`` per stretch of a run, a float per KV move's energy; ``order`` says which came when."""

    SINGLE, RUN, MOVE = 0, 1, 2

    def __init__(self) -> None:
        self.singles: list[tuple] = []
        self.runs: list[RunRows] = []
        self.moves: list[float] = []
        self.order: list[int] = []

    def step(self, row: tuple) -> None:
        self.singles.append(row)
        self.order.append(self.SINGLE)

    def run(self, rows: RunRows) -> None:
        self.runs.append(rows)
        self.order.append(self.RUN)

    def energy(self, joules: float) -> None:
        """Dynamic energy outside any step (a KV move), added to the total where it happens."""
        self.moves.append(joules)
        self.order.append(self.MOVE)

    def finish(self, names: list[str]) -> tuple[dict[str, np.ndarray], Totals]:
        """The step table (``COLUMNS``, one array each) and the totals; ``names``: every instance, in order."""
        kind = np.array(self.order, dtype=np.int8)
        lengths = np.fromiter(map(len, map(attrgetter("ends"), self.runs)), np.int64, len(self.runs))
        sizes = np.zeros(kind.size, dtype=np.int64)
        sizes[kind == self.SINGLE] = 1
        sizes[kind == self.RUN] = lengths
        offsets = np.cumsum(sizes) - sizes
        total = int(sizes.sum())
        # the rows of runs, entry by entry: each run's offset repeated over its rows, plus 0, 1, 2, ... within it
        first = np.repeat(offsets[kind == self.RUN], lengths)
        at_runs = first + np.arange(first.size, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        at_singles = offsets[kind == self.SINGLE]
        by_run = _run_columns(self.runs, lengths)
        # one array of every single row (its int fields are exact as floats: far below 2**53), a column per field
        by_single = np.array(self.singles, dtype=np.float64).reshape(len(self.singles), len(COLUMNS) + len(_HIDDEN))
        columns: dict[str, np.ndarray] = {}
        for i, name in enumerate(COLUMNS + _HIDDEN):
            col = np.empty(total, dtype=np.float64 if name in _FLOATS else np.int64)
            col[at_singles] = by_single[:, i]
            col[at_runs] = by_run[name]
            columns[name] = col
        codes = columns.pop("instance")
        columns = {"instance": np.array(names, dtype=str)[codes], **columns}
        energy = columns["energy_J"]
        if self.moves:  # KV moves' energy joins the step energies at its place: after the rows logged before it
            energy = np.insert(energy, offsets[kind == self.MOVE], self.moves)
        busy = columns.pop("busy_s")
        totals = Totals(_sum(busy), {n: _sum(busy[codes == i]) for i, n in enumerate(names)}, _sum(energy),
                        _sum(columns.pop("matrix_flops")), _sum(columns.pop("hbm_bytes")))
        return columns, totals


def _sum(values: np.ndarray) -> float:
    """The sum of ``values`` one addition after another, from 0.0 (``np.cumsum`` is sequential; ``np.sum`` is not)."""
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def _joined(runs: list[RunRows], field: str, dtype, count: int) -> np.ndarray:
    """One list field of every run, joined."""
    return np.fromiter(chain.from_iterable(map(attrgetter(field), runs)), dtype, count)


def _run_columns(runs: list[RunRows], lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Every column of the runs' rows, one run after another."""
    count = int(lengths.sum())
    row0 = np.cumsum(lengths) - lengths  # each run's first row
    ends = _joined(runs, "ends", np.float64, count)
    starts = np.empty(count)
    starts[1:] = ends[:-1]  # a step starts when the one before it ends, the first at the run's start
    starts[row0] = np.fromiter(map(attrgetter("start"), runs), np.float64, len(runs))
    used = _joined(runs, "used", np.int64, count)
    waiting = np.repeat(np.fromiter(map(attrgetter("waiting"), runs), np.int64, len(runs)), lengths)
    gone = np.zeros(count, dtype=np.int64)  # requests each step completed
    completed = [(r0 + j, requests, blocks) for r0, r in zip(row0.tolist(), runs, strict=True) if r.completed
                 for j, requests, blocks in r.completed]
    if completed:  # a step that completed requests shows them gone and their blocks freed
        at, gone[at], blocks = np.array(completed, dtype=np.int64).T
        used[at] -= blocks
    before = np.cumsum(gone) - gone  # completed in the rows before, over all runs
    decodes = np.repeat(np.fromiter(map(attrgetter("decodes"), runs), np.int64, len(runs)), lengths) - \
        (before - np.repeat(before[row0], lengths))
    running = decodes - gone
    tails = [(r0 + n - 1, *r.tail) for r0, n, r in zip(row0.tolist(), lengths.tolist(), runs, strict=True) if r.tail]
    if tails:
        at, waiting[at], running[at], used[at] = np.array(tails, dtype=np.int64).T
    blocks = np.repeat(np.fromiter(map(attrgetter("blocks"), runs), np.int64, len(runs)), lengths)
    zeros = np.zeros(count, dtype=np.int64)
    costs = list(chain.from_iterable(map(attrgetter("costs"), runs)))
    time_s, energy, matrix, hbm = (np.fromiter(map(itemgetter(k), costs), np.float64, count) for k in (0, 1, 2, 4))
    return {"instance": np.repeat(np.fromiter(map(attrgetter("instance"), runs), np.int64, len(runs)), lengths),
            "start_s": starts, "end_s": ends, "prefill_sequences": zeros, "prefill_tokens": zeros,
            "decode_sequences": decodes, "batch_size": decodes, "tokens_made": decodes, "kv_blocks_used": used,
            "kv_cache_use": used / blocks, "waiting": waiting, "running": running, "preempted": zeros,
            "swap_s": np.zeros(count), "energy_J": energy, "busy_s": time_s, "matrix_flops": matrix, "hbm_bytes": hbm}
