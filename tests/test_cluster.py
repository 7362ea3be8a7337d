"""Sweeps through Hydra's cluster launchers, on this machine: Ray (a local Ray instance) and
submitit (``submitit_local``: the Slurm launcher's local twin, jobs as subprocesses).

Skipped unless the ``cluster`` extra is installed (``pip install -e '.[test,cluster]'``; CI
does not install Ray). ``scripts/cluster_smoke.sh`` makes such an environment and runs these.
"""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest

from tests.conftest import run_cli

SMALL = ["hardware=teaching_npu", "workload.prompt_tokens=128", "workload.decode_tokens=4", "fidelity=analytic",
         "output.print_summary=false", "hardware.hbm_bandwidth_GBps=500,2000", "parallel.tp=1,3"]


def installed(plugin: str) -> bool:
    return importlib.util.find_spec(f"hydra_plugins.{plugin}") is not None


def check_sweep(sweep) -> None:
    assert sorted(p.parent.name for p in sweep.glob("*/summary.json")) == ["0", "2"]
    reasons = [json.loads(p.read_text())["reason"] for p in sweep.glob("*/failed.json")]
    assert len(reasons) == 2 and all("does not divide" in r for r in reasons)
    table = pd.read_parquet(sweep / "report" / "points.parquet")
    assert len(table) == 4 and (table["status"] == "ok").sum() == 2
    assert (sweep / "report" / "regime_map.png").exists()


@pytest.mark.slow
@pytest.mark.skipif(not installed("hydra_ray_launcher"), reason="needs the cluster extra (hydra-ray-launcher, ray)")
def test_ray_launcher_on_a_local_ray_instance(tmp_path):
    proc = run_cli("-m", "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
                   "+hydra.launcher.ray.init.include_dashboard=false", f"hydra.sweep.dir={tmp_path / 'sweep'}", *SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_sweep(tmp_path / "sweep")


@pytest.mark.slow
@pytest.mark.skipif(not installed("hydra_submitit_launcher"), reason="needs the cluster extra (hydra-submitit)")
def test_submitit_local_launcher(tmp_path):
    proc = run_cli("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", *SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_sweep(tmp_path / "sweep")
