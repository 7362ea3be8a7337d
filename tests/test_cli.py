"""The ``llmsim`` command end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_default_run_prints_and_writes(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for words in ("time to first token", "time per output token", "output tokens/s", "time by bound",
                  "utilisation", "HBM per chip", "llama2_7b on h100_sxm"):
        assert words in text
    summary = json.loads((out / "summary.json").read_text())
    for key in ("ttft_s", "tpot_s", "total_s", "output_tokens_per_s"):
        assert summary[key] > 0
    assert set(summary["time_by_bound_s"]) == {"compute", "memory", "interconnect", "overhead", "idle"}
    assert summary["provenance"]["config_hash"] and summary["provenance"]["seed"] == 0
    ops = pd.read_parquet(out / "ops.parquet")
    assert ops.equals(pd.read_csv(out / "ops.csv")) or len(ops) == len(pd.read_csv(out / "ops.csv"))
    assert set(ops["phase"]) == {"prefill", "decode"}
    assert (ops["total_s"].sum()) == pytest.approx(summary["total_s"], rel=1e-9)
    assert "hardware:" in (out / "config.yaml").read_text()
    assert not list(out.glob(".*.tmp"))  # no half-written files left behind


@pytest.mark.slow
def test_the_issue_example_overrides(tmp_path):
    proc = run_cli(f"hydra.run.dir={tmp_path}", "hardware=a100_80gb", "model=llama2_70b", "parallel.tp=4",
                   "workload.batch=16", "workload.prompt_tokens=2048", "workload.decode_tokens=256",
                   "precision.weights=bf16", "fidelity=des")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["run"]["chips"] == 4 and summary["time_by_bound_s"]["interconnect"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("args, words", [
    (["hardware=h100"], "unknown hardware preset 'h100'"),
    (["model=llama9"], "unknown model preset 'llama9'"),
    (["hardware.hbm_bandwdth_GBps=5"], "did you mean 'hbm_bandwidth_GBps'"),
    (["hardware.hbm_bandwidth_GBps=-5"], "hardware.hbm_bandwidth_GBps must be a finite number > 0"),
    (["hardware.hbm_bandwidth_GBps=fast"], "expected a number"),
    (["parallel.tp=3"], "does not divide"),
    (["model=llama2_70b"], "does not fit: it needs"),
    (["fidelity=exact"], "is not one of: analytic, des"),
    (["model=hf", "model.hf_config_path=/no/such/config.json"], "no file at"),
    (["model=hf"], "model.hf_config_path"),
    (["workload.batch=1,2"], "is a sweep over 2 values; add -m"),
    (["workload.batch=[1,2]"], "a list is not a value of this key"),
    (["+foo=1"], "unknown key 'foo'"),
    (["~hardware"], "removing a key is not supported"),
    (["hardware.matmul_dtype_rate.fp9=1"], "unknown number format 'fp9'"),
    (["hardware.freq_GHz=inf"], "must be a finite number > 0"),
    # found by an independent review: an empty folder wrote into the working directory; the message named cv too
    (["hydra.run.dir="], "hydra.run.dir is empty: give a folder"),
    (["workload.length_cv=-1"], "workload.length_cv must be >= 0 (got -1.0)"),
])
def test_bad_input_is_one_line_and_no_traceback(tmp_path, args, words):
    proc = run_cli(f"hydra.run.dir={tmp_path}", *args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert words in lines[0]


@pytest.mark.slow
def test_malformed_hf_config(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{oops")
    proc = run_cli(f"hydra.run.dir={tmp_path / 'run'}", "model=hf", f"model.hf_config_path={bad}")
    assert proc.returncode == 2 and "is not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_multirun_sweeps_and_records_failed_points(tmp_path):
    proc = run_cli("-m", f"hydra.sweep.dir={tmp_path}", "hardware=teaching_npu",
                   "hardware.hbm_bandwidth_GBps=500,2000", "parallel.tp=1,3", "workload.decode_tokens=4")
    assert proc.returncode == 0, proc.stderr
    done = sorted(p.parent.name for p in tmp_path.glob("*/summary.json"))
    failed = sorted(p.parent.name for p in tmp_path.glob("*/failed.json"))
    assert len(done) == 2 and len(failed) == 2
    reason = json.loads((tmp_path / failed[0] / "failed.json").read_text())["reason"]
    assert "parallel.tp=3" in reason
    fast, slow = (json.loads((tmp_path / n / "summary.json").read_text()) for n in done)
    totals = sorted([fast["total_s"], slow["total_s"]])
    assert totals[0] < totals[1]


@pytest.mark.parametrize("blocked", ["steps.csv", "serving.png"])
def test_a_file_that_cannot_be_written_is_one_line(tmp_path, blocked):
    """A folder where a table (written here) or the chart (written by the forked drawing process) should go: one
    line naming the folder and the file, exit 2, no summary.json (its presence would mean the run's files are done)."""
    (tmp_path / blocked / "inside").mkdir(parents=True)
    proc = run_cli(f"hydra.run.dir={tmp_path}", "workload=serving", "workload.num_requests=20")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not be written" in lines[0] and blocked in lines[0], proc.stderr
    assert not (tmp_path / "summary.json").exists()


def test_a_result_file_that_cannot_be_written_names_itself(tmp_path):
    """atomic_write: a folder where the file goes is an OutputWriteError naming the file (every command prints it as
    one line, exit 2), and nothing is left behind: no temporary file, the folder as it was."""
    from sim.output.files import OutputWriteError, atomic_write

    (tmp_path / "grid.json" / "inside").mkdir(parents=True)
    with pytest.raises(OutputWriteError, match="grid.json could not be written: Is a directory"):
        atomic_write(tmp_path / "grid.json", lambda p: p.write_text("{}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.json"]


def test_other_commands_say_so_in_one_line(tmp_path):
    """llmsim-grid (as each command wrapped by ``one_line_errors``): a file it cannot write is one line, exit 2."""
    (tmp_path / "grid.json" / "inside").mkdir(parents=True)
    exe = Path(sys.executable).parent / "llmsim-grid"
    proc = subprocess.run([str(exe), "hardware.hbm_bandwidth_GBps=1000,2000", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip() == f"llmsim-grid: error: {tmp_path}/grid.json could not be " \
        "written: Is a directory", proc.stderr


def test_a_refused_run_leaves_no_folder_behind(tmp_path):
    """A config the simulator refuses: its one line, exit 2, and the run folder Hydra made (with only its records
    in it) is gone; a folder that held something of the user's keeps it."""
    proc = run_cli("parallel.tp=3", cwd=tmp_path)  # the default folder, results/runs/<time> under the cwd
    assert proc.returncode == 2 and proc.stderr.startswith("llmsim: error: parallel.tp=3"), proc.stderr
    assert not list((tmp_path / "results" / "runs").iterdir())
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert run_cli(f"hydra.run.dir={mine}", "parallel.tp=3").returncode == 2
    assert (mine / "notes.txt").read_text() == "keep"


def test_a_sweep_point_whose_files_cannot_be_written_fails_alone(tmp_path):
    """In a multirun the point records its reason (failed.json, listed at the end) and the sweep goes on."""
    (tmp_path / "0" / "steps.csv" / "inside").mkdir(parents=True)
    proc = run_cli("-m", f"hydra.sweep.dir={tmp_path}", "workload=serving", "workload.num_requests=20",
                   "workload.rate_per_s=5,10")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    failed = json.loads((tmp_path / "0" / "failed.json").read_text())
    assert failed["reason"] == f"{tmp_path}/0/steps.csv could not be written: Is a directory"
    assert "1 of 2 points failed" in proc.stdout + proc.stderr and (tmp_path / "1" / "summary.json").exists()


def test_a_closed_output_pipe_ends_quietly():
    """``llmsim-grid ... | head``: the reader went away; no error line, no traceback, exit 1 (a subprocess: standard
    output is pointed at /dev/null on the way out)."""
    code = ("from sim.cli.common import one_line_errors\n"
            "def main():\n    raise BrokenPipeError(32, 'Broken pipe')\n"
            "one_line_errors('llmsim-grid')(main)()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr


@pytest.mark.parametrize("module, args", [
    ("capacity", ["slo.ttft_p99_s=2"]), ("sensitivity", []), ("grid", []), ("search", ["+search=area_compute_vs_sram"]),
])
def test_an_override_without_a_value_is_hydras_one_line_from_every_command(module, args, capsys):
    """Each command passes Hydra's parse error through ``hydra_error_line``: capacity and sensitivity printed its
    three lines (review)."""
    import importlib
    main = importlib.import_module(f"sim.cli.{module}").main
    with pytest.raises(SystemExit) as exit_:
        main([*args, "workload.batch"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert "missing EQUAL" in err and "key=value" in err, err


@pytest.mark.parametrize("module", ["llmsim", "grid", "report", "sensitivity", "search", "capacity", "chips",
                                    "calibrate", "validate", "explore"])
def test_python_dash_m_runs_each_command(module):
    """``python -m sim.cli.<command>`` is the command, not a silent no-op (review: it printed nothing, exit 0)."""
    proc = subprocess.run([sys.executable, "-m", f"sim.cli.{module}", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "llmsim" in proc.stdout and len(proc.stdout.splitlines()) > 3, proc


def test_a_setting_the_run_does_not_read_is_noted_in_one_line(tmp_path):
    proc = run_cli(f"hydra.run.dir={tmp_path}", "fidelity=analytic", "workload.decode_tokens=4",
                   "workload.shared_prefix_tokens=400")
    assert proc.returncode == 0 and proc.stderr.strip() == \
        "llmsim: note: this run does not read workload.shared_prefix_tokens=400 (workload=serving only)", proc.stderr


@pytest.mark.parametrize("command", ["grid", "sensitivity", "report", "calibrate", "capacity"])
def test_an_empty_out_folder_is_refused_not_the_working_folder(command, capsys):
    """--out "" became Path('.'): grid, sensitivity and report wrote into the working folder (review)."""
    import importlib

    main = importlib.import_module(f"sim.cli.{command}").main
    with pytest.raises(SystemExit) as exit_:
        main(["--out", "", *(["somewhere"] if command == "report" else [])])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "--out: needs a folder, not an empty string" in err[0]


@pytest.mark.parametrize("command, args", [
    ("sim.cli.grid", ["model.num_layers=2", "fidelity=analytic", "workload.decode_tokens=2",
                      "hardware.freq_GHz=1.0,1.5", "--no-report"]),
    ("sim.cli.sensitivity", ["model.num_layers=2", "fidelity=analytic", "workload.decode_tokens=2"]),
    ("sim.cli.capacity", ["--offline", "--requests", "5", "model.num_layers=2"]),
    ("sim.cli.search", ["+search=decode_chip_llama2_70b", "search.trials=1"]),
])
def test_a_hydra_setting_another_command_does_not_use_is_said(command, args, tmp_path, capsys):
    """hydra.run.dir given to a command that is not a Hydra app was dropped unsaid, its files written elsewhere;
    hydra/launcher=joblib too, and +hydra.run.dir was refused after the note (review, second opinion): one note
    each on stderr, the run goes on, and the command's output folder (--out) is where its files go."""
    import importlib
    name = f"llmsim-{command.split('.')[-1]}"
    writes = "capacity" not in command  # --offline writes nothing: its notes do not point to --out
    out = ["--out", str(tmp_path / "out")] if writes else []
    importlib.import_module(command).main([*args, "+hydra.run.dir=" + str(tmp_path / "asked"), "hydra/launcher=joblib",
                                           *out])
    err = capsys.readouterr().err
    hint = f"; {name} takes --out for its output folder" if writes else ""
    assert f"{name}: note: hydra.run.dir is not used: only llmsim runs as a Hydra app{hint}\n" in err, err
    assert f"{name}: note: hydra/launcher is not used: only llmsim runs as a Hydra app\n" in err, err
    assert "error" not in err and not (tmp_path / "asked").exists() and (not writes or (tmp_path / "out").is_dir())
    with pytest.raises(SystemExit) as exit_:  # a setting without its value is bad input, as any other
        importlib.import_module(command).main([*args, "hydra.run.dir", *out])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1].startswith(f"{name}: error: ") and "key=value" in err[-1], err
