"""Data-parallel replicas behind a router: independent servers, arrivals shared by the router."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config.schema import RunError
from sim.metrics.serving_summary import request_columns, summarize_serving
from sim.serving.run import simulate_serving
from tests.conftest import make_config

LOAD = ("workload=serving", "workload.lengths=lognormal", "workload.length_cv=0.8", "workload.prompt_tokens=256",
        "workload.decode_tokens=48")


def serve(*overrides: str):
    result = simulate_serving(make_config(*overrides))
    cols = request_columns(result)
    return result, cols, summarize_serving(result, cols)


@pytest.mark.slow
def test_round_robin_replicas_serve_each_request_as_its_replica_alone_would(tmp_path):
    result, cols, s = serve(*LOAD, "parallel.dp=4", "router=round_robin", "workload.num_requests=120",
                            "workload.rate_per_s=60")
    assert result.chips == 4 and s["completed_requests"] == 120
    assert s["load"]["requests_by_instance"] == {f"replica{k}": 30 for k in range(4)}
    for k in range(4):
        mine = np.flatnonzero(cols["request_id"] % 4 == k)  # the k-th, (k+4)-th ... arrivals
        assert set(cols["instance"][mine]) == {f"replica{k}"}
        trace = tmp_path / f"replica{k}.csv"
        trace.write_text("arrival_s,prompt_tokens,output_tokens\n" + "".join(
            f"{float(cols['arrival_s'][i])!r},{cols['prompt_tokens'][i]},{cols['output_tokens'][i]}\n" for i in mine))
        _, alone, _ = serve(*LOAD, "workload.arrival=trace", f"workload.trace_path={trace}")
        for key in ("ttft_s", "tpot_s", "e2e_s", "queueing_delay_s"):
            assert np.array_equal(alone[key], cols[key][mine], equal_nan=True), (k, key)


@pytest.mark.slow
def test_least_outstanding_beats_round_robin_on_bursty_traffic_in_every_seed():
    """Issue 15's routing property. It failed in seed 0 (0.385 s against 0.377 s) while least_outstanding broke
    ties by replica number: 127 of the 200 arrivals found several replicas with the fewest requests, and the
    lowest-numbered one was often the one busy prefilling a long prompt. Ties now go to the least prompt work
    still to prefill (sim/serving/routers.py); p99 TTFT, least_outstanding vs round_robin, seeds 0-4:
    0.339/0.377, 0.764/0.919, 0.311/0.526, 0.603/0.637, 0.409/0.521 s. Not a law (the seeds are the issue's
    first five, not chosen): p99 of 200 requests is about the second-worst one, and in seeds 0-10 seed 8 goes
    the other way (0.334 vs 0.239 s; before the change seeds 0 and 8 did). With 1,000 requests per seed it
    holds in seeds 0-8 and not in seed 9 (0.906 vs 0.807 s; before the change it failed in seeds 3 and 6)."""
    bursty = (*LOAD, "parallel.dp=4", "workload.arrival=gamma", "workload.cv=4", "workload.length_cv=1",
              "workload.prompt_tokens=512", "workload.decode_tokens=64", "workload.num_requests=200",
              "workload.rate_per_s=40", "scheduler.max_batch=8")
    for seed in range(5):
        p99 = {router: serve(*bursty, f"router={router}", f"seed={seed}")[2]["ttft_p99_s"]
               for router in ("round_robin", "least_outstanding")}
        assert p99["least_outstanding"] < p99["round_robin"], (seed, p99)


@pytest.mark.parametrize("router", ["least_outstanding", "least_kv", "power_of_two"])
def test_every_router_spreads_the_work_and_completes_it(router):
    result, cols, s = serve(*LOAD, "parallel.dp=3", f"router={router}", "workload.num_requests=90",
                            "workload.rate_per_s=45")
    load = s["load"]
    assert s["completed_requests"] == 90 and sum(load["requests_by_instance"].values()) == 90
    assert all(n > 0 for n in load["requests_by_instance"].values()) and load["request_imbalance"] >= 1
    assert s["run"]["replicas"] == 3 and result.chips == 3
    assert sum(result.busy_by.values()) == pytest.approx(result.busy_s)


@pytest.mark.slow
def test_more_replicas_never_serve_the_same_stream_slower():
    p99 = [serve(*LOAD, f"parallel.dp={dp}", "workload.num_requests=120", "workload.rate_per_s=60")[2]["e2e_p99_s"]
           for dp in (1, 2)]
    assert p99[1] < p99[0]


def test_replicas_of_a_disaggregated_server_are_refused():
    with pytest.raises(RunError, match="parallel.dp=2 replicates a whole server"):
        simulate_serving(make_config("workload=serving", "parallel.dp=2", "scheduler=disaggregated"))
