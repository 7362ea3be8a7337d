"""The headline numbers of a few reference runs, recorded with the model version that gave them.

``tests/test_reuse.py`` recomputes them: numbers that differ from the record while
``MODEL_VERSION`` (sim/engine/model_version.py) is still the recorded one fail the test, since
a sweep would then reuse points of the old model as if they were the new one's. After a change
that moves them on purpose: bump ``MODEL_VERSION`` (with its history line), then
``.venv/bin/python -m tests.golden.model_numbers`` rewrites ``model_numbers.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

RECORD = Path(__file__).resolve().parent / "model_numbers.json"
# name -> overrides; chosen to reach costing, the DES, collectives, overlap, pipelines and serving.
RUNS = {
    "default": [],
    "tp8_overlap_des": ["model=llama2_70b", "parallel.tp=8", "parallel.overlap_comm=true", "workload.batch=16",
                        "workload.decode_tokens=16"],
    "pp2": ["model=llama2_13b", "parallel.pp=2", "workload.batch=8"],
    "tp2_analytic": ["model=llama2_13b", "parallel.tp=2", "fidelity=analytic"],
    "serving": ["workload=serving", "workload.num_requests=20"],
}
BATCH_KEYS = ("ttft_s", "tpot_s", "total_s", "energy_J", "flops_per_chip", "hbm_bytes_per_chip", "link_bytes_per_chip",
              "chip_cost_usd")
SERVING_KEYS = ("ttft_mean_s", "tpot_mean_s", "e2e_mean_s", "duration_s", "steps", "energy_J", "chip_cost_usd")


def current_numbers() -> dict[str, dict[str, float]]:
    """The recorded keys of each reference run, as the code computes them now."""
    from sim.batch.run import simulate
    from sim.metrics.serving_summary import summarize_serving
    from sim.metrics.summary import summarize
    from sim.serving.run import simulate_serving
    from tests.conftest import make_config

    numbers = {}
    for name, overrides in RUNS.items():
        cfg = make_config(*overrides)
        if cfg.workload.kind.value == "serving":
            summary, keys = summarize_serving(simulate_serving(cfg)), SERVING_KEYS
        else:
            summary, keys = summarize(simulate(cfg)), BATCH_KEYS
        numbers[name] = {key: summary[key] for key in keys}
    return numbers


def main() -> None:
    from sim.engine.model_version import MODEL_VERSION

    body = {"model_version": MODEL_VERSION, "runs": current_numbers()}
    RECORD.write_text(json.dumps(body, indent=2) + "\n")
    print(f"wrote {RECORD} (model version {MODEL_VERSION})")


if __name__ == "__main__":
    main()
