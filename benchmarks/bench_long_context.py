"""Speed benchmark (not a test): long contexts simulate in about the time of short ones.

    .venv/bin/python benchmarks/bench_long_context.py

Qwen2.5-7B-Instruct-1M at 128K, 512K and 1M prompt tokens with 64 generated tokens, TP4 and TP4 x CP2,
and on one H200 with the KV cache spilled to the host: ``sim.batch.run.simulate`` wall seconds at
both fidelities (best of three) beside the simulated time to first token and per output token.
The graph of a pass grows with the ops of a layer, not with the context, so the wall time stays flat.
"""

from __future__ import annotations

import time

from hydra import compose, initialize_config_dir

from sim.batch.run import simulate
from sim.config.compose import to_run_config
from sim.config.paths import CONF_DIR
from sim.config.schema import register_configs

RUNS = {
    "tp4": ["parallel.tp=4"],
    "tp4 cp2": ["parallel.tp=4", "parallel.cp=2"],
    "h200 offload": ["hardware=h200", "memory.kv_offload=host"],
}


def _config(overrides: list[str]):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return to_run_config(compose("config", overrides=overrides))


def main() -> None:
    print(f"{'run':<14}{'prompt':>9}{'fidelity':>10}{'wall s':>9}{'TTFT s':>10}{'TPOT ms':>10}")
    for name, extra in RUNS.items():
        for prompt in (131072, 524288, 1000000):
            for fidelity in ("analytic", "des"):
                cfg = _config(["model=qwen2_5_7b_1m", f"workload.prompt_tokens={prompt}", "workload.decode_tokens=64",
                               f"fidelity={fidelity}", *extra])
                best, result = float("inf"), None
                for _ in range(3):
                    started = time.perf_counter()
                    result = simulate(cfg)
                    best = min(best, time.perf_counter() - started)
                spans = result.timeline.passes
                ttft = spans[0].duration_s
                tpot = (result.timeline.end_s - ttft) / (len(spans) - 1)
                print(f"{name:<14}{prompt:>9}{fidelity:>10}{best:>9.2f}{ttft:>10.3g}{tpot * 1e3:>10.3g}")


if __name__ == "__main__":
    main()
