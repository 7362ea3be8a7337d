"""Sweeps end to end: multirun through the real CLI (basic and joblib launchers), the report's
table and charts, skipping finished points on a re-run, failed points, recipes, the in-job grid."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from sim.config.compose import compose_dict
from sim.config.overrides import InputError, check_override
from sim.plots.regime import regime_grid
from sim.studies.sweep import ReportError
from sim.studies.sweep.callbacks import SweepCallback, count_points
from sim.studies.sweep.grid import run_grid, split_arguments
from sim.studies.sweep.points import point_key
from sim.studies.sweep.report import report_sweep
from tests.conftest import run_cli

SMALL = ["hardware=teaching_npu", "workload.prompt_tokens=128", "workload.decode_tokens=4", "fidelity=analytic",
         "output.print_summary=false"]
CHARTS = ("regime_map.png", "breakdown_by_bound.png", "breakdown_by_op.png", "pareto.png", "roofline_point0.png",
          "decode_step_point0.png")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_serving_sweep_draws_only_the_charts_its_summaries_feed(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", f"hydra.sweep.dir={sweep}", "workload=serving", "workload.num_requests=20",
                   "hardware.hbm_bandwidth_GBps=2000,3000")
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr  # no empty chart drawn from columns a serving run does not have
    drawn = {p.name for p in (sweep / "report").glob("*.png")}
    assert "regime_map.png" in drawn and not drawn & {"breakdown_by_bound.png", "breakdown_by_op.png"}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]],
                         ids=["basic", "joblib"])
def test_2x2_multirun_makes_a_four_row_table_and_the_charts(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *launcher, f"hydra.sweep.dir={sweep}", *SMALL, "hardware.hbm_bandwidth_GBps=500,2000",
                   "hardware.freq_GHz=0.5,2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.parent.name for p in sweep.glob("*/summary.json")) == ["0", "1", "2", "3"]
    table = pd.read_parquet(sweep / "report" / "points.parquet")
    assert len(table) == 4 and len(pd.read_csv(sweep / "report" / "points.csv")) == 4
    assert set(table["hardware.hbm_bandwidth_GBps"]) == {500, 2000} and set(table["hardware.freq_GHz"]) == {0.5, 2}
    for metric in ("output_tokens_per_s", "ttft_s", "time_by_bound_s.memory", "utilisation.hbm_bandwidth",
                   "time_by_op_s.mlp_up", "bound"):
        assert table[metric].notna().all(), metric
    # More bandwidth and a faster clock never make a point slower.
    fast = table.set_index(["hardware.hbm_bandwidth_GBps", "hardware.freq_GHz"])["total_s"]
    assert fast[(2000, 2)] <= min(fast[(500, 2)], fast[(2000, 0.5)]) <= fast[(500, 0.5)]
    for chart in CHARTS:
        assert (sweep / "report" / chart).read_bytes()[:8] == PNG, chart
    trace = json.loads((sweep / "report" / "trace_point0.json").read_text())
    assert any(e["ph"] == "X" for e in trace["traceEvents"])
    assert not list(sweep.rglob(".*.tmp"))  # no half-written files


@pytest.mark.slow
def test_rerun_skips_finished_points_and_retries_failed_ones(tmp_path):
    args = ["-m", *SMALL, "parallel.tp=1,3", "sweep.report=false"]
    first = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'first'}")
    assert first.returncode == 0, first.stderr
    assert "does not divide" in json.loads((tmp_path / "first" / "1" / "failed.json").read_text())["reason"]
    second = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'second'}")
    assert second.returncode == 0, second.stderr
    assert "reused" in second.stdout
    reused = json.loads((tmp_path / "second" / "0" / "reused.json").read_text())
    assert reused["reused_from"] == str((tmp_path / "first" / "0").resolve())
    a, b = (json.loads((tmp_path / d / "0" / "summary.json").read_text()) for d in ("first", "second"))
    assert a == b and (tmp_path / "second" / "0" / "ops.parquet").exists()
    assert (tmp_path / "second" / "1" / "failed.json").exists()  # a failed point is tried again
    third = run_cli(*args, "sweep.rerun=true", f"hydra.sweep.dir={tmp_path / 'third'}")
    assert third.returncode == 0, third.stderr
    assert not (tmp_path / "third" / "0" / "reused.json").exists() and "reused" not in third.stdout
    assert (tmp_path / "third" / "0" / "summary.json").exists()


@pytest.mark.slow
def test_a_sweep_folder_used_again_reports_only_the_new_sweep(tmp_path):
    """A 4-point sweep, then a 2-point one in the same folder: the report held 4 rows, 2 of them the old sweep's,
    all ok; and with sweep.report=false the old report stayed, describing points no longer there (review)."""
    sweep = tmp_path / "sweep"
    first = run_cli("-m", *SMALL, "workload.batch=1,2,3,4", f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr
    quiet = run_cli("-m", *SMALL, "workload.batch=7,8", "sweep.report=false", f"hydra.sweep.dir={sweep}")
    assert quiet.returncode == 0, quiet.stderr
    assert not (sweep / "report").exists()  # the first sweep's report went with its points
    second = run_cli("-m", *SMALL, "workload.batch=5,6", f"hydra.sweep.dir={sweep}")
    assert second.returncode == 0, second.stderr
    table = pd.read_parquet(sweep / "report" / "points.parquet")
    assert list(table["workload.batch"]) == [5, 6] and list(table["status"]) == ["ok", "ok"]


def test_a_point_a_stopped_sweep_never_started_is_a_missing_row(tmp_path):
    """multirun.yaml says how many points the sweep has: the report lists those without a folder as missing
    instead of reading as complete, and leaves out folders numbered past the count (an earlier sweep's)."""
    from sim.studies.sweep.table import collect

    saved = OmegaConf.create({"hydra": {"sweeper": {"params": {"workload.batch": "1,2,3"}},
                                        "overrides": {"task": ["hardware=teaching_npu"]}}})
    OmegaConf.save(saved, tmp_path / "multirun.yaml")
    for n in (0, 5):  # point 0 finished; 5 is from an earlier, larger sweep
        (tmp_path / str(n)).mkdir()
        (tmp_path / str(n) / "failed.json").write_text(json.dumps({"reason": "x does not fit"}))
    table = collect(tmp_path)
    assert list(table["point"]) == [0, 1, 2] and list(table["status"]) == ["failed", "missing", "missing"]
    assert "never started" in table.loc[1, "reason"]


def test_point_key_ignores_what_does_not_change_results():
    base = compose_dict(SMALL)
    assert point_key(base) == point_key(compose_dict([*SMALL, "output.print_summary=true", "name=other",
                                                      "sweep.rerun=true", "output.trace=true"]))
    assert point_key(base) != point_key(compose_dict([*SMALL, "hardware.hbm_bandwidth_GBps=999"]))


def test_experiment_overrides_are_checked():
    check_override("+experiment=bandwidth_vs_compute")
    with pytest.raises(InputError, match="unknown experiment 'bandwidth_vs_comput'.*did you mean.*known: "):
        check_override("+experiment=bandwidth_vs_comput")
    with pytest.raises(InputError, match=r"use \+experiment=link_vs_tp"):
        check_override("experiment=link_vs_tp")


@pytest.mark.slow
def test_unknown_experiment_is_one_line(tmp_path):
    proc = run_cli("+experiment=nope", f"hydra.sweep.dir={tmp_path}")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "known: bandwidth_vs_compute" in lines[0]


@pytest.mark.parametrize("recipe, points", [("bandwidth_vs_compute", 30), ("sram_vs_batch", 42),
                                            ("link_vs_tp", 25), ("quant_vs_bandwidth", 20)])
def test_recipes_compose_and_carry_their_sweep(recipe, points):
    cfg = compose_dict([f"+experiment={recipe}"], with_hydra=True)
    assert cfg.name == recipe and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert len(cfg.hydra.sweeper.params) == 2 and count_points(cfg) == points
    assert cfg.sweep.x in cfg.hydra.sweeper.params and cfg.sweep.y in cfg.hydra.sweeper.params


def test_progress_bar_counts_points_and_estimates_time_left(monkeypatch, tmp_path):
    cfg = compose_dict(["+experiment=bandwidth_vs_compute", "sweep.progress=true", f"hydra.sweep.dir={tmp_path}"],
                       with_hydra=True)  # its folder: the sweep's id is written there, not under the clone's results/
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setenv("COLUMNS", "150")  # the bar's width
    callback = SweepCallback()
    callback.on_multirun_start(cfg)

    class Done:
        _return_value = {"ttft_s": 1.0}

    for _ in range(3):
        callback.on_job_end(cfg, Done())
    callback.on_job_end(cfg, type("Failed", (), {"_return_value": None})())
    callback._bar.refresh()  # it redraws at most every 0.5 s
    text = err.getvalue()
    assert "4/30" in text and "<" in text and "failed=1" in text  # tqdm's [elapsed<left] estimate
    assert callback.__getstate__()["_bar"] is None  # what a parallel launcher pickles has no bar
    callback.on_multirun_end(OmegaConf.merge(cfg, {"sweep": {"report": False}}))
    assert callback._bar is None


@pytest.mark.slow
def test_grid_sweeps_inside_one_job_and_records_failures(tmp_path):
    # up to 3.2 TB/s: 11 HBM2 stacks (the teaching chip's generation) reach 3.4 TB/s at most (issue 13)
    fixed, axes = split_arguments([*SMALL, "hardware.hbm_bandwidth_GBps=geomspace(200,3200,5)", "parallel.tp=1,3"])
    assert axes == {"hardware.hbm_bandwidth_GBps": [200.0, 400.0, 800.0, 1600.0, 3200.0], "parallel.tp": [1, 3]}
    assert fixed == SMALL
    table = run_grid(fixed, axes, out=tmp_path)
    assert len(table) == 10 and (table["status"] == "failed").sum() == 5
    assert table.loc[table["status"] == "failed", "reason"].str.contains("does not divide").all()
    assert (tmp_path / "report" / "points.parquet").exists() and (tmp_path / "example_point" / "ops.parquet").exists()
    written = report_sweep(tmp_path)
    assert {"regime_map", "breakdown_by_bound", "pareto"} <= set(written)


@pytest.mark.slow
def test_regime_boundary_sits_at_the_ridge_point_on_teaching_npu():
    """Compute-bound exactly where the chip's ridge (peak FLOP/s / bandwidth) falls below the
    workload's arithmetic intensity, to within one grid step along the bandwidth axis."""
    bandwidths = [float(f"{v:.6g}") for v in np.geomspace(125, 8000, 13)]  # steps of sqrt(2)
    clocks = [0.5, 1.0, 2.0]
    fixed = ["hardware=teaching_npu", "fidelity=analytic", "workload.prompt_tokens=256", "workload.decode_tokens=1",
             "hardware.hbm_generation=hbm3e"]  # stacks that reach 8 TB/s (HBM2's reach 3.4)
    table = run_grid(fixed, {"hardware.hbm_bandwidth_GBps": bandwidths, "hardware.freq_GHz": clocks})
    one = table[(table["hardware.freq_GHz"] == 1.0) & (table["hardware.hbm_bandwidth_GBps"] == 1000.0)].iloc[0]
    assert one["peaks.ridge_flop_per_byte"] == pytest.approx(131.072)  # 131.072 TFLOP/s over 1000 GB/s
    intensity = (table["matrix_flops_per_chip"] / table["hbm_bytes_per_chip"]).iloc[0]  # FLOP per HBM byte
    grid = regime_grid(table, "hardware.hbm_bandwidth_GBps", "hardware.freq_GHz", "output_tokens_per_s")
    for i, clock in enumerate(grid["ys"]):
        row = list(grid["bound"][i])
        assert set(row) == {"memory", "compute"} and row == sorted(row, key=lambda b: b == "compute")
        observed = row.index("compute")
        ridge_bandwidth = 131.072e12 * clock / intensity / 1e9  # GB/s at which the ridge meets the workload
        predicted = next(j for j, bw in enumerate(grid["xs"]) if bw >= ridge_bandwidth)
        assert abs(observed - predicted) <= 1, (clock, grid["xs"][observed], ridge_bandwidth)


def test_report_of_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="holds no sweep points"):
        report_sweep(tmp_path)


def test_a_plain_value_on_the_command_line_pins_a_recipe_axis(tmp_path):
    """`+experiment=bandwidth_vs_compute hardware.freq_GHz=1` sweeps bandwidth only, as llmsim -m does."""
    fixed, axes = split_arguments(["+experiment=bandwidth_vs_compute", "hardware.hbm_bandwidth_GBps=250,8000",
                                   "hardware.freq_GHz=1"])
    table = run_grid(fixed, axes)
    assert len(table) == 2 and "hardware.freq_GHz" not in table  # one clock: not an axis


@pytest.mark.parametrize("text, message", [
    ("geomspace(250,8000)", "geomspace(start, stop, num) takes three numbers (got 2)"),
    ("linspace(1,2,3,4)", "linspace(start, stop, num) takes three numbers (got 4)"),
    ("geomspace(0,8000,4)", "geomspace needs num >= 1 and positive ends"),
    ("linspace(a,2,3)", "linspace(start, stop, num) needs numbers and a whole count"),
    ("linspace(1000,inf,3)", "linspace(start, stop, num) needs finite ends"),  # was numpy warnings, then a failure
    ("linspace(nan,2000,3)", "linspace(start, stop, num) needs finite ends"),  # was two failed points
])
def test_a_space_function_with_wrong_arguments_says_what_it_takes(text, message):
    with pytest.raises(ReportError, match=re.escape(message)):
        split_arguments([f"hardware.hbm_bandwidth_GBps={text}"])


def test_a_whole_number_axis_says_how_its_values_were_rounded(capsys):
    from sim.studies.sweep.grid import axis_values

    assert axis_values("workload.batch", "linspace(1,8,4)") == [1, 3, 6, 8]
    assert "workload.batch takes whole numbers: linspace(1,8,4) runs [1, 3, 6, 8]" in capsys.readouterr().err
    assert axis_values("workload.batch", "linspace(1,8,8)") == list(range(1, 9))
    assert capsys.readouterr().err == ""


def test_a_range_with_a_step_of_zero_is_one_line():
    """Hydra's range() raised a bare ValueError deep in its sweeper: a traceback, exit 1 (review)."""
    from sim.config.overrides import InputError, check_override
    from sim.studies.sweep import ReportError
    from sim.studies.sweep.grid import axis_values
    with pytest.raises(InputError, match=r"workload.batch=range\(1,2,0\): .* a step other than 0"):
        check_override("workload.batch=range(1,2,0)")
    with pytest.raises(ReportError, match=r"range\(1,2,0\)"):
        axis_values("hardware.freq_GHz", "range(1,2,0)")
    check_override("workload.batch=range(1,5,2)")
