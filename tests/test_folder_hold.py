"""An output folder one llmsim command is writing is not written by a second one meanwhile: the second says so in
one line and exits 2, before it touches the folder. Two sweeps into one folder at once used to mix: the second
replaced the first's id (.sweep_id), so the first's report counted the second's points as its own and its own as
missing, and each cleared the other's temporary files as stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.output.files import FolderInUse, hold_folder, holding, release_folder
from tests.conftest import REPO

BIN = Path(sys.executable).parent
BUSY = "is being written by another llmsim command"


def _other_process_holds(folder: Path) -> subprocess.CompletedProcess:
    """Another process tries to hold ``folder`` and lets it go at once."""
    code = f"from sim.output.files import hold_folder\nhold_folder({str(folder)!r})\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_a_folder_one_process_holds_is_refused_to_another_until_let_go(tmp_path):
    hold_folder(tmp_path)
    try:
        hold_folder(tmp_path)  # the same process again: nothing to do
        other = _other_process_holds(tmp_path)
        assert other.returncode != 0 and "FolderInUse" in other.stderr and BUSY in other.stderr
    finally:
        release_folder(tmp_path)
    assert _other_process_holds(tmp_path).returncode == 0
    assert os.listdir(tmp_path) == []  # the lock is on the folder itself: no file is added


def test_holding_makes_the_folder_and_removes_it_again_when_nothing_was_written(tmp_path):
    with holding(tmp_path / "empty" / "run") as folder:
        assert folder.is_dir()
        with holding(folder):  # held already by this process: the outer block still holds it after this one
            pass
        assert _other_process_holds(folder).returncode != 0
    assert not (tmp_path / "empty" / "run").exists()
    with holding(tmp_path / "written") as folder:
        (folder / "table.csv").write_text("a\n")
    assert (tmp_path / "written" / "table.csv").exists()
    (tmp_path / "mine").mkdir()
    with holding(tmp_path / "mine"):
        pass
    assert (tmp_path / "mine").is_dir(), "a folder that was there before stays, empty or not"
    assert _other_process_holds(tmp_path / "written").returncode == 0, "let go after the block"


def test_a_folder_held_elsewhere_is_named_in_the_error(tmp_path):
    code = (f"import time\nfrom sim.output.files import hold_folder\nhold_folder({str(tmp_path)!r})\n"
            "print('held', flush=True)\ntime.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUse, match=BUSY) as err:
            hold_folder(tmp_path)
        assert str(tmp_path) in str(err.value)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    hold_folder(tmp_path)  # the holder's end let it go, however it ended
    release_folder(tmp_path)


TINY = ["hardware=teaching_npu", "fidelity=analytic", "model.num_layers=2", "workload.prompt_tokens=16",
        "workload.decode_tokens=4", "output.print_summary=false"]
COMMANDS = {
    # a single run into a named folder: held from before Hydra writes its records there
    "llmsim": lambda out: [BIN / "llmsim", *TINY, f"hydra.run.dir={out}"],
    "llmsim -m": lambda out: [BIN / "llmsim", "-m", *TINY, "hardware.freq_GHz=1.0,1.5", f"hydra.sweep.dir={out}"],
    "llmsim-grid": lambda out: [BIN / "llmsim-grid", *TINY, "hardware.freq_GHz=1.0,1.5", "--out", out],
    "llmsim-search": lambda out: [BIN / "llmsim-search", "+search=area_compute_vs_sram", "search.trials=2",
                                  "--out", out],
    # held from the start, not only while writing (independent review: a sensitivity run started first was
    # refused after all its work, and one started later replaced its files)
    "llmsim-sensitivity": lambda out: [BIN / "llmsim-sensitivity", *TINY, "--out", out],
    "llmsim-capacity": lambda out: [BIN / "llmsim-capacity", "workload=serving", "slo.ttft_p99_s=2", "--out", out],
    "llmsim-report": lambda out: [BIN / "llmsim-report", out],  # a sweep still running: its report would be partial
}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_into_a_folder_another_is_writing_stops_in_one_line(command, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".sweep_id").write_text("the running sweep's\n")
    hold_folder(out)  # as the command already writing there would
    try:
        done = subprocess.run([str(a) for a in COMMANDS[command](out)], capture_output=True, text=True, cwd=tmp_path,
                              timeout=300, env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    finally:
        release_folder(out)
    assert done.returncode == 2, done.stderr
    assert BUSY in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert sorted(os.listdir(out)) == [".sweep_id"] and (out / ".sweep_id").read_text() == "the running sweep's\n"


def test_a_sweep_and_a_grid_do_not_share_a_folder(tmp_path, capsys):
    """A sweep into a grid's folder read the grid's example point and table as its own points (independent
    review); a grid into a sweep's folder replaced the sweep's report with its own."""
    from sim.cli.grid import main as grid
    from sim.studies.sweep.callbacks import _claim

    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "grid.json").write_text("{}\n")
    assert _claim(tmp_path / "grid") == (f"{tmp_path / 'grid'} holds llmsim-grid's results (grid.json): a sweep "
                                         "there would mix its points with them; choose another hydra.sweep.dir")
    assert sorted(os.listdir(tmp_path / "grid")) == ["grid.json"]
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "multirun.yaml").write_text("{}\n")
    with pytest.raises(SystemExit) as ended:
        grid([*TINY, "hardware.freq_GHz=1.0,1.5", "--out", str(tmp_path / "sweep")])
    assert ended.value.code == 2
    assert "holds an llmsim -m sweep (multirun.yaml)" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "sweep")) == ["multirun.yaml"]
