"""Speed of the serving simulation (not a test): wall-clock figures for the README.

    .venv/bin/python benchmarks/bench_serving.py

Llama-2-7B on h100_sxm, continuous batching, Poisson arrivals, 512-token prompts and
128-token outputs (the ``workload=serving`` defaults): 1,000, 10,000 and 50,000 requests at a moderate
load (10 requests/s) and near saturation (60 requests/s), simulation plus summary, best of
three for 1,000; then one start-to-finish ``llmsim`` command of 1,000 requests (files and plot
included).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from sim.config.compose import to_run_config
from sim.config.paths import CONF_DIR
from sim.config.schema import register_configs
from sim.metrics.serving_summary import summarize_serving
from sim.serving.run import simulate_serving

TARGETS = {1000: 10.0, 10000: 60.0, 50000: 5.0}  # seconds the serving path must stay under (50,000: issue 16)


def config(*overrides: str):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return to_run_config(compose("config", overrides=["workload=serving", *overrides]))


def timed(cfg) -> tuple[float, float, dict]:
    """Wall and CPU seconds (the CPU figure is what a loaded, shared machine does not inflate), summary."""
    start, cpu = time.perf_counter(), time.process_time()
    summary = summarize_serving(simulate_serving(cfg))
    return time.perf_counter() - start, time.process_time() - cpu, summary


def main() -> None:
    for rate in (10, 60):
        for n, target in TARGETS.items():
            cfg = config(f"workload.num_requests={n}", f"workload.rate_per_s={rate}")
            runs = [timed(cfg) for _ in range(3 if n <= 1000 else 1)]
            wall, cpu, s = min(runs, key=lambda r: r[0])
            run = s["run"]
            verdict = "met" if cpu < target else "NOT met"
            print(f"{n:>6,} requests at {rate:>3}/s: {wall:6.2f} s wall, {cpu:6.2f} s CPU "
                  f"(target < {target:.0f} s: {verdict}) | "
                  f"{s['steps']:,} steps, "
                  f"{run['distinct_steps']:,} distinct steps costed, {run['events']:,} events | "
                  f"{s['output_tokens_per_s']:,.0f} output tokens/s, TTFT p99 {s['ttft_p99_s']:.3g} s, "
                  f"{s['preemptions']} preemptions")
    exe = Path(sys.executable).parent / "llmsim"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([str(exe), "workload=serving", "workload.num_requests=1000", f"hydra.run.dir={tmp}"], check=True,
                       capture_output=True)
        print(f"llmsim workload=serving (1,000 requests), start to finish with files and plot: "
              f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
