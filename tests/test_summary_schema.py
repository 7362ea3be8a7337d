"""One result schema: batch and serving summaries share their economics, energy rule and registries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim.config.schema import SchedulerKind, WorkloadKind
from sim.engine.op_energy import record_energy
from sim.metrics.run_summary import Summary
from sim.metrics.serving_summary import serving_summary, summarize_serving
from sim.metrics.shared import TOKEN_ID_BYTES, chip_economics
from sim.metrics.summary import batch_summary, summarize
from sim.plots.charts import CHARTS, Chart
from sim.serving.registry import SCHEDULERS
from sim.studies.kinds import WORKLOADS, workload
from tests.conftest import make_config

ROOT = Path(__file__).resolve().parent.parent
TEACHING = ("hardware=teaching_npu", "model=llama2_7b", "workload.batch=4", "workload.prompt_tokens=128",
            "workload.decode_tokens=4", "fidelity=analytic")
SERVING = ("workload=serving", "workload.prompt_tokens=128", "workload.decode_tokens=8", "workload.num_requests=20")
SHARED = ("energy_J", "avg_power_W", "joules_per_output_token", "chip_area_mm2", "chip_cost_usd", "usd_per_chip_hour",
          "usd_per_million_output_tokens", "usd_per_million_tokens", "output_tokens_per_s_per_usd",
          "output_tokens_per_s_per_W")


@pytest.fixture(scope="module")
def runs():
    batch = WORKLOADS[WorkloadKind.single_batch].simulate(make_config(*TEACHING, "parallel.tp=2"))
    piped = WORKLOADS[WorkloadKind.single_batch].simulate(make_config(*TEACHING, "parallel.pp=2", "fidelity=des"))
    served = WORKLOADS[WorkloadKind.serving].simulate(make_config(*SERVING))
    return batch, piped, served


def test_both_kinds_give_the_same_typed_summary_with_the_shared_parts(runs):
    batch, _, served = runs
    for result, summary, as_json in ((batch, batch_summary(batch), summarize(batch)),
                                     (served, serving_summary(served), summarize_serving(served))):
        assert isinstance(summary, Summary) and summary.as_dict() == as_json
        for key in SHARED:
            assert as_json[key] > 0, key
        assert set(as_json["utilisation"]) >= {"compute_arrays", "hbm_bandwidth"}
        assert {"energy_J_per_chip", "static_power_W", "by_component_J_per_chip"} <= set(as_json["energy"])
        assert {"chip_area_mm2", "by_part_mm2"} <= set(as_json["area"])
        assert {"run_usd", "usd_per_chip_hour_source", "silicon_usd"} <= set(as_json["cost"])
        run = as_json["run"]
        assert run["hardware"] == result.cfg.hardware.name and run["chips"] == result.chips
    assert batch_summary(batch).kind is WorkloadKind.single_batch
    assert serving_summary(served).kind is WorkloadKind.serving


def _dynamic_J(result) -> float:
    """Dynamic energy of every record (all stages) plus the token IDs to and from the host, one group chip."""
    econ = chip_economics(result.cfg)
    w = result.cfg.workload
    ops = sum(record_energy(r, econ.energy).total_J * r.count for r in result.timeline.records)
    return ops + econ.energy.work(host_bytes=TOKEN_ID_BYTES * w.batch * (w.prompt_tokens + w.decode_tokens)).host_J


@pytest.mark.parametrize("which", [0, 1], ids=["tp2", "pp2"])
def test_batch_energy_is_tp_times_the_records_plus_static_power_of_every_chip(runs, which):
    result = runs[which]
    s = summarize(result)
    static_W = chip_economics(result.cfg).energy.static_W
    expected = result.cfg.parallel.tp * _dynamic_J(result) + result.chips * static_W * s["total_s"]
    assert s["energy_J"] == pytest.approx(expected, rel=1e-12)
    assert s["avg_power_W"] == pytest.approx(s["energy_J"] / result.chips / s["total_s"], rel=1e-12)
    assert sum(s["energy"]["by_component_J_per_chip"].values()) == pytest.approx(s["energy"]["energy_J_per_chip"])


def test_serving_energy_follows_the_same_rule(runs):
    served = runs[2]
    s = summarize_serving(served)
    econ = chip_economics(served.cfg)
    host = econ.energy.work(host_bytes=TOKEN_ID_BYTES * (s["prompt_tokens"] + s["output_tokens"])
                            + served.swapped_bytes, link_bytes=served.moved_bytes).total_J
    static_J = served.chips * econ.energy.static_W * s["duration_s"]
    expected = served.cfg.parallel.tp * (served.dynamic_J + host) + static_J
    assert s["energy_J"] == pytest.approx(expected, rel=1e-12)


def test_registries_cover_every_kind():
    assert set(WORKLOADS) == set(WorkloadKind)
    assert workload("serving") is WORKLOADS[WorkloadKind.serving] is workload(WorkloadKind.serving)
    assert set(SCHEDULERS) == set(SchedulerKind)
    labels = [entry.label for entry in SCHEDULERS.values()]
    assert len(set(labels)) == len(labels) and all(labels)
    assert set(CHARTS) == set(Chart)
    assert len({c.stem for c in CHARTS.values()}) == len(CHARTS)


def test_no_consumer_compares_kinds_as_strings():
    """Workload kinds and schedulers are looked up in their registries (measurement kinds in
    sim/studies/validate.py are another thing)."""
    pattern = re.compile(r"""==\s*["'](serving|single_batch|static|continuous|chunked_prefill|disaggregated)["']"""
                         r"""|["']WorkloadKind\.""")
    hits = [f"{path.relative_to(ROOT)}:{n}" for path in sorted((ROOT / "sim").rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
