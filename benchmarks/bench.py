"""Speed benchmarks (not tests): wall-clock figures for the README and closing notes.

    .venv/bin/python benchmarks/bench.py

1. the default run, start to finish, as a user types it (a subprocess of the console script);
2. Llama-2-70B, TP 8, batch 16, 2048-token prompt, 256 generated tokens: the simulation itself
   (``sim.batch.run.simulate``), discrete-event and analytic, best of three;
3. the cost of one cached op lookup.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from sim.batch.run import passes, simulate
from sim.config.compose import to_run_config
from sim.config.paths import CONF_DIR
from sim.config.schema import register_configs
from sim.engine.costing import Coster

BIG = ["model=llama2_70b", "parallel.tp=8", "workload.batch=16", "workload.prompt_tokens=2048",
       "workload.decode_tokens=256"]


def config(*overrides: str):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return to_run_config(compose("config", overrides=list(overrides)))


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    exe = Path(sys.executable).parent / "llmsim"
    with tempfile.TemporaryDirectory() as tmp:
        default_s = best_of(3, lambda: subprocess.run([str(exe), f"hydra.run.dir={tmp}"], check=True,
                                                      capture_output=True))
    print(f"default run, start to finish (subprocess):        {default_s:6.2f} s   (target < 3 s)")
    for fidelity in ("des", "analytic"):
        cfg = config(*BIG, f"fidelity={fidelity}")
        result = simulate(cfg)
        wall = best_of(3, lambda cfg=cfg: simulate(cfg))
        print(f"70B TP8 b16 2048+256 simulate(), {fidelity:<8}:        {wall:6.2f} s   (target < 2 s; "
              f"{sum(p.steps for p in result.timeline.passes)} passes replayed as {len(result.timeline.passes)}, "
              f"{result.distinct_ops} distinct ops, "
              f"{result.timeline.events} events)")
    cfg = config(*BIG)
    coster = Coster(cfg.hardware)
    ops = [op for graph in passes(cfg) for op, _ in graph.ops()]
    for op in ops:
        coster(op)
    lookup = best_of(3, lambda: [coster(op) for op in ops]) / len(ops)
    print(f"cached op cost lookup:                             {lookup * 1e6:6.2f} us per op ({len(ops)} ops)")


if __name__ == "__main__":
    main()
