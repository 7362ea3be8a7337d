"""A 200-trial search of decode_chip_llama2_70b (analytic, serving 200 requests per trial), timed.

    .venv/bin/python benchmarks/bench_search.py [trials] [jobs]   (jobs: default 0, one process per core)

Target (issue 16): 200 trials in under 15 s on a 2-core machine. Prints wall and CPU seconds
(this process and its worker processes), and, with one job, where the time went: the serving
simulations, their summaries, and the rest (composing, building designs, chip models, Optuna,
the report).
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

from sim.config.schema import WorkloadKind
from sim.studies.kinds import WORKLOADS
from sim.studies.search.runner import run_search
from sim.studies.search.study import cores

TARGET_S = 15.0  # issue 16: 200 trials of decode_chip_llama2_70b on this 2-core machine
SPENT = {"simulate": 0.0, "summarize": 0.0}
CALLS = {"simulate": 0, "summarize": 0}


def _timed(name: str, fn):
    def run(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[name] += time.perf_counter() - started
            CALLS[name] += 1
    return run


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 0  # 0: the default, one process per core
    entry = WORKLOADS[WorkloadKind.serving]
    WORKLOADS[WorkloadKind.serving] = dataclasses.replace(entry, simulate=_timed("simulate", entry.simulate),
                                                          summarize=_timed("summarize", entry.summarize))
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
        summary, front, _ = run_search(["+search=decode_chip_llama2_70b", f"search.trials={trials}",
                                        f"search.jobs={jobs}"], Path(tmp) / "search")
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu + _children_cpu() - children
    how = f"{jobs or cores()} job(s){' (search.jobs=0: one per core)' if not jobs else ''}"
    print(f"bench_search: {summary['trials']} trials ({summary['feasible']} feasible, {summary['pareto']} Pareto) "
          f"with {how} in {wall:.1f} s wall, {cpu:.1f} s CPU ({wall / summary['trials'] * 1e3:.0f} ms "
          "per trial)")
    if trials == 200:
        print(f"  target (issue 16): 200 trials under {TARGET_S:.0f} s: {'met' if wall < TARGET_S else 'not met'}")
    if jobs == 1:  # worker processes keep their own clocks
        rest = wall - SPENT["simulate"] - SPENT["summarize"]
        print(f"  {CALLS['simulate']} serving simulations {SPENT['simulate']:.1f} s, their summaries "
              f"{SPENT['summarize']:.1f} s, the rest {rest:.1f} s (compose, designs, chip models, Optuna, report)")


if __name__ == "__main__":
    main()
