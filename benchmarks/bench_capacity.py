"""Speed of llmsim-capacity (not a test): the whole capacity search for one system, wall clock.

    .venv/bin/python benchmarks/bench_capacity.py [--requests N] [--max-requests N]

Issue 15's systems: Llama-2-70B, fp8 weights and KV cache, prompts lognormal (mean 512, cv 0.6),
chat outputs (sim/serving/lengths.py), p99 TTFT <= 2 s and p99 TPOT <= 200 ms, on 8 x h100_sxm as
4 x TP2 replicas and on 8 x h200 as 8 x TP1. Target: each search under 60 s on a 2-core machine.
Prints each probe (rate, requests, p99s), then the capacity, its bracket, the number of probes and
requests per probe, and the wall time.
"""

from __future__ import annotations

import argparse
import time

from hydra import compose, initialize_config_dir

from sim.config.compose import to_run_config
from sim.config.paths import CONF_DIR
from sim.config.schema import register_configs
from sim.studies.capacity import BASE_REQUESTS, MAX_REQUESTS, find_capacity
from sim.studies.capacity_report import describe, probe_line, render_capacity

TARGET_S = 60.0
CHAT_70B = ["workload=serving", "model=llama2_70b", "precision.weights=fp8", "precision.kv_cache=fp8",
            "workload.lengths=lognormal", "workload.prompt_tokens=512", "workload.length_cv=0.6",
            "workload.output_lengths=chat", "slo.ttft_p99_s=2", "slo.tpot_p99_s=0.2"]
SYSTEMS = {"8 x h100_sxm as 4 x TP2": ["hardware=h100_sxm", "parallel.tp=2", "parallel.dp=4"],
           "8 x h200 as 8 x TP1": ["hardware=h200", "parallel.tp=1", "parallel.dp=8"]}


def config(overrides: list[str]):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return to_run_config(compose("config", overrides=overrides))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=BASE_REQUESTS)
    parser.add_argument("--max-requests", type=int, default=MAX_REQUESTS)
    args = parser.parse_args()
    for name, system in SYSTEMS.items():
        print(f"{name}:", flush=True)
        started, cpu = time.perf_counter(), time.process_time()
        found = find_capacity(config(CHAT_70B + system), args.requests, args.max_requests,
                              progress=lambda p: print(probe_line(p), flush=True))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"  system                   {describe(found)}")
        print(render_capacity(found))
        print(f"  => {wall:.1f} s wall, {cpu:.1f} s CPU for the whole search (target < {TARGET_S:.0f} s: "
              f"{'met' if cpu < TARGET_S else 'NOT met'}; the CPU "
              "figure is what a shared, loaded machine does not inflate)\n", flush=True)


if __name__ == "__main__":
    main()
