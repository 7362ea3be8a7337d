"""Decode in closed form (issue 16): a long generation's cost, closed form against step by step.

    .venv/bin/python benchmarks/bench_decode.py            # closed form only (seconds)
    .venv/bin/python benchmarks/bench_decode.py --compare  # also the step-by-step replay (a minute)

Mistral-7B on the default H100 SXM, batch 1, 512-token prompt, 8,192 generated tokens:
``simulate()`` at both fidelities (best of three), the decode segments it replayed, the size of the
run's ops.csv, and with ``--compare`` the step-by-step wall time and the largest relative difference
of any summary figure between the two.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench import best_of, config

from sim.batch.run import simulate
from sim.metrics.summary import batch_summary, breakdown_by_kind, ops_columns
from sim.output.files import write_run

MISTRAL = ["model=mistral_7b", "workload.decode_tokens=8192"]


def numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a summary, by dotted key."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(numbers(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def worst_difference(a, b) -> tuple[float, str]:
    """Largest relative difference between two runs' summaries (wall time, events, ops costed aside)."""
    fa, fb = numbers(batch_summary(a).as_dict()), numbers(batch_summary(b).as_dict())
    skip = ("wall", "events", "distinct_ops")
    return max(((abs(fa[k] - v) / abs(v), k) for k, v in fb.items()
                if v and k in fa and not any(s in k for s in skip)), default=(0.0, ""))


def ops_csv_bytes(result) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        write_run(Path(tmp), batch_summary(result).as_dict(), breakdown_by_kind(result), ops_columns(result), "", 0)
        return (Path(tmp) / "ops.csv").stat().st_size


def main(compare: bool) -> None:
    for fidelity in ("analytic", "des"):
        cfg = config(*MISTRAL, f"fidelity={fidelity}")
        result = simulate(cfg)
        wall = best_of(3, lambda cfg=cfg: simulate(cfg))
        segments = len(result.timeline.passes) - 1
        print(f"Mistral-7B 512 + 8192 simulate(), {fidelity:<8}: {wall:6.3f} s   ({segments} decode segments for "
              f"8191 steps, {result.timeline.events} events, ops.csv {ops_csv_bytes(result) / 1e6:.2f} MB)")
        if compare:
            start = time.perf_counter()
            reference = simulate(cfg, step_by_step=True)
            step_s = time.perf_counter() - start
            diff, key = worst_difference(result, reference)
            print(f"    step by step: {step_s:6.2f} s ({reference.timeline.events} events, ops.csv "
                  f"{ops_csv_bytes(reference) / 1e6:.1f} MB); largest relative difference {diff:.1e} ({key})")


if __name__ == "__main__":
    main("--compare" in sys.argv[1:])
