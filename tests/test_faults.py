"""Faults (issue 14): a 20-point sweep killed with SIGINT and with SIGKILL at random moments, then resumed
by running the same command into the same ``hydra.sweep.dir``, ends complete and, apart from the volatile
fields and files listed once in sim/output/files.py, byte-identical to a sweep that ran straight through."""

from __future__ import annotations

import fnmatch
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.output.files import TEMP_SUFFIX, VOLATILE_FIELDS, VOLATILE_FILES
from sim.studies.sweep.points import MARKERS, finished_here, mark_finished
from tests.conftest import REPO

LLMSIM = Path(sys.executable).parent / "llmsim"
# 4 x 5 = 20 fast points: the teaching chip, analytic, short lengths.
SWEEP = ("-m", "hardware=teaching_npu", "fidelity=analytic", "model.num_layers=2", "workload.prompt_tokens=16",
         "workload.decode_tokens=4", "output.print_summary=false", "hardware.freq_GHz=1.0,1.5,2.0,2.5",
         "hardware.hbm_bandwidth_GBps=500,1000,1500,2000,2500")
POINTS = 20
TABLES = ("points.csv", "points.parquet")


def _start(sweep: Path, log: Path) -> subprocess.Popen:
    """The sweep in its own process group (signals go to the group), output to files (no pipe to fill)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    with open(log, "a") as out:
        return subprocess.Popen([str(LLMSIM), *SWEEP, f"hydra.sweep.dir={sweep}"], stdout=out, stderr=out,
                                cwd=REPO, env=env, start_new_session=True, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    """SIGINT at its default in the child, as a shell would start it, even when this suite runs
    where SIGINT is ignored (a background job), which the child would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run(sweep: Path, log: Path) -> float:
    """Run the sweep to its end; its wall time (s)."""
    started = time.monotonic()
    proc = _start(sweep, log)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    return time.monotonic() - started


def _kill(sweep: Path, log: Path, sig: signal.Signals, delay_s: float) -> int:
    """Start the sweep, send ``sig`` to its process group ``delay_s`` later (for SIGINT counted from Hydra
    creating the sweep folder), and return its exit code."""
    after_start = sig is signal.SIGINT
    proc = _start(sweep, log)
    if after_start:  # Ctrl-C while Python is still importing is Python's own traceback, before llmsim runs
        while not (sweep / "multirun.yaml").exists() and proc.poll() is None:
            time.sleep(0.02)
    try:
        proc.wait(timeout=delay_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, sig)
    return proc.wait(timeout=60)


def _volatile(rel: str) -> bool:
    """``rel`` (under a sweep folder) is one of VOLATILE_FILES, in the sweep's folder or in a point's."""
    return any(fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(rel, f"*/{pattern}") for pattern in VOLATILE_FILES)


def _files(sweep: Path) -> dict[str, Path]:
    """The files under ``sweep`` but the volatile ones, by path relative to it."""
    every = {str(p.relative_to(sweep)): p for p in sweep.rglob("*") if p.is_file()}
    return {rel: path for rel, path in every.items() if not _volatile(rel)}


def _without(tree: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        tree = tree.get(part, {}) if isinstance(tree, dict) else {}
    if isinstance(tree, dict):
        tree.pop(last, None)


def _summary(path: Path) -> dict:
    body = json.loads(path.read_text())
    for field in VOLATILE_FIELDS:
        _without(body, field)
    return body


def _table(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    return frame.drop(columns=[c for c in VOLATILE_FIELDS if c in frame.columns])


def _assert_same_as(reference: Path, sweep: Path) -> None:
    """Every point complete, no stray file, every result file the same as the reference's but for the volatile."""
    points = [p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()]
    assert sorted(int(p.name) for p in points) == list(range(POINTS))
    assert all((p / "summary.json").exists() for p in points)
    assert not [p for p in sweep.parent.rglob(f"*{TEMP_SUFFIX}")], "temporary files left behind"
    assert not [p for p in points if (p / "failed.json").exists() or (p / "reused.json").exists()]
    markers = [json.loads(m.read_text()) for m in (sweep.parent / MARKERS).glob("*.json")]
    assert sorted(Path(m["dir"]).name for m in markers) == sorted(p.name for p in points)
    want, got = _files(reference), _files(sweep)
    assert sorted(got) == sorted(want)
    for rel, path in want.items():
        if path.name == "summary.json":
            assert _summary(got[rel]) == _summary(path), rel
        elif path.name in TABLES:
            pd.testing.assert_frame_equal(_table(got[rel]), _table(path))
        else:
            assert got[rel].read_bytes() == path.read_bytes(), rel


@pytest.mark.slow
def test_a_sweep_killed_at_random_moments_resumes_to_the_same_files(tmp_path):
    """SIGINT twice (a Ctrl-C may land in the report at the end), then resume; SIGKILL twice, in the points,
    then resume. Each ends as the sweep that ran straight through."""
    rng = random.Random(14)
    reference = tmp_path / "straight" / "sweep"  # its own parent: its markers are not the others' to reuse
    wall_s = _run(reference, tmp_path / "straight.log")
    for sig, latest_s in ((signal.SIGINT, wall_s), (signal.SIGKILL, wall_s / 2)):
        sweep, log = tmp_path / sig.name / "sweep", tmp_path / f"{sig.name}.log"
        for _ in range(2):
            code = _kill(sweep, log, sig, rng.uniform(0.2, latest_s))
            # -SIGINT: the Ctrl-C landed as the interpreter was starting or exiting, outside any Python
            # handler (seen once in CI, after the report was written); no traceback, and the resume
            # below must still give the same files
            ok = (0, 130, -signal.SIGINT) if sig is signal.SIGINT else (0, -signal.SIGKILL)
            assert code in ok, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
        _run(sweep, log)  # the same command into the same folder: resumes
        _assert_same_as(reference, sweep)


def test_a_point_is_kept_in_its_own_folder_only_if_it_is_still_that_point(tmp_path):
    """finished_here: the marker names the folder, summary.json is there, config.yaml is the one to write."""
    sweep = tmp_path / "sweeps" / "s"
    point = sweep / "0"
    point.mkdir(parents=True)
    (point / "config.yaml").write_text("a: 1\n")
    (point / "summary.json").write_text("{}")
    assert not finished_here("k" * 16, sweep, point, "a: 1\n")  # no marker: killed before it
    mark_finished("k" * 16, sweep, point)
    assert finished_here("k" * 16, sweep, point, "a: 1\n")
    assert not finished_here("k" * 16, sweep, point, "a: 2\n")  # the folder since holds another point
    assert not finished_here("k" * 16, tmp_path / "elsewhere" / "s", point, "a: 1\n")
    (point / "summary.json").unlink()
    assert not finished_here("k" * 16, sweep, point, "a: 1\n")


def test_a_marker_write_killed_before_is_cleared_when_the_point_finishes_again(tmp_path):
    sweep = tmp_path / "sweeps" / "s"
    stale = sweep.parent / MARKERS / f".{'k' * 16}.json.x1y2z3{TEMP_SUFFIX}"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    mark_finished("k" * 16, sweep, sweep / "0")
    assert sorted(p.name for p in stale.parent.iterdir()) == [f"{'k' * 16}.json"]


def test_an_error_raised_while_a_ctrl_c_unwinds_is_an_interrupt(capsys):
    """Ctrl-C inside OmegaConf whose clean-up then fails ('NoneType' object has no attribute ...): exit 130."""
    from omegaconf.errors import ValidationError

    from sim.cli.common import interrupted_by, one_line_errors

    def clean_up_fails():
        try:
            raise KeyboardInterrupt("interrupted: 3 of 20 points finished; re-run to resume")
        finally:
            try:
                None._invalidate_flags_cache()
            except AttributeError as err:
                raise ValidationError("'NoneType' object has no attribute '_invalidate_flags_cache'") from err

    with pytest.raises(SystemExit) as ended:
        one_line_errors("llmsim")(clean_up_fails)()
    assert ended.value.code == 130
    assert capsys.readouterr().err == "llmsim: interrupted: 3 of 20 points finished; re-run to resume\n"
    assert interrupted_by(ValidationError("plain")) is None


@pytest.mark.slow
def test_sigterm_ends_a_command_in_one_line_and_leaves_no_temporary_file(tmp_path):
    """``kill``, ``timeout`` or a job scheduler's stop (SIGTERM) ended every command without a word, and a write in
    flight left its temporary file (independent review): now the line, its clean-up, exit 143 (128 + SIGTERM); a
    sweep stops as at Ctrl-C, with its count and exit 130."""
    exe = Path(sys.executable).parent
    # 128 discrete-event points: a sweep still running after 6 s on any machine (7 points finished first on a fast one)
    runs = {"search": ([str(exe / "llmsim-search"), "+search=decode_chip_llama2_70b_batch", "search.trials=2000",
                        f"search.out={tmp_path / 's'}"], 143, "llmsim-search: terminated; re-run to resume\n"),
            "sweep": ([str(exe / "llmsim"), "-m", "workload.batch=range(1,129)", "fidelity=des",
                       f"hydra.sweep.dir={tmp_path / 'w'}"], 130, "points finished; re-run to resume\n")}
    for name, (cmd, code, line) in runs.items():
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                preexec_fn=_default_sigint)
        time.sleep(6)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
        assert proc.returncode == code and err.endswith(line) and err.count("\n") == 1, (name, err)
    assert not list(tmp_path.rglob(f"*{TEMP_SUFFIX}"))


def test_a_sweep_whose_markers_cannot_be_written_stops_before_any_point(tmp_path):
    """The markers' folder beside the sweep could not be made: every point ran, then each failed writing its
    marker, exit 2 after all the work (independent review). Now one line before any point."""
    from sim.studies.sweep.callbacks import _claim
    (tmp_path / MARKERS).write_text("")  # a file where the markers' folder goes
    problem = _claim(tmp_path / "sweep")
    assert problem is not None and "cannot be written" in problem and MARKERS in problem
    assert _claim(tmp_path / "other" / "sweep") is None
    from sim.output.files import _HELD, release_folder
    assert (tmp_path / "sweep").absolute() not in _HELD, "a sweep stopped before its points does not hold its folder"
    release_folder(tmp_path / "other" / "sweep")
