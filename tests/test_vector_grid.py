"""``llmsim-grid`` on the batch path gives the table the point-by-point grid gives."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import sim.studies.sweep.grid as grid

AXES = {"hardware.hbm_bandwidth_GBps": [800.0, 2039.0], "hardware.freq_GHz": [1.0, 1.41],
        "workload.batch": [1, 16]}
FIXED = ["model=llama2_7b", "hardware=a100_80gb", "fidelity=analytic", "workload.decode_tokens=3"]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    return a == b or (pd.isna(a) and pd.isna(b))


@pytest.mark.slow
def test_batch_grid_equals_the_point_by_point_grid(monkeypatch):
    fast = grid.run_grid(FIXED, dict(AXES))
    assert fast.attrs["vectorised"] == 8 and fast.attrs["fallbacks"] == {}
    monkeypatch.setattr(grid, "run_vectorised", lambda *args: None)
    slow = grid.run_grid(FIXED, dict(AXES))
    assert list(fast.columns[:5]) == list(slow.columns[:5])
    assert set(fast.columns) == set(slow.columns)
    for col in slow.columns:
        if col in ("run.sim_wall_s", "run.distinct_ops"):  # what simulating cost (closed-form decode)
            continue
        for a, b in zip(fast[col], slow[col], strict=True):
            assert _same(a, b), (col, a, b)


def test_a_point_that_does_not_fit_is_a_capacity_row():
    table = grid.run_grid(["model=llama2_70b", "hardware=a100_80gb", "fidelity=analytic",
                           "workload.decode_tokens=2"], {"parallel.tp": [1, 2]})
    assert list(table["status"]) == ["failed", "ok"] and table.loc[0, "bound"] == "capacity"


def test_bad_values_fail_their_points_and_the_rest_run():
    """A chip or workload value its checks reject fails the points that have it, with the reason; the first
    rejected part (in key order) names it; every other point runs on the batch path."""
    table = grid.run_grid(FIXED, {"hardware.hbm_bandwidth_GBps": [800.0, -5.0, 2039.0], "workload.batch": [1, 0, 16]})
    assert table.attrs["vectorised"] == 4 and list(table["point"]) == list(range(9))
    reasons = dict(zip(table["point"], table["reason"], strict=True))
    assert list(table["status"] == "ok") == [True, False, True, False, False, False, True, False, True]
    assert reasons[1] == reasons[7] == "workload.batch must be >= 1 (got 0)"
    assert all("hbm_bandwidth_GBps must be a finite number > 0" in reasons[i] for i in (3, 4, 5))
    # a bad value at an end of an axis, where building in place is checked against composing, sent every point
    # down the point-by-point path, about 30 times slower (independent review): the check takes the next point
    ends = grid.run_grid(FIXED, {"hardware.hbm_bandwidth_GBps": [800.0, 2039.0], "workload.batch": [0, 1, 16, 0]})
    assert ends.attrs["vectorised"] == 4 and ends.attrs["fallbacks"] == {}
    assert list(ends["status"] == "ok") == [False, True, True, False] * 2


def test_a_discrete_event_grid_counts_its_points_on_the_scalar_path():
    fixed = ["model=llama2_7b", "hardware=a100_80gb", "fidelity=des", "workload.decode_tokens=2"]
    table = grid.run_grid(fixed, {"workload.batch": [1, 2]})
    assert table.attrs["vectorised"] == 0 and table.attrs["fallbacks"] == {"discrete-event fidelity": 2}


def test_a_rate_given_at_the_clock_with_a_swept_clock_is_composed_point_by_point():
    """An SRAM bandwidth given in TB/s is the bandwidth at each point's own clock when the point is composed; set on
    a chip made at the base clock it kept that clock's bytes per cycle, 3.5 % off at 2 GHz (independent review)."""
    from sim.batch.run import simulate
    from sim.metrics.summary import summarize
    from tests.conftest import make_config
    given = [*FIXED, "hardware.sram_bytes_per_cycle=null", "hardware.sram_bandwidth_TBps=5"]
    table = grid.run_grid(given, {"hardware.freq_GHz": [1.41, 2.0]})
    assert table.attrs["vectorised"] == 0
    composed = summarize(simulate(make_config(*given, "hardware.freq_GHz=2.0")))["ttft_s"]
    assert table["ttft_s"].tolist()[1] == composed


def test_the_grid_command_says_why_points_failed(tmp_path, capsys):
    """'(1 failed)' alone left the user to open the table; the command names a reason."""
    from sim.cli.grid import main

    main(["model=llama2_70b", "hardware=a100_80gb", "fidelity=analytic", "workload.decode_tokens=2",
          "parallel.tp=1,2", "--no-report", "--out", str(tmp_path / "g")])
    out = capsys.readouterr().out
    assert "2 points (1 failed)" in out and "why, e.g. point 0: " in out and "does not fit" in out


def test_a_grid_into_an_earlier_grids_folder_leaves_none_of_its_charts(tmp_path, capsys):
    """A second grid with --no-report into the same --out kept the first grid's regime map and Pareto chart beside
    its own table (independent review)."""
    from sim.cli.grid import main
    out = tmp_path / "G"
    main(["fidelity=analytic", "hardware.hbm_bandwidth_GBps=1000,2000", "workload.decode_tokens=4", "--out", str(out)])
    assert (out / "report" / "regime_map.png").exists()
    main(["fidelity=analytic", "workload.batch=1,2", "workload.decode_tokens=4", "--out", str(out), "--no-report"])
    assert sorted(p.name for p in (out / "report").iterdir()) == ["points.csv", "points.parquet"]
    capsys.readouterr()


def test_a_null_axis_value_keeps_the_example_point(tmp_path, capsys):
    """'speculative.draft_model=null,llama2_7b': the first point's null came back from the table as NaN, its re-run
    failed and no example_point/ (nor its charts) was written, unsaid (second opinion)."""
    from sim.cli.grid import main
    out = tmp_path / "g"
    main(["model=llama2_13b", "speculative.draft_model=null,llama2_7b", "fidelity=analytic",
          "workload.decode_tokens=4", "--no-report", "--out", str(out)])
    capsys.readouterr()
    config = (out / "example_point" / "config.yaml").read_text()
    assert "draft_model: null" in config and "speculative" not in \
        json.loads((out / "example_point" / "summary.json").read_text())["run"]
