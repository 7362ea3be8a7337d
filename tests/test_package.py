"""The package outside its checkout: a wheel built here, installed into a fresh venv, every command run.

Also the pieces it rests on, tested in-process: the package list in pyproject.toml matches the
tree, a run can point at its own fit (``calibration=<path>``), and output folders are checked.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml

from hwmodels.calibration import CALIBRATION_FILE, FITTED, FITTED_KEYS, CalibrationError, load_fit
from sim.config.compose import compose_dict, to_run_config
from sim.config.overrides import InputError, check_override
from sim.config.paths import CONF_DIR, DATA_DIR, OutputDirError, output_dir

REPO = Path(__file__).resolve().parent.parent
NOT_SOURCE = (".git", ".venv", "results", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
              ".hypothesis", ".ruff_cache")


def test_every_package_in_the_tree_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for top in ("sim", "hwmodels", "workloads")
             for p in (REPO / top).rglob("__init__.py")}
    assert found | {"sim.conf", "sim.data"} == listed


def test_every_library_the_package_imports_is_a_declared_dependency():
    """A module imported by name must come from a distribution pyproject.toml names, not only from one that a
    declared dependency happens to pull in today (sqlalchemy came with optuna, omegaconf with hydra-core)."""
    imported = set()
    for root in ("sim", "hwmodels", "workloads"):
        for path in (REPO / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    imported.add(node.module.split(".")[0])
    own = {"sim", "hwmodels", "workloads"}
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in own}
    assert {"numpy", "simpy", "optuna"} <= third_party  # the walk sees the package's imports
    declared = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower().replace("_", "-")
                for dep in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    undeclared = {m: providers.get(m) for m in third_party
                  if not {d.lower().replace("_", "-") for d in providers.get(m, [m])} & declared}
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def test_package_files_are_found_through_the_package():
    assert (CONF_DIR / "config.yaml").is_file() and (DATA_DIR / "validation" / "a100.csv").is_file()
    assert dict(load_fit()) == dict(FITTED) and "llmsim-calibrate" in CALIBRATION_FILE.read_text()


def _fit_file(tmp_path: Path, **changes: float) -> Path:
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump({**dict(FITTED), **changes}))
    return path


def test_a_run_uses_the_fit_it_points_at_for_the_fields_no_preset_sets(tmp_path):
    path = _fit_file(tmp_path, kernel_overhead_us=FITTED["kernel_overhead_us"] + 7.0, matmul_efficiency=0.5)
    chip = to_run_config(compose_dict([f"calibration={path}"])).hardware
    assert chip.kernel_overhead_us == FITTED["kernel_overhead_us"] + 7.0 and chip.matmul_efficiency == 0.5
    default = to_run_config(compose_dict([])).hardware
    assert all(getattr(default, k) == FITTED[k] for k in FITTED_KEYS)  # the shipped fit, unchanged
    teaching = yaml.safe_load((CONF_DIR / "hardware" / "teaching_npu.yaml").read_text())
    own = [k for k in FITTED_KEYS if k in teaching]
    assert own, "the teaching chip sets some fitted fields itself"
    chip = to_run_config(compose_dict(["hardware=teaching_npu", f"calibration={path}"])).hardware
    assert all(getattr(chip, k) == teaching[k] for k in own)  # the preset's own values win
    user = to_run_config(compose_dict([f"calibration={path}", "hardware.matmul_efficiency=0.9"])).hardware
    assert user.matmul_efficiency == 0.9  # and so does the user's


@pytest.mark.parametrize("content, message", [
    (None, "no calibration file at"),
    ("[1, 2]", "holds no mapping"),
    ("matmul_efficiency: 0.8\n", "lacks matmul_overlap_loss"),
    ("{", "is not YAML"),
])
def test_a_bad_fit_is_one_line(tmp_path, content, message):
    path = tmp_path / "fit.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CalibrationError, match=message):
        load_fit(path)
    with pytest.raises(InputError, match=message):
        check_override(f"calibration={path}")


def test_output_folders_resolve_against_the_working_directory_and_refuse_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert output_dir("a/b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("")
    for bad in ("file", "file/below"):
        with pytest.raises(OutputDirError, match="is a file"):
            output_dir(bad)


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    ["llmsim", "hydra.run.dir=FILE"], ["llmsim", "-m", "seed=1,2", "hydra.sweep.dir=FILE/x"],
    ["llmsim-grid", "seed=1,2", "--out", "FILE"], ["llmsim-sensitivity", "--out", "FILE"],
    ["llmsim-search", "+search=area_compute_vs_sram", "--out", "FILE"], ["llmsim-calibrate", "--out", "FILE"],
    ["llmsim-report", str(REPO), "--out", "FILE"], ["llmsim", "calibration=FILE"],
    ["llmsim-capacity", "slo.ttft_p99_s=2", "--out", "FILE"],
])
def test_a_bad_output_folder_or_fit_is_one_line_and_exit_2(tmp_path, command):
    (tmp_path / "FILE").write_text("not a folder\n")
    exe = Path(sys.executable).parent / command[0]
    done = subprocess.run([str(exe), *command[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "error:" in done.stderr, done.stderr


def _venv_with_wheel(tmp_path: Path) -> Path:
    """A fresh venv holding the wheel built from a copy of the source; its dependencies borrowed, not downloaded."""
    src, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist),
                            str(src)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path("
                                   "'purelib'))"], capture_output=True, text=True, check=True).stdout.strip())
    # The test interpreter's site-packages hold the dependencies. Their .pth files are not run from
    # here, so the checkout's editable-install hook stays out; the checkout itself is never added.
    borrowed = [p for p in {*site.getsitepackages(), sysconfig.get_path("purelib")} if Path(p).is_dir()]
    (purelib / "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    wheel = next(dist.glob("llmsim-*.whl"))
    installed = subprocess.run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                                "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv


@pytest.mark.slow
def test_the_installed_wheel_runs_every_command_from_an_unrelated_folder(tmp_path):
    venv = _venv_with_wheel(tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["HYDRA_FULL_ERROR"] = "0"

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen([str(venv / "bin" / args[0]), *args[1:]], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=work, env=env)

    def finish(proc: subprocess.Popen) -> str:
        out, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, f"{' '.join(map(str, proc.args))}:\n{out[-1500:]}\n{err[-1500:]}"
        return out

    def run(*args: str) -> str:
        return finish(start(*args))

    where = run("python", "-c", "import sim, hwmodels, sim.conf; print(sim.__file__, hwmodels.__file__, "
                "sim.conf.__file__)").split()
    assert all(Path(w).is_relative_to(venv) for w in where), where  # the wheel's files, not the checkout's
    # The commands that do not read each other's outputs run side by side.
    alongside = [start("llmsim-calibrate", "--out", "cal"), start("llmsim-validate"),
                 start("llmsim-sensitivity", "fidelity=analytic", "--out", "sens"),
                 start("llmsim-search", "+search=area_compute_vs_sram", "search.trials=2", "--out", "search"),
                 start("llmsim-grid", "hardware.hbm_bandwidth_GBps=1000,2000", "fidelity=analytic", "--out", "grid",
                       "--no-report")]
    run("llmsim", "hydra.run.dir=run")
    run("llmsim", "-m", "hardware.hbm_bandwidth_GBps=1000,2000", "fidelity=analytic", "hydra.sweep.dir=sweep")
    assert all((work / "sweep" / n / "summary.json").is_file() for n in ("0", "1"))
    run("llmsim-report", "sweep", "--out", "report")
    assert any((work / "report").glob("*.png"))
    for proc in alongside:
        finish(proc)
    assert any((work / "grid").rglob("*.parquet")) and (work / "sens" / "sensitivity.csv").is_file()
    assert any((work / "search").iterdir())
    fit = yaml.safe_load((work / "cal" / "calibration.yaml").read_text())
    assert all(fit[k] == pytest.approx(FITTED[k], rel=1e-3, abs=1e-3) for k in FITTED_KEYS)
    assert not list(venv.rglob("results"))  # nothing written into the package

    fit["kernel_overhead_us"] += 20.0  # a different fit moves the number; the default run does not
    (work / "cal" / "edited.yaml").write_text(yaml.safe_dump(fit))
    run("llmsim", "calibration=cal/edited.yaml", "hydra.run.dir=run_edited")
    total = {d: json.loads((work / d / "summary.json").read_text())["total_s"] for d in ("run", "run_edited")}
    assert total["run_edited"] > total["run"]
    assert "kernel_overhead_us: " + str(fit["kernel_overhead_us"]) in (work / "run_edited" / "config.yaml").read_text()
