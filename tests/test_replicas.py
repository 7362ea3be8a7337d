"""Data-parallel replicas behind a router: independent servers, arrivals shared by the router."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config.schema import RunError
from sim.serving.run import simulate_serving
from tests.conftest import make_config, serve

LOAD = ("workload=serving", "workload.lengths=lognormal", "workload.length_cv=0.8", "workload.prompt_tokens=256",
        "workload.decode_tokens=48")


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
    """Issue 15's routing property. Why it failed in seed 0 before the issue-12 cost model of MODEL_VERSION 5
    (0.385 s against 0.377 s) and passes with it (0.316 against 0.367 s, 0.368 s at version 6; seeds 1-4:
    0.694/0.893, 0.346/0.524, 0.575/0.628, 0.404/0.510 s): p99 of 200 requests is about the second-worst TTFT,
    set by one or two bursts,
    so a 1 % change in step costs can flip a seed. least_outstanding counts requests (queued, running, swapped),
    not tokens; 127 of the 200 arrivals of seed 0 found a tie, which goes to the lowest replica number. Breaking
    ties by the prompt tokens still to prefill was tried and is not better: it passed seeds 0-4 on the old model
    and failed seed 0 on the new one (0.370 vs 0.367 s); with 1,000 requests per seed (old model) it failed one
    seed in ten, counting requests failed two. Not a law, then, and this test may flip with the cost model."""
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
