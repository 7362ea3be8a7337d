"""The console of a multirun (one line per point, the failures once at the end) and search-space overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import DictConfig, OmegaConf

from sim.config.compose import compose_dict
from sim.studies.search import SearchError
from sim.studies.search.runner import flat_derived, flat_space
from sim.studies.sweep.callbacks import SweepCallback, failures, figures, point_name
from tests.conftest import REPO, run_cli

QUICK = ["fidelity=analytic", "workload.prompt_tokens=128", "workload.decode_tokens=4"]
TOO_BIG = "workload.batch=100000"  # its KV cache fits no chip: the point fails before simulating


def _own_lines(text: str) -> list[str]:
    """Lines of llmsim's own output: not Hydra's launch lines, not blank."""
    return [ln for ln in text.splitlines() if ln.strip() and "[HYDRA]" not in ln]


@pytest.mark.slow
def test_multirun_prints_a_line_per_point_and_its_failures_once_at_the_end(tmp_path):
    proc = run_cli("-m", *QUICK, "workload.batch=1,2,3,4,5,100000", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr  # some failed points: still a sweep
    out = _own_lines(proc.stdout)
    assert len(out) <= 12, proc.stdout  # was 269 lines (every point's full summary)
    assert not _own_lines(proc.stderr), proc.stderr  # nothing printed in the middle of the points
    points = [ln for ln in out if ln.startswith("[")]
    assert len(points) == 6 and points[0].startswith("[#0, 1 of 6] workload.batch=1: ttft ")
    assert "output tokens/s" in points[0] and "failed" in points[5] and "100000" in points[5]
    text = proc.stdout + proc.stderr
    assert text.count("does not fit") == 1  # the reason, once, in the list at the end
    at = out.index("1 of 6 points failed:")
    assert out[at + 1].startswith("  #5 workload.batch=100000: llama2_7b does not fit")
    assert sum(ln.startswith("llmsim-report: wrote") for ln in out) == 1
    assert json.loads((tmp_path / "5" / "failed.json").read_text())["point"] == 5


@pytest.mark.slow
def test_a_sweep_where_every_point_fails_is_one_line_and_exit_2(tmp_path):
    proc = run_cli("-m", *QUICK, "workload.batch=100000,200000", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    errors = _own_lines(proc.stderr)
    assert len(errors) == 1 and errors[0].startswith("llmsim: error: all 2 points failed: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and not (tmp_path / "report").exists()


@pytest.mark.slow
def test_single_run_prints_its_full_summary(tmp_path):
    proc = run_cli(*QUICK, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0 and "time by bound" in proc.stdout and "outputs" in proc.stdout


def _finished_job(tmp_path: Path, number: int, overrides: list[str]) -> DictConfig:
    return OmegaConf.create({"hydra": {"job": {"num": number}, "overrides": {"task": overrides},
                                       "runtime": {"output_dir": str(tmp_path / str(number))}}})


def test_callback_prints_one_line_per_point_without_a_bar(tmp_path, capsys):
    cfg = compose_dict(["+experiment=bandwidth_vs_compute", "sweep.progress=false", f"hydra.sweep.dir={tmp_path}"],
                       with_hydra=True)  # its folder: the sweep's id is written there, not under the clone's results/
    callback = SweepCallback()
    callback.on_multirun_start(cfg)
    try:
        done = type("Done", (), {"_return_value": {"ttft_s": 0.0122, "tpot_s": 0.00639,
                                                   "output_tokens_per_s": 155.3}})()
        job = _finished_job(tmp_path, 3, ["hardware.hbm_bandwidth_GBps=2000", "hardware.freq_GHz=1.0", "seed=0"])
        callback.on_job_end(job, done)
        callback.on_job_end(_finished_job(tmp_path, 4, ["hardware.hbm_bandwidth_GBps=1"]),
                            type("Failed", (), {"_return_value": None})())
    finally:
        callback.on_multirun_end(OmegaConf.merge(cfg, {"sweep": {"report": False}}))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("[#3, 4 of 30] hardware.hbm_bandwidth_GBps=2000 hardware.freq_GHz=1.0: "
                        "ttft 12.2 ms, tpot 6.39 ms, 155.3 output tokens/s")
    assert lines[1].startswith("[#4, 5 of 30] hardware.hbm_bandwidth_GBps=1: failed")


def test_figures_of_a_serving_run_are_its_medians():
    line = figures({"ttft_p50_s": 0.05, "tpot_p50_s": 0.002, "output_tokens_per_s": 1242.3})
    assert line == "ttft p50 50 ms, tpot p50 2 ms, 1,242 output tokens/s"


def test_failures_are_read_from_the_points_folders(tmp_path):
    for number, reason in ((10, "b"), (2, "a")):
        (tmp_path / str(number)).mkdir()
        body = {"point": number, "overrides": [f"x={number}", "y=1"], "reason": reason}
        (tmp_path / str(number) / "failed.json").write_text(json.dumps(body))
    assert failures(tmp_path) == [(2, ["x=2", "y=1"], "a"), (10, ["x=10", "y=1"], "b")]
    assert point_name(["x=2", "y=1"], ["x"]) == "x=2" and point_name(["x=2"], []) == "x=2"


# --- search.space from the command line ---------------------------------------------------------

RECIPE = {"hardware.num_cores": {"low": 16, "high": 192, "step": 8}, "hardware.sram_MiB": {"choices": [1, 2, 4]}}


@pytest.mark.parametrize("nested, expected", [
    ({"num_cores": {"low": 8, "high": 64, "step": 8}},
     {**RECIPE, "hardware.num_cores": {"low": 8, "high": 64, "step": 8}}),
    ({"num_cores": {"high": 256}}, {**RECIPE, "hardware.num_cores": {"low": 16, "high": 256, "step": 8}}),
    ({"num_cores": {"choices": [8, 16]}}, {**RECIPE, "hardware.num_cores": {"choices": [8, 16]}}),
    ({"sram_MiB": {"low": 1, "high": 8}}, {**RECIPE, "hardware.sram_MiB": {"low": 1, "high": 8}}),
    ({"sram_MiB": None}, {"hardware.num_cores": RECIPE["hardware.num_cores"]}),
    ({"freq_GHz": {"choices": [1.0, 2.0]}}, {**RECIPE, "hardware.freq_GHz": {"choices": [1.0, 2.0]}}),
])
def test_a_nested_space_entry_changes_or_adds_one_entry(nested, expected):
    space = flat_space({**RECIPE, "hardware": nested})
    assert space == expected and list(space)[:2] == [k for k in expected][:2]  # the recipe's order kept


def test_space_bounds_must_be_numbers_and_derived_is_flattened():
    with pytest.raises(SearchError, match="search.space.hardware.num_cores.high must be a number"):
        flat_space({**RECIPE, "hardware": {"num_cores": {"high": "abc"}}})
    assert flat_derived({"hardware.spare_cores": 0, "hardware": {"spare_cores": 4}}) == {"hardware.spare_cores": 4}


def _search(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "llmsim-search"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "HYDRA_FULL_ERROR": "0"})


@pytest.mark.slow
@pytest.mark.parametrize("form", ["", "+", "++"])
def test_search_space_entry_from_the_command_line(form, tmp_path):
    done = _search("+search=area_compute_vs_sram", "search.trials=2", "search.reference=null", "--out",
                   str(tmp_path / "s"), f"{form}search.space.hardware.num_cores={{low:8,high:16,step:8}}",
                   f"{form}search.space.hardware.sram_MiB=null")
    assert done.returncode == 0, done.stderr
    trials = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert set(trials["hardware.num_cores"]) <= {8, 16} and "hardware.sram_MiB" not in trials


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (("search.space={}",), "search.space is empty"),
    (("+search=area_compute_vs_sram", "search.space={}"), "search.space={} leaves the recipe's space"),
    (("+search=area_compute_vs_sram", "search.space.hardware.num_cores.high=abc"), "must be a number"),
])
def test_bad_search_space_is_one_line(args, message, tmp_path):
    done = _search(*args, "--out", str(tmp_path / "s"))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr



def test_a_slow_chips_rates_keep_their_figures():
    """1 MB/s of HBM gives 0.0049 output tokens/s: printed with one decimal it read 0.0, a result of nothing."""
    from sim.output.console import fmt_count

    assert fmt_count(0.004871, 1) == "0.00487" and fmt_count(0.031, 0) == "0.031"
    assert fmt_count(178.24, 1) == "178.2" and fmt_count(44462.4, 0) == "44,462" and fmt_count(0.0, 1) == "0.0"
