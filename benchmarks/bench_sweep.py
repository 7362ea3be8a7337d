"""Sweep benchmarks (not tests): wall-clock figures for the README and closing notes.

    .venv/bin/python benchmarks/bench_sweep.py [--quick]

1. a 400-point analytic sweep of Llama-2-70B (TP 8, batch 16, 2048-token prompts, 32 generated
   tokens; HBM bandwidth x clock, 20 x 20) through ``llmsim -m``: the basic launcher, then
   joblib with 2 processes; every point writes its files;
2. a 100-point discrete-event sweep of the same (10 x 10), basic launcher;
3. ``llmsim-report`` over the 400 points (table and every chart);
4. the same 400 points inside one process with ``llmsim-grid`` (metrics only).

Targets on the 2-core development machine: (1) < 120 s, (2) < 180 s, (3) < 20 s. Each line also
gives the CPU seconds used, which other work on the machine does not inflate.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent
BASE = ["model=llama2_70b", "parallel.tp=8", "workload.batch=16", "workload.prompt_tokens=2048",
        "workload.decode_tokens=32", "output.print_summary=false", "sweep.report=false", "sweep.rerun=true"]


def values(low: float, high: float, num: int) -> str:
    return ",".join(f"{v:.4g}" for v in np.geomspace(low, high, num))


CPU: list[float] = []  # CPU seconds (user + system) of each timed command and its children


def timed(cmd: list[str]) -> float:
    """Wall seconds of ``cmd``; its CPU seconds go to ``CPU`` (on a busy machine, the cost itself)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    quick = "--quick" in sys.argv
    n = 5 if quick else 20
    axes = [f"hardware.hbm_bandwidth_GBps={values(1000, 8000, n)}", f"hardware.freq_GHz={values(0.5, 3, n)}"]
    des_axes = [f"hardware.hbm_bandwidth_GBps={values(1000, 8000, n // 2)}",
                f"hardware.freq_GHz={values(0.5, 3, n // 2)}"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        llmsim = str(BIN / "llmsim")
        basic = timed([llmsim, "-m", f"hydra.sweep.dir={root / 'basic'}", "fidelity=analytic", *BASE, *axes])
        print(f"{n * n}-point analytic sweep, basic launcher:        {basic:7.1f} s  "
              f"({basic / n / n * 1e3:.0f} ms/point; target < 120 s; CPU {CPU[-1]:.0f} s)")
        joblib = timed([llmsim, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                        f"hydra.sweep.dir={root / 'joblib'}", "fidelity=analytic", *BASE, *axes])
        print(f"{n * n}-point analytic sweep, joblib (2 processes):  {joblib:7.1f} s  "
              f"({joblib / n / n * 1e3:.0f} ms/point; CPU {CPU[-1]:.0f} s)")
        des = timed([llmsim, "-m", f"hydra.sweep.dir={root / 'des'}", "fidelity=des", *BASE, *des_axes])
        print(f"{(n // 2) ** 2}-point discrete-event sweep, basic launcher:  {des:7.1f} s  "
              f"({des / (n // 2) ** 2 * 1e3:.0f} ms/point; target < 180 s; CPU {CPU[-1]:.0f} s)")
        report = timed([str(BIN / "llmsim-report"), str(root / "basic")])
        print(f"llmsim-report over {n * n} points:                  {report:7.1f} s  "
              f"(target < 20 s; CPU {CPU[-1]:.0f} s)")
        grid = timed([str(BIN / "llmsim-grid"), "--no-report", "--out", str(root / "grid"), "fidelity=analytic",
                       *BASE, *axes])
        print(f"{n * n}-point analytic grid in one process:        {grid:7.1f} s  ({grid / n / n * 1e3:.0f} ms/point; "
              f"CPU {CPU[-1]:.0f} s)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (other work slows the above)")


if __name__ == "__main__":
    main()
