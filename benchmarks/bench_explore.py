"""Explorer benchmark (not a test): how long the server takes to answer a change on the page.

    .venv/bin/python benchmarks/bench_explore.py [--repeat N]

For a sequence of changes a student makes (the HBM bandwidth slider, the batch box, the clock, the
weight format, back to the default), times what the main callback of ``llmsim-explore`` does for
each: build the state, simulate it, the headline figures, the roofline, time by operator and by
bound, and the JSON the browser receives (Dash's own encoder). The regime map (its own callback,
a 5 x 5 grid of runs) and a serving run are timed apart. Wall and CPU seconds are printed: on a
machine shared with other work, CPU time is the steadier figure.

Target (issue 17): the main callback within 300 ms of a change on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

from dash._utils import to_json

from sim.studies.explore.app import _CACHE, map_outputs, run_outputs
from sim.studies.explore.controls import CONTROLS, PRESET_GROUPS, format_value, slider_position
from sim.studies.explore.outcome import default_state

CHANGES = [{}, {"hardware.hbm_bandwidth_GBps": 2000}, {"hardware.hbm_bandwidth_GBps": 500},
           {"workload.batch": 8}, {"workload.batch": 32}, {"hardware.freq_GHz": 2.0},
           {"precision.weights": "int8"}, {"workload.prompt_tokens": 2048}, {}]


def raw_controls(state: dict) -> list:
    """The controls' values as the page holds them (slider positions, box texts)."""
    out = []
    for c in CONTROLS:
        v = state["values"][c.key]
        out.append(slider_position(c, v) if c.kind == "slider" else v if c.kind == "choice" else format_value(v))
    return out


def timed(fn, *args) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main_callback(chosen: list, raw: list) -> str:
    _CACHE.clear()  # the app remembers recent states for the downloads: every call here simulates afresh
    return to_json(run_outputs(chosen, raw))  # what goes over the wire


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    state = default_state()
    chosen = [state["presets"][g] for g in PRESET_GROUPS]
    main_callback(chosen, raw_controls(state))  # warm: imports, the presets' composition
    walls, cpus = [], []
    for _ in range(args.repeat):
        for change in CHANGES:
            s = default_state()
            s["values"].update(change)
            wall, cpu, _ = timed(main_callback, chosen, raw_controls(s))
            walls.append(wall)
            cpus.append(cpu)
    q = statistics.quantiles(walls, n=10)
    print(f"main callback, {len(walls)} changes (Llama-2-7B on teaching_npu, analytic): wall median "
          f"{statistics.median(walls) * 1e3:.0f} ms, p90 {q[-1] * 1e3:.0f} ms, max {max(walls) * 1e3:.0f} ms; "
          f"CPU median {statistics.median(cpus) * 1e3:.0f} ms, max {max(cpus) * 1e3:.0f} ms (target 300 ms)")
    wall, cpu, _ = timed(lambda: to_json(map_outputs(state, "hardware.hbm_bandwidth_GBps", "workload.batch")))
    print(f"regime map callback (5 x 5 runs, own callback): wall {wall:.2f} s, CPU {cpu:.2f} s")
    serving = default_state()
    serving["presets"]["workload"] = "serving"
    main_callback([serving["presets"][g] for g in PRESET_GROUPS], raw_controls(serving))  # compose once
    serving["values"]["workload.rate_per_s"] = 12
    wall, cpu, _ = timed(main_callback, [serving["presets"][g] for g in PRESET_GROUPS], raw_controls(serving))
    print(f"main callback, serving run (100 requests, continuous batching): wall {wall * 1e3:.0f} ms, "
          f"CPU {cpu * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
