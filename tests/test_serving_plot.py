"""The serving plot draws long runs thinned to what its pixels can show (sim/plots/serving_timeline.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.plots.serving_timeline import BINS, _pixels


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 40_000))
def test_thinning_keeps_each_bins_first_last_lowest_and_highest_point(seed, n):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0, n) * (rng.random(n) < 0.9))  # with ties in time
    values = rng.integers(0, 50, n).astype(float)
    keep = _pixels(t, values)
    assert np.all(np.diff(keep) > 0) and keep[0] == 0 and keep[-1] == n - 1
    if n <= 4 * BINS or t[-1] == t[0]:
        assert len(keep) == n
        return
    assert len(keep) <= 4 * BINS
    bins = np.minimum(((t - t[0]) / (t[-1] - t[0]) * BINS).astype(np.int64), BINS - 1)
    for b in np.unique(bins)[:: max(1, BINS // 64)]:
        every, kept = np.flatnonzero(bins == b), keep[bins[keep] == b]
        assert kept[0] == every[0] and kept[-1] == every[-1]
        assert values[kept].min() == values[every].min() and values[kept].max() == values[every].max()


def test_work_done_aside_is_there_once_waited_for_and_its_failure_is_raised_here(tmp_path):
    from sim.studies.serving_job import aside

    def write():
        (tmp_path / "ok.png").write_text("7")

    def fail():
        raise ValueError("no room on the canvas")

    aside(write, "drawing ok.png")()
    assert (tmp_path / "ok.png").read_text() == "7"
    wait = aside(fail, "drawing bad.png")
    with pytest.raises(RuntimeError, match="drawing bad.png failed: ValueError: no room on the canvas"):
        wait()

    def full():
        raise OSError(28, "No space left on device")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(OSError, match="drawing full.png failed: OSError: .*No space left on device"):
        aside(full, "drawing full.png")()
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C there is Ctrl-C here: the command's "interrupted", exit 130
        aside(interrupted, "drawing stopped.png")()
    aside(fail, "drawing bad.png")(check=False)  # something already failed here: that is what gets reported
