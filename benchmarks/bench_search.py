"""A 200-trial search of decode_chip_llama2_70b (analytic, serving 200 requests per trial), timed.

    .venv/bin/python benchmarks/bench_search.py [trials] [jobs]

Target: under 5 minutes on a 2-core machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from sim.studies.search.runner import run_search


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary, front, _ = run_search(["+search=decode_chip_llama2_70b", f"search.trials={trials}",
                                        f"search.jobs={jobs}"], Path(tmp) / "search")
        wall = time.perf_counter() - started
    print(f"bench_search: {summary['trials']} trials ({summary['feasible']} feasible, {summary['pareto']} Pareto) "
          f"with {jobs} job(s) in {wall:.1f} s ({wall / summary['trials']:.2f} s per trial)")


if __name__ == "__main__":
    main()
