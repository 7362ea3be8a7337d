"""The discrete-event engine: processor sharing, contention, agreement with the analytic path."""

from __future__ import annotations

import networkx as nx
import pytest
import simpy

from hwmodels.chip import HardwareConfig
from sim.engine.analytic import simulate_analytic
from sim.engine.costing import Bound, Coster
from sim.engine.des import CountingEnvironment, simulate_des
from sim.engine.resources import SharedServer
from workloads.graph import PassGraph, Phase
from workloads.ops import Op, OpKind, Role, Tensor, Unit


def _serve(jobs: list[tuple[float, float]]) -> list[float]:
    """Finish times of jobs (arrival_s, work_s) on one processor-sharing server."""
    env = simpy.Environment()
    server = SharedServer(env, "s")
    finish = [None] * len(jobs)

    def job(i, arrival, work):
        yield env.timeout(arrival)
        yield server.submit(work)
        finish[i] = env.now

    for i, (arrival, work) in enumerate(jobs):
        env.process(job(i, arrival, work))
    env.run()
    return finish


def test_one_job_takes_its_work():
    assert _serve([(0.0, 3.0)]) == [3.0]


def test_two_equal_jobs_share_the_server():
    assert _serve([(0.0, 1.0), (0.0, 1.0)]) == pytest.approx([2.0, 2.0])


def test_staggered_arrival_closed_form():
    # A (work 2) alone for 1 s -> 1 left; then A and B (work 1) share: both finish 2 s later.
    assert _serve([(0.0, 2.0), (1.0, 1.0)]) == pytest.approx([3.0, 3.0])
    # A (work 3), B (work 1) at t=1: A has 2 left; shared until B done at t=3 (A has 1 left); A ends at t=4.
    assert _serve([(0.0, 3.0), (1.0, 1.0)]) == pytest.approx([4.0, 3.0])


def test_work_is_conserved_and_busy_time_counted():
    env = simpy.Environment()
    server = SharedServer(env, "s")
    for w in (0.5, 1.5, 2.0):
        server.submit(w)
    env.run()
    assert env.now == pytest.approx(4.0)  # a work-conserving server finishes all work at sum(work)
    assert server.busy_s == pytest.approx(4.0) and server.work_s == pytest.approx(4.0)


CHIP = HardwareConfig(name="t", num_cores=1, array_rows=128, array_cols=128, freq_GHz=1.0, hbm_bandwidth_GBps=1000.0,
                      matmul_efficiency=1.0, vector_efficiency=1.0, hbm_efficiency=1.0, hbm_latency_us=0.0,
                      kernel_overhead_us=1.0, matmul_overhead_cycles=0.0)


def _stream(name: str, nbytes: float) -> Op:
    return Op(name, OpKind.residual, Unit.vector, 0.0, (Tensor("x", nbytes, Role.activation),))


def _pass(layer: nx.DiGraph, layers: int = 1) -> PassGraph:
    return PassGraph(Phase.prefill, 0, 1, 1, 1, layers, nx.DiGraph(), layer, nx.DiGraph())


def test_parallel_branches_share_hbm_bandwidth():
    dag = nx.DiGraph()
    for name in ("a", "b"):
        dag.add_node(name, op=_stream(name, 1e9))  # 1 ms each at 1 TB/s
    des = simulate_des([_pass(dag)], Coster(CHIP))
    ana = simulate_analytic([_pass(dag)], Coster(CHIP))
    # together they move 2 GB through one 1 TB/s HBM after one 1 us launch each (in parallel)
    assert des.end_s == pytest.approx(1e-6 + 2e-3)
    assert ana.end_s == pytest.approx(2 * (1e-6 + 1e-3))  # the analytic path runs them one after another
    assert des.busy_s["hbm"] == pytest.approx(2e-3)


def test_des_matches_analytic_on_a_chain_and_repeats_layers():
    dag = nx.DiGraph()
    dag.add_node("a", op=_stream("a", 1e9))
    dag.add_node("b", op=Op("b", OpKind.mlp_up, Unit.matrix, 2.0 * 128 * 128 * 4096, m=128, n=128, k=4096))
    dag.add_edge("a", "b")
    des = simulate_des([_pass(dag, layers=10)], Coster(CHIP))
    ana = simulate_analytic([_pass(dag, layers=10)], Coster(CHIP))
    assert des.end_s == pytest.approx(ana.end_s, rel=1e-12)
    compute = (4096 + 128 + 128) / 1e9  # one 128x128 tile: k steps plus fill and drain
    assert des.end_s == pytest.approx(10 * (1e-6 + 1e-3 + 1e-6 + compute))
    assert des.busy_s["hbm"] == pytest.approx(10 * 1e-3)
    assert des.busy_s["matrix"] == pytest.approx(10 * compute)
    assert [r.count for r in des.records] == [10, 10]


def test_event_count_does_not_grow_with_layers():
    dag = nx.DiGraph()
    dag.add_node("a", op=_stream("a", 1e6))
    few = simulate_des([_pass(dag, layers=2)], Coster(CHIP)).events
    many = simulate_des([_pass(dag, layers=200)], Coster(CHIP)).events
    assert few == many
    assert few < 20  # process start, launch delay, HBM work, finish: a handful per op


def test_counting_environment_counts():
    env = CountingEnvironment()
    env.timeout(1)
    env.timeout(2)
    env.run()
    assert env.events_processed == 2


def test_bound_is_the_largest_need():
    cost = Coster(CHIP)(_stream("a", 1e3))  # 1 ns of memory, 1 us of launch
    assert cost.bound is Bound.overhead
    assert Coster(CHIP)(_stream("a", 1e9)).bound is Bound.memory


def test_a_run_of_days_on_a_very_slow_chip_ends():
    """At 1 MB/s of HBM a decode step takes hours: the processor-sharing server's last sliver of work came out
    below the clock's resolution at that time, so time never advanced and the run looped for ever (independent
    review). It ends, and the DES agrees with the analytic path."""
    from sim.batch.run import simulate
    from sim.metrics.summary import summarize
    from tests.conftest import make_config
    slow = ("hardware.hbm_bandwidth_GBps=0.001", "workload.batch=1", "workload.prompt_tokens=16",
            "workload.decode_tokens=2")
    import signal

    def stalled(signum, frame):
        raise TimeoutError("the DES did not end within 60 s: the run stalls")

    before = signal.signal(signal.SIGALRM, stalled)  # a regression fails here rather than hanging the suite
    signal.alarm(60)
    try:
        des, analytic = (summarize(simulate(make_config(*slow, f"fidelity={f}"))) for f in ("des", "analytic"))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
    assert des["total_s"] > 3600 and des["total_s"] == pytest.approx(analytic["total_s"], rel=1e-6)
