"""Robustness (issue 14): readable files, no stray temporary files, physical ranges up front, one line
for Ctrl-C and for Hydra's own errors, and the small misleading cases, each reproduced."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hwmodels.chip import HardwareError
from sim.config.errors import RunError
from sim.config.overrides import InputError, check_override, hydra_error_line
from sim.config.paths import CONF_DIR
from sim.config.schema import register_configs
from sim.output.files import atomic_write, remove_stale_temps
from sim.studies.sweep import ReportError
from sim.studies.sweep.callbacks import check_sweep, interrupted_line
from sim.studies.sweep.points import finished_dir, mark_finished, start_point
from tests.conftest import REPO, make_config, run_cli

BIN = Path(sys.executable).parent
TRACEBACK = "Traceback"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# Files readable by others -------------------------------------------------------------------------
def test_atomic_write_applies_the_umask(tmp_path, umask_022):
    atomic_write(tmp_path / "a.json", lambda p: p.write_text("{}"))
    assert mode(tmp_path / "a.json") == 0o644
    os.umask(0o077)
    atomic_write(tmp_path / "b.json", lambda p: p.write_text("{}"))
    assert mode(tmp_path / "b.json") == 0o600
    assert not list(tmp_path.glob(".*.tmp"))


# Interrupted writes: no temp files, the marker last ------------------------------------------------
def test_stale_temp_files_are_removed_and_nothing_else(tmp_path):
    (tmp_path / ".ops.csv.k2j4_x9a.tmp").write_text("")  # what a SIGKILL mid-write leaves
    (tmp_path / ".summary.json.abcdefgh.tmp").write_text("{")
    (tmp_path / "ops.csv").write_text("x\n")
    (tmp_path / ".hydra").mkdir()
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == [".ops.csv.k2j4_x9a.tmp", ".summary.json.abcdefgh.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hydra", "ops.csv"]
    assert remove_stale_temps(tmp_path / "none") == []


def test_a_point_folder_without_summary_is_unfinished(tmp_path):
    """config.yaml and ops.parquet but no summary.json (killed mid-write): not reused, redone."""
    sweeps = tmp_path / "sweeps"
    old, new = sweeps / "a" / "0", sweeps / "b" / "0"
    old.mkdir(parents=True)
    (old / "config.yaml").write_text("x: 1\n")
    (old / "ops.parquet").write_bytes(b"")
    mark_finished("k" * 16, sweeps / "a", old)  # even with a marker, no summary means not finished
    assert finished_dir("k" * 16, sweeps / "b", new) is None
    (old / "summary.json").write_text("{}")
    assert finished_dir("k" * 16, sweeps / "b", new) == old.resolve()


def test_start_point_clears_an_earlier_outcome_and_temp_files(tmp_path):
    for name in ("summary.json", "failed.json", "reused.json", ".ops.csv.abc12345.tmp", "ops.csv"):
        (tmp_path / name).write_text("x")
    start_point(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ops.csv"]


def test_batch_files_end_with_summary_then_the_marker(tmp_path, monkeypatch):
    from sim.batch.run import simulate
    from sim.config.compose import to_run_config, with_calibration
    from sim.studies.batch_job import report_batch

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        dcfg = compose("config", overrides=["hardware=teaching_npu", "model=llama2_7b", "workload.prompt_tokens=16",
                                            "workload.decode_tokens=2", "output.trace=true",
                                            "output.print_summary=false"])
    dcfg = with_calibration(dcfg)
    result = simulate(to_run_config(dcfg))
    order: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (order.append(Path(dst).name), real_replace(src, dst)))
    report_batch(result, dcfg, tmp_path, lambda: order.append("<marker>"))
    assert order[-2:] == ["summary.json", "<marker>"]
    assert {"trace.json", "config.yaml", "ops.parquet", "ops.csv"} <= set(order[:-2])


# Physical ranges, checked up front, the range in the message ----------------------------------------
@pytest.mark.parametrize("override, words", [
    ("hardware.freq_GHz=1e30", "hardware.freq_GHz=1e+30 is out of range: at most 10 (no logic clocks above 10 GHz"),
    ("hardware.num_cores=2000000", "hardware.num_cores=2,000,000 is out of range: at most 1,000,000"),
    ("hardware.hbm_bandwidth_GBps=1e9", "hardware.hbm_bandwidth_GBps=1,000,000,000 is out of range: at most"),
    ("hardware.link_bandwidth_GBps=1e7", "hardware.link_bandwidth_GBps=10,000,000 is out of range"),
    ("hardware.hbm_capacity_GB=1e9", "hardware.hbm_capacity_GB=1,000,000,000 is out of range"),
    ("hardware.sram_MiB=1e12", "hardware.sram_MiB=1,000,000,000,000 is out of range"),
    ("hardware.matmul_dtype_rate.bf16=1000", "hardware.matmul_dtype_rate.bf16=1,000 is out of range: at most 64"),
    # the lower ends: a run on a 1e-30 GHz chip printed 0 tokens/s and a TTFT of 1.6e28 s as a result
    ("hardware.freq_GHz=1e-30", "hardware.freq_GHz=1e-30 is out of range: at least 0.001 (1 MHz"),
    ("hardware.hbm_bandwidth_GBps=1e-9", "hardware.hbm_bandwidth_GBps=1e-09 is out of range: at least 0.001"),
    ("hardware.hbm_capacity_GB=1e-12", "hardware.hbm_capacity_GB=1e-12 is out of range: at least 0.001"),
    ("hardware.link_bandwidth_GBps=1e-20", "hardware.link_bandwidth_GBps=1e-20 is out of range: at least"),
    ("hardware.sram_MiB=1e-9", "hardware.sram_MiB=1e-09 is out of range: at least 0.001"),
    ("hardware.matmul_dtype_rate.bf16=1e-6", "hardware.matmul_dtype_rate.bf16=1e-06 is out of range: at least"),
])
@pytest.mark.slow
def test_hardware_out_of_range(override, words):
    with pytest.raises(HardwareError, match=re.escape(words)):
        make_config(override)


@pytest.mark.parametrize("overrides, words", [
    (["workload=serving", "workload.rate_per_s=1e30"], "workload.rate_per_s=1e+30 is out of range: at most 1,000,000"),
    (["workload.batch=10000000"], "workload.batch=10,000,000 is out of range: at most 1,000,000"),
    (["workload.prompt_tokens=100000000"], "workload.prompt_tokens=100,000,000 is out of range"),
    (["scheduler.max_batch=10000000"], "scheduler.max_batch=10,000,000 is out of range"),
    (["parallel.dp=10000000"], "parallel.dp=10,000,000 is out of range"),
    (["runtime.host_dispatch_us=1e9"], "runtime.host_dispatch_us=1,000,000,000 is out of range"),
    (["cost.usd_per_kWh=1e9"], "cost.usd_per_kWh=1,000,000,000 is out of range: at most 1,000"),
    (["speculative.k=5000"], "speculative.k=5,000 is out of range: at most 1,024"),
])
@pytest.mark.slow
def test_run_values_out_of_range(overrides, words):
    with pytest.raises(RunError, match=re.escape(words)):
        make_config(*overrides)


@pytest.mark.slow
def test_the_presets_are_in_range():
    from sim.config.paths import presets

    for chip in presets("hardware"):
        make_config(f"hardware={chip}")


def test_a_whole_number_in_exponent_form_is_one_line():
    with pytest.raises(InputError, match=r"hardware.num_cores=1e30: expected a whole number written out in digits"):
        check_override("hardware.num_cores=1e30")
    with pytest.raises(InputError, match="write 1000"):
        check_override("workload.batch=1e3")
    check_override("workload.batch=1000")


def test_pp_on_a_small_batch_names_pp_not_microbatches():
    from sim.batch.run import simulate

    with pytest.raises(RunError) as err:
        simulate(make_config("parallel.pp=2", "fidelity=des"))
    assert "parallel.pp=2 splits the batch into one micro-batch per stage" in str(err.value)
    assert "parallel.microbatches=" not in str(err.value)


# Hydra's own errors as one line -------------------------------------------------------------------
@pytest.mark.parametrize("overrides, words", [
    (["foo"], "Error parsing override 'foo'; missing EQUAL at '<EOF>' (an override is key=value)"),
    (["hydra/launcher=nope"], "In 'hydra/config': Could not find 'hydra/launcher/nope'; available: basic, joblib"),
    (["hardware.num_cores=1e30"], "Error merging override hardware.num_cores=1e30; Value '1e+30' of type 'float' "
                                  "could not be converted to Integer"),
])
def test_hydra_errors_reduce_to_one_line(overrides, words):
    register_configs()
    with pytest.raises(Exception) as err, initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        compose("config", overrides=overrides, return_hydra_config=True)
    line = hydra_error_line(err.value)
    assert line == words and "\n" not in line


# A sweep that would do nothing useful stops before its first point -----------------------------------
def _sweep_config(task: list[str], **sweep) -> OmegaConf:
    return OmegaConf.create({"hydra": {"sweeper": {"params": {}}, "overrides": {"task": task}},
                             "sweep": {"report": True, "metric": "output_tokens_per_s", "pareto": [], **sweep}})


def test_check_sweep():
    assert check_sweep(_sweep_config(["hardware.freq_GHz=1.5,1.6"])) is None
    assert "no points" in check_sweep(_sweep_config(["hardware.freq_GHz=range(5,1)"]))
    assert "'tokens_per_sec' is not a metric" in check_sweep(_sweep_config(["a=1,2"], metric="tokens_per_sec"))
    assert "'nope' is not a metric" in check_sweep(_sweep_config(["a=1,2"], pareto=["ttft_s", "nope"]))
    assert check_sweep(_sweep_config(["a=1,2"], metric="nope", report=False)) is None
    # a pareto of one or three metrics failed only after every point had run, and the sweep exited 0 (review)
    for pareto in (["ttft_s"], ["ttft_s", "tpot_s", "total_s"]):
        assert f"sweep.pareto takes two metrics (x and y), got {len(pareto)}" in \
            check_sweep(_sweep_config(["a=1,2"], pareto=pareto))
    # the report's axes too: an unknown sweep.x failed only after every point had run (independent review)
    assert "sweep.x=nosuch is not a parameter of this sweep" in check_sweep(_sweep_config(["a=1,2"], x="nosuch"))
    assert check_sweep(_sweep_config(["a=1,2", "b=3"], x="b", y="a")) is None
    assert "axes are both a" in check_sweep(_sweep_config(["a=1,2", "b=3"], x="a", y="a"))  # a clock x clock map
    recipe = _sweep_config(["+experiment=bandwidth_vs_compute"], x="hardware.freq_GHz")  # axes from a recipe
    recipe.hydra.sweeper.params = {"hardware.freq_GHz": "1.0,2.0"}
    assert check_sweep(recipe) is None


def test_the_sweep_metric_default_and_summary_keys_are_in_the_catalog():
    from sim.metrics import catalog

    for name in ("output_tokens_per_s", "ttft_s", "tpot_p99_s", "utilisation.hbm_bandwidth", "energy_J"):
        catalog.metric(name)


def test_interrupted_line_counts_finished_points(tmp_path):
    OmegaConf.save(_sweep_config(["hardware.freq_GHz=1.1,1.2,1.3"]), tmp_path / "multirun.yaml")
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "summary.json").write_text("{}")
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "config.yaml").write_text("")
    assert interrupted_line(tmp_path) == "interrupted: 1 of 3 points finished; re-run to resume"
    (tmp_path / "multirun.yaml").unlink()
    assert interrupted_line(tmp_path) == "interrupted: 1 points finished; re-run to resume"


def test_empty_grid_axis_is_one_line():
    from sim.studies.sweep.grid import axis_values

    with pytest.raises(ReportError, match=r"range\(2000,1000,500\) sweeps no values"):
        axis_values("hardware.hbm_bandwidth_GBps", "range(2000,1000,500)")


def test_validate_on_a_header_only_csv(tmp_path, capsys):
    from sim.cli.validate import main

    path = tmp_path / "rows.csv"
    path.write_text("id,hardware,kind,measured_ms\n")
    with pytest.raises(SystemExit) as exit_:
        main([str(path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == f"llmsim-validate: error: '{path}' has a header but no rows to validate"


@pytest.mark.parametrize("argv, words", [
    (["--out", ""], "argument --out: needs a file, not an empty string"),  # argparse alone would say '.'
    ([""], "argument csv: needs a file, not an empty string"),
])
def test_validate_empty_paths_are_named_as_typed(argv, words, capsys):
    from sim.cli.validate import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and words in err, err


def test_report_of_an_empty_folder_argument_is_named_as_typed(capsys):
    """llmsim-report '' said ". holds no sweep points", a folder the user never typed (second-opinion review)."""
    from sim.cli.report import main

    with pytest.raises(SystemExit) as exit_:
        main([""])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.splitlines() == [
        "llmsim-report: error: argument dir: needs a folder, not an empty string (see llmsim-report --help)"]


def test_validate_counts_one_noted_row_in_the_singular(tmp_path, capsys):
    from sim.cli.validate import main

    path = tmp_path / "rows.csv"
    path.write_text("id,hardware,kind,dtype,devices,model,batch,seq_len,measured_ms\n"
                    "p1,a100_80gb,prefill,fp16,1,llama2_7b,1,100000,9000\n")
    main([str(path)])
    out = capsys.readouterr().out
    assert "notes (1 row):" in out, out


# The commands, in subprocesses ------------------------------------------------------------------
def _one_line_exit(proc: subprocess.CompletedProcess, code: int, prefix: str) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert TRACEBACK not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix), proc.stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("args, words", [
    (["hardware.freq_GHz=1e30"], "is out of range: at most 10"),
    (["hardware.num_cores=1e30"], "expected a whole number written out in digits"),
    (["hardware.num_cores=1000000000000000000000000000000"], "is out of range: at most 1,000,000"),
    (["workload=serving", "workload.rate_per_s=1e30"], "is out of range: at most 1,000,000"),
    (["foo"], "Error parsing override 'foo'"),
    (["hydra/launcher=nope"], "available: basic, joblib"),
    (["+search=decode_chip_llama2_70b"], "run it with llmsim-search +search=decode_chip_llama2_70b"),
    (["parallel.pp=2", "fidelity=des"], "parallel.pp=2 splits the batch"),
])
def test_llmsim_bad_input_is_one_line(tmp_path, args, words):
    proc = run_cli(f"hydra.run.dir={tmp_path / 'run'}", *args)
    assert words in _one_line_exit(proc, 2, "llmsim: error: ")


@pytest.mark.slow
@pytest.mark.parametrize("args, words", [
    (["hardware.freq_GHz=range(5,1)"], "the sweep has no points"),
    (["hardware.freq_GHz=1.5,1.6", "sweep.metric=tokens_per_sec"], "'tokens_per_sec' is not a metric"),
    (["hydra/launcher=nope", "hardware.freq_GHz=1.5,1.6"], "available: basic, joblib"),
])
def test_llmsim_multirun_that_would_do_nothing_stops_first(tmp_path, args, words):
    proc = run_cli("-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", *args)
    assert words in _one_line_exit(proc, 2, "llmsim: error: ")
    assert not [p for p in (tmp_path / "sweep").glob("*") if p.is_dir()]  # no point ran


@pytest.mark.slow
def test_grid_and_validate_one_line(tmp_path):
    proc = subprocess.run([str(BIN / "llmsim-grid"), "hardware.hbm_bandwidth_GBps=range(2000,1000,500)", "--out",
                           str(tmp_path / "g")], capture_output=True, text=True, timeout=300)
    assert "sweeps no values" in _one_line_exit(proc, 2, "llmsim-grid: error: ")
    proc = subprocess.run([str(BIN / "llmsim-grid"), "foo", "--out", str(tmp_path / "g")], capture_output=True,
                          text=True, timeout=300)
    assert "(an override is key=value)" in _one_line_exit(proc, 2, "llmsim-grid: error: ")
    (tmp_path / "h.csv").write_text("id,hardware,kind,measured_ms\n")
    proc = subprocess.run([str(BIN / "llmsim-validate"), str(tmp_path / "h.csv")], capture_output=True, text=True,
                          timeout=300)
    assert "no rows" in _one_line_exit(proc, 2, "llmsim-validate: error: ")


def _interrupt_when(proc: subprocess.Popen, ready, timeout_s: float = 120) -> tuple[str, str]:
    """Send SIGINT to ``proc`` once ``ready()`` holds; its (stdout, stderr)."""
    end = time.monotonic() + timeout_s
    while not ready() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=120)


def _popen(*args: str) -> subprocess.Popen:
    """The command as a user's shell would start it: Ctrl-C (SIGINT) delivered, even when this test
    itself runs where SIGINT is ignored (a background job), which the child would inherit."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen([*args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_in_a_multirun_is_one_line_with_the_count(tmp_path):
    sweep = tmp_path / "sweep"
    values = ",".join(f"{1 + i / 10:.1f}" for i in range(12))
    proc = _popen(str(BIN / "llmsim"), "-m", f"hardware.freq_GHz={values}", f"hydra.sweep.dir={sweep}")
    _, err = _interrupt_when(proc, lambda: (sweep / "0" / "summary.json").exists())
    assert proc.returncode == 130, err
    line = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert re.fullmatch(r"llmsim: interrupted: \d+ of 12 points finished; re-run to resume", line), err
    assert TRACEBACK not in err
    assert not list(sweep.rglob(".*.tmp"))


@pytest.mark.slow
def test_ctrl_c_in_a_single_run_and_in_grid(tmp_path):
    out = tmp_path / "run"
    proc = _popen(str(BIN / "llmsim"), f"hydra.run.dir={out}", "fidelity=des", "model=llama2_70b", "parallel.tp=8",
                  "workload.batch=16", "workload.decode_tokens=256")
    _, err = _interrupt_when(proc, lambda: (out / ".hydra").exists())
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "llmsim: interrupted", err
    assert TRACEBACK not in err
    grid = tmp_path / "grid"
    proc = _popen(str(BIN / "llmsim-grid"), "hardware.hbm_bandwidth_GBps=geomspace(100,8000,4000)", "--out", str(grid))
    _, err = _interrupt_when(proc, lambda: grid.exists())
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "llmsim-grid: interrupted", err
    assert TRACEBACK not in err


@pytest.mark.slow
def test_result_files_are_readable_by_others(tmp_path):
    """Under umask 022 every result file is 0644: a sweep's points, markers, table, charts; search CSVs."""
    sweep = tmp_path / "sweeps" / "s"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    pre = "umask 022 && exec "
    cmd = f"{pre}{BIN / 'llmsim'} -m hardware.freq_GHz=1.5,1.6 output.trace=true hydra.sweep.dir={sweep}"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    search = tmp_path / "search"
    cmd = f"{pre}{BIN / 'llmsim-search'} +search=area_compute_vs_sram search.trials=2 --out {search}"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    files = [p for p in (*tmp_path.rglob("*"), *tmp_path.rglob(".finished/*")) if p.is_file()]
    names = {p.name for p in files}
    for name in ("summary.json", "ops.parquet", "ops.csv", "trace.json", "config.yaml", "points.csv",
                 "trials.csv", "pareto.csv"):
        assert name in names
    assert any(p.suffix == ".png" for p in files) and any(p.parent.name == ".finished" for p in files)
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in files if mode(p) != 0o644} == {}
    assert not [p for p in files if p.name.endswith(".tmp")]
    assert json.loads((sweep / "0" / "summary.json").read_text())["output_tokens_per_s"] > 0


def test_a_nan_expert_imbalance_and_a_negative_seed_are_refused_in_words():
    """parallel.moe_imbalance=nan passed its >= 1 check and failed deep in the MoE graph; seed=-1 reached numpy's
    generator in a serving run (review): both tracebacks."""
    from sim.config.checks import check_run

    with pytest.raises(RunError, match=re.escape("parallel.moe_imbalance must be >= 1 (got nan)")):
        make_config("parallel.moe_imbalance=nan")
    for seed in (-1, 2**32):
        with pytest.raises(RunError, match=re.escape(f"seed must be a whole number from 0 to 2^32 - 1 (got {seed})")):
            check_run(make_config(f"seed={seed}"))


@pytest.mark.parametrize("name", ["../../zz", "", "a/b", ".."])
def test_a_name_that_is_not_one_folder_is_refused(name):
    """name=../../zz wrote the sweep outside results/sweeps; name= wrote it with no name level (review)."""
    from sim.config.compose import compose_dict, to_app_config

    with pytest.raises(RunError, match="must be one folder name"):
        to_app_config(compose_dict([f"name={name}"]))
    assert "must be one folder name" in check_sweep(OmegaConf.create({"name": name, "hydra": {
        "sweeper": {"params": {}}, "overrides": {"task": ["workload.batch=1,2"]}}}))
