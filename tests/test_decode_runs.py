"""Runs of decode-only steps advanced together (sim/serving/decode_runs.py) give the step-by-step
simulation's numbers bit for bit: every step row, every request's times, every total."""

from __future__ import annotations

import numpy as np
import pytest

from sim.serving.run import simulate_serving
from sim.serving.server import Server
from tests.conftest import make_config

SMALL = ("workload=serving", "workload.prompt_tokens=200", "workload.decode_tokens=48", "workload.num_requests=120")
TOTALS = ("busy_s", "dynamic_J", "matrix_flops", "hbm_bytes", "queue_area", "system_area", "end_s", "busy_by",
          "preemptions", "swapped_bytes", "distinct_steps", "prefix_cache")
PER_REQUEST = ("instance", "first_scheduled_s", "first_token_s", "finish_s", "generated", "preemptions", "blocks",
               "kv_tokens", "cached_prompt")


def both(monkeypatch, *overrides: str):
    cfg = make_config(*SMALL, *overrides)
    with monkeypatch.context() as m:
        m.setattr(Server, "runs", False)
        slow = simulate_serving(cfg)
    return slow, simulate_serving(cfg)


def assert_same(slow, fast) -> None:
    assert list(fast.steps) == list(slow.steps)
    for name, column in slow.steps.items():  # every row, in the same order, every float to the bit
        assert fast.steps[name].dtype == column.dtype and np.array_equal(fast.steps[name], column), name
    for name in TOTALS:
        assert getattr(fast, name) == getattr(slow, name), name
    for a, b in zip(slow.requests, fast.requests, strict=True):
        assert [getattr(b, f) for f in PER_REQUEST] == [getattr(a, f) for f in PER_REQUEST], a.rid


@pytest.mark.parametrize("overrides", [
    (),  # light load: runs between arrivals, each ending at a completion or spanning an arrival
    ("workload.rate_per_s=60", "workload.lengths=lognormal", "scheduler.kv_cache_GB=0.4"),  # queue, preemptions
    # a lone instance's runs go on past completions: several in one step, and bursts of arrivals
    ("workload.arrival=offline", "workload.lengths=lognormal", "scheduler.max_batch=64"),
    ("workload.arrival=gamma", "workload.cv=3", "workload.lengths=lognormal", "workload.rate_per_s=15"),
])
def test_runs_of_decode_steps_are_the_step_by_step_simulation(monkeypatch, overrides):
    slow, fast = both(monkeypatch, *overrides)
    assert fast.events < slow.events / 2 or overrides  # a light load is mostly runs
    assert_same(slow, fast)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    ("scheduler=chunked_prefill", "scheduler.token_budget=64", "scheduler.max_batch=8", "workload.rate_per_s=40"),
    ("scheduler.admission=guaranteed", "scheduler.kv_cache_GB=0.4", "workload.rate_per_s=60"),
    ("scheduler.preemption=swap", "scheduler.kv_cache_GB=0.3", "workload.rate_per_s=60"),
    ("parallel.dp=3", "router=least_kv", "workload.arrival=gamma", "workload.cv=4", "workload.rate_per_s=40"),
    ("parallel.dp=4", "router=power_of_two", "workload.arrival=offline", "workload.lengths=lognormal"),
    ("workload.arrival=closed", "workload.concurrency=8"),
    ("workload.shared_prefix_tokens=64", "scheduler.prefix_caching=true", "workload.rate_per_s=30"),
])
def test_runs_match_step_by_step_under_every_scheduler_and_router(monkeypatch, overrides):
    assert_same(*both(monkeypatch, *overrides))


def test_a_run_stops_where_simpy_fires_an_arrival_not_at_its_written_time(monkeypatch, tmp_path):
    """SimPy fires an arrival at ``previous + (at - previous)``, here an ulp below the trace's 0.22020180105052686
    and exactly where a decode step ends: step by step the arrival comes first and joins that step's successor, so
    the run must stop at the firing time, not at the written one (found by an independent review)."""
    trace = tmp_path / "tie.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0.0,10,3000\n0.016501801776355254,10,2000\n"
                     "0.22020180105052686,10,5\n")
    assert 0.016501801776355254 + (0.22020180105052686 - 0.016501801776355254) != 0.22020180105052686
    slow, fast = both(monkeypatch, "workload.arrival=trace", f"workload.trace_path={trace}",
                      "workload.num_requests=null")
    assert_same(slow, fast)
    assert slow.steps["prefill_tokens"].tolist().count(10) == 3  # the third request's prefill: its own step


def test_an_instance_rests_from_runs_too_short_for_their_batch_with_the_same_numbers(monkeypatch):
    """Over a wide batch a run of a few steps costs more than stepping, so after one the instance goes step by step
    for a while (``Instance.rest``); every number stays the step-by-step simulation's."""
    tries = []  # (the instance's rest before the call, whether a run came of it), in the run-by-run simulation only
    real = Server._decode_run

    def spy(self, inst):
        rest = inst.rest
        run = real(self, inst)
        if self.runs:
            tries.append((rest, run is not None))
        return run

    monkeypatch.setattr(Server, "_decode_run", spy)
    slow, fast = both(monkeypatch, "workload.rate_per_s=300", "workload.num_requests=500")
    rested = next(i for i, (rest, _) in enumerate(tries) if rest > 0)
    assert any(rest == 0 and ran for rest, ran in tries[rested:])  # it rested, then ran runs again
    assert_same(slow, fast)
