"""The step log (sim/serving/step_log.py): rows as the steps ended, runs expanded with numpy, totals summed in order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.serving.step_cost import StepCost
from sim.serving.step_log import COLUMNS, RunRows, StepLog

floats = st.floats(1e-6, 10.0, allow_nan=False)


def _single(draw, instance: int) -> tuple:
    start, time_s, energy, matrix, hbm, swap = (draw(floats) for _ in range(6))
    p, tok, d, used, wait, run, pre = (draw(st.integers(0, 50)) for _ in range(7))
    return (instance, start, start + time_s, p, tok, d, p + d, d, used, used / 64, wait, run, pre, swap, energy,
            time_s + swap, matrix, hbm)


@st.composite
def logs(draw):
    """A log of single steps, runs (some with completions, some with the tail) and KV moves, with the rows and the
    additions each would have made one by one."""
    log, rows, busy, energy, matrix, hbm = StepLog(), [], [], [], [], []
    for _ in range(draw(st.integers(0, 12))):
        what, instance = draw(st.sampled_from(["single", "run", "move"])), draw(st.integers(0, 2))
        if what == "single":
            row = _single(draw, instance)
            log.step(row)
            rows.append(row[:len(COLUMNS)])
            busy.append((instance, row[-3]))
            energy.append(row[14])
            matrix.append(row[-2])
            hbm.append(row[-1])
        elif what == "move":
            joules = draw(floats)
            log.energy(joules)
            energy.append(joules)
        else:
            k, n, start = draw(st.integers(1, 6)), draw(st.integers(3, 9)), draw(floats)
            costs = [StepCost(*(draw(floats) for _ in range(5))) for _ in range(k)]
            ends = list(np.cumsum([start] + [c.time_s for c in costs])[1:])
            used = [draw(st.integers(10, 60)) for _ in range(k)]
            steps = sorted(set(draw(st.lists(st.integers(0, k - 1), max_size=2))))
            completed = [(j, 1, draw(st.integers(0, 5))) for j in steps]
            tail = (draw(st.integers(0, 3)), draw(st.integers(0, 9)), draw(st.integers(0, 60))) \
                if draw(st.booleans()) else None
            log.run(RunRows(instance, start, ends, costs, used, n, 2, 64, completed, tail))
            decoding = n
            for j in range(k):
                gone = sum(c[1] for c in completed if c[0] == j)
                blocks = used[j] - sum(c[2] for c in completed if c[0] == j)
                waiting, running = 2, decoding - gone
                if tail and j == k - 1:
                    waiting, running, blocks = tail
                rows.append((instance, start if j == 0 else ends[j - 1], ends[j], 0, 0, decoding, decoding, decoding,
                             blocks, blocks / 64, waiting, running, 0, 0.0, costs[j].dynamic_J))
                busy.append((instance, costs[j].time_s))
                energy.append(costs[j].dynamic_J)
                matrix.append(costs[j].matrix_flops)
                hbm.append(costs[j].hbm_bytes)
                decoding -= gone
    return log, rows, busy, energy, matrix, hbm


def _added(values) -> float:
    total = 0.0
    for v in values:
        total += v
    return total


@settings(max_examples=150, deadline=None)
@given(logs())
def test_the_log_is_its_rows_in_order_and_sums_them_one_by_one(drawn):
    log, rows, busy, energy, matrix, hbm = drawn
    names = ["a", "b", "c"]
    table, totals = log.finish(names)
    assert list(table) == list(COLUMNS)
    for i, name in enumerate(COLUMNS):
        expected = [names[r[0]] for r in rows] if name == "instance" else [r[i] for r in rows]
        assert table[name].tolist() == expected, name
    assert totals.busy_s == _added(b for _, b in busy)
    assert totals.busy_by == {n: _added(b for i, b in busy if names[i] == n) for n in names}
    assert (totals.dynamic_J, totals.matrix_flops, totals.hbm_bytes) == (_added(energy), _added(matrix), _added(hbm))
