"""Speed of the vectorised analytic path (issue 16), beside llm-analysis, in one run.

    .venv/bin/python benchmarks/bench_vector.py [--skip-peer] [--skip-grid] [--skip-search]

1. The 1,000-point grid: Llama-2-7B on A100-80GB, prefill of 512 tokens plus one decode step per
   point, HBM bandwidth (10 values) x clock (10) x batch (10). Timed, best of three:
   llmsim's batch path (``simulate_points`` plus every summary figure, ``group_columns``; the
   configs built beforehand, their building timed apart); llmsim's in-process ``simulate`` +
   ``summarize`` on 50 of the points; and llm-analysis (the package index's release, installed into
   a throw-away venv in /tmp; its model and GPU configs written there as JSON, no network) on the
   same 1,000 points (its ``inference`` for the same batch, prompt and one generated token, GPU
   peak FLOP/s scaled with the clock as llmsim's peak is). If pip cannot install it, that is said.
2. ``llmsim-grid`` over 100,000 points of Llama-2-70B TP8 on H100 (HBM bandwidth x clock x batch),
   the report included (a subprocess, as a user runs it): wall and CPU seconds.
3. ``llmsim-search`` with 200 trials: ``decode_chip_llama2_70b_batch`` (the decode-chip space and
   limits on one batch of 64, 512 + 256 tokens) and ``decode_chip_llama2_70b`` as shipped (serving).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sim.batch.run import simulate
from sim.batch.vector import simulate_points
from sim.config.compose import compose_config
from sim.metrics.summary import summarize
from sim.metrics.vector_summary import group_columns

BW = [800.0 + 200.0 * i for i in range(10)]  # GB/s
FREQ = [0.9 + 0.1 * i for i in range(10)]  # GHz
BATCH = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128]
PROMPT = 512
VENV = Path(os.environ.get("LLM_ANALYSIS_VENV", Path(tempfile.gettempdir()) / "llmsim_bench_llm_analysis"))
PEER = Path(__file__).with_name("peer_llm_analysis.py")
# Issue 16's targets: the 1,000-point grid under the fastest peer's 0.16 ms a point (and faster than
# llm-analysis in the same run); llmsim-grid over 100,000 points, report included, under 30 s.
TARGET_PER_POINT_MS = 0.16
TARGET_GRID_S = 30


def grid_configs():
    cfg = compose_config(["model=llama2_7b", "hardware=a100_80gb", "fidelity=analytic",
                          f"workload.prompt_tokens={PROMPT}", "workload.decode_tokens=2"])[1]
    chips = {(b, f): dataclasses.replace(cfg.hardware, hbm_bandwidth_GBps=b, freq_GHz=f) for b in BW for f in FREQ}
    works = {n: dataclasses.replace(cfg.workload, batch=n) for n in BATCH}
    out = []
    for b in BW:
        for f in FREQ:
            for n in BATCH:
                c = copy.copy(cfg)  # the parts shared, as llmsim-grid builds its points
                c.hardware, c.workload = chips[(b, f)], works[n]
                out.append(c)
    return cfg, out


def best_of(n: int, fn) -> float:
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def batch_path(cfgs) -> None:
    result = simulate_points(cfgs)
    assert result.vectorised == len(cfgs), result.fallbacks
    for group in result.groups:
        group_columns(group)


def peer(cfg) -> dict:
    """llm-analysis on the same points, in its own venv; {"error": ...} when it cannot be installed."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    check = subprocess.run([str(python), "-c", "import llm_analysis"], capture_output=True)
    if check.returncode:
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "llm-analysis"], capture_output=True,
                             text=True)
        if pip.returncode:
            return {"error": "pip could not install llm-analysis: " + (pip.stderr.strip().splitlines() or ["?"])[-1]}
    hw = cfg.hardware
    spec = {"bw": BW, "freq": FREQ, "batch": BATCH, "prompt": PROMPT, "base_freq": hw.freq_GHz,
            "bf16_TFLOPS": hw.peak_flops(cfg.precision.activations) / 1e12, "memory_GB": hw.hbm_capacity_GB,
            "model": {"hidden": cfg.model.hidden_size, "layers": cfg.model.num_layers, "heads": cfg.model.num_heads,
                      "kv_heads": cfg.model.num_kv_heads, "ffn": cfg.model.ffn_size, "vocab": cfg.model.vocab_size,
                      "context": cfg.model.max_context}}
    run = subprocess.run([str(python), str(PEER), json.dumps(spec)], capture_output=True, text=True)
    if run.returncode:
        return {"error": "llm-analysis failed: " + (run.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(run.stdout.strip().splitlines()[-1])


def command(args: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, last output line) of a console command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = (run.stdout.strip().splitlines() or [""])[0] if run.returncode == 0 else "error: " + run.stderr.strip()
    return wall, cpu, text


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--skip-peer", "--skip-grid", "--skip-search"):
        parser.add_argument(flag, action="store_true")
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    start = time.perf_counter()
    base, cfgs = grid_configs()
    build = time.perf_counter() - start
    n = len(cfgs)
    vector = best_of(3, lambda: batch_path(cfgs))
    sample = cfgs[:: n // 50]
    scalar = best_of(3, lambda: [summarize(simulate(c)) for c in sample]) / len(sample)
    print(f"1,000-point grid, Llama-2-7B on A100, prefill {PROMPT} + one decode step ({os.cpu_count()} CPUs):")
    print(f"  llmsim batch path: {vector / n * 1e3:.3f} ms per point ({vector:.3f} s; configs built in {build:.2f} s;"
          f" target: under {TARGET_PER_POINT_MS} ms and faster than llm-analysis)")
    print(f"  llmsim simulate() + summarize(), one at a time: {scalar * 1e3:.2f} ms per point")
    if not args.skip_peer:
        got = peer(base)
        if "error" in got:
            print(f"  llm-analysis: {got['error']}")
        else:
            print(f"  llm-analysis {got['version']} inference(): {got['per_point_s'] * 1e3:.3f} ms per point "
                  f"({got['points']} points); llmsim's batch path is {got['per_point_s'] / (vector / n):.1f}x faster")
    if not args.skip_grid:
        with tempfile.TemporaryDirectory() as out:
            wall, cpu, line = command([str(bindir / "llmsim-grid"), "model=llama2_70b", "hardware=h100_sxm",
                                       "parallel.tp=8", "fidelity=analytic", "workload.decode_tokens=2",
                                       "hardware.hbm_bandwidth_GBps=geomspace(1000,8000,100)",
                                       "hardware.freq_GHz=linspace(1.0,2.0,100)",
                                       "workload.batch=1,2,4,8,16,32,64,128,256,512", "--out", out])
        print(f"llmsim-grid, 100,000 points of Llama-2-70B TP8, report included: {wall:.1f} s wall, {cpu:.1f} s CPU"
              f" (target: under {TARGET_GRID_S} s; {line})")
    if not args.skip_search:
        search_runs(bindir)


def search_runs(bindir: Path) -> None:
    for label, recipe in (("on one batch (decode_chip_llama2_70b_batch)", "decode_chip_llama2_70b_batch"),
                          ("serving, as shipped (decode_chip_llama2_70b)", "decode_chip_llama2_70b")):
        with tempfile.TemporaryDirectory() as out:
            wall, cpu, line = command([str(bindir / "llmsim-search"), f"+search={recipe}", "search.trials=200",
                                       f"search.out={out}"])
        print(f"llmsim-search, 200 trials, {label}: {wall:.1f} s wall, {cpu:.1f} s CPU ({line[:100]})")


if __name__ == "__main__":
    main()
