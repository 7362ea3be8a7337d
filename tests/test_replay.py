"""The one replay loop: pipeline sends as ops, resources from one declaration, time by bound as
exclusive intervals, and exact event counts."""

from __future__ import annotations

import dataclasses

import networkx as nx
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from sim.batch.run import simulate
from sim.config.schema import Fidelity, RunError
from sim.engine.analytic import simulate_analytic
from sim.engine.bounds import PARTS, time_by_bound
from sim.engine.costing import Bound, Coster
from sim.engine.des import simulate_des
from sim.engine.pipeline import simulate_pipeline
from sim.engine.records import HostCosts
from sim.engine.resources import RESOURCES, Resource, utilisation
from sim.metrics.summary import ops_columns, summarize
from sim.output.trace import chrome_trace
from tests.conftest import make_config
from tests.test_engine import CHIP, _pass, _stream
from workloads.graph import Execution, Phase, build_pass
from workloads.ops import Op, OpKind, Role, Unit

# Exact SimPy event counts, as SimPy guards its own engine against silent changes. Update them only
# on purpose, when a change to the engine is meant to move them, and say so in the commit.
DEFAULT_RUN_EVENTS = 197  # closed-form decode (issue 16): the 127 decode steps are one mean step; 12418 step by step
LLAMA2_70B_TP8_EVENTS = 261  # closed-form decode: 255 steps as one mean step; 33026 step by step


def test_default_run_event_count():
    assert summarize(simulate(make_config()))["run"]["events"] == DEFAULT_RUN_EVENTS


def test_llama2_70b_tp8_event_count():
    cfg = make_config("model=llama2_70b", "hardware=h100_sxm", "parallel.tp=8", "workload.batch=16",
                      "workload.prompt_tokens=2048", "workload.decode_tokens=256", "fidelity=des")
    assert summarize(simulate(cfg))["run"]["events"] == LLAMA2_70B_TP8_EVENTS


def test_pipeline_sends_are_ops_on_the_links():
    result = simulate(make_config("model=llama2_13b", "parallel.pp=2", "workload.batch=8",
                                  "workload.decode_tokens=8"))
    s = summarize(result)
    assert s["time_by_bound_s"]["interconnect"] > 0
    assert s["link_bytes_per_chip"] > 0 and s["utilisation"]["links"] > 0
    util = utilisation(result.timeline, result.cfg.hardware, result.cfg.precision.activations, 2)
    assert util["link"] == pytest.approx(s["utilisation"]["links"], rel=1e-9)
    assert util["hbm"] == pytest.approx(s["utilisation"]["hbm_bandwidth"], rel=1e-9)
    assert util["matrix"] == pytest.approx(s["utilisation"]["compute_arrays"], rel=1e-9)
    sends = [r for r in result.timeline.records if r.op.kind is OpKind.send]
    assert sends and all(r.stage == 0 for r in sends)  # recorded on the sending stage
    assert len(sends) == 2 * 8  # two micro-batches, a prefill and seven decode steps
    assert all(r.cost.link_bytes > 0 for r in sends)
    ops = pd.DataFrame(ops_columns(result))
    sent = ops[ops["kind"] == "send"]
    assert len(sent) == len(sends) and (sent["energy_J"] > 0).all()
    trace = chrome_trace(ops)
    links = next(e["pid"] for e in trace["traceEvents"] if e["ph"] == "M" and e["args"].get("name") == "links")
    assert any(e["ph"] == "X" and e["pid"] == links and e["name"] == "send" for e in trace["traceEvents"])


def test_pipeline_stages_pay_their_host_costs():
    cfg = make_config("hardware=teaching_npu", "model=llama2_7b")
    ex = Execution()

    def passes(size):
        return [build_pass(cfg.model, ex, Phase.prefill, size, 16, 16),
                build_pass(cfg.model, ex, Phase.decode, size, 1, 17, step=1)]

    host = HostCosts(dispatch_s=0.0, step_s=1e-3)
    bare = simulate_pipeline(passes, 2, 2, 2, Coster(cfg.hardware), 8192.0)
    paid = simulate_pipeline(passes, 2, 2, 2, Coster(cfg.hardware), 8192.0, host)
    assert len(paid.stage_passes) == 2 * 2 * 2 and all(p.host_s == pytest.approx(1e-3) for p in paid.stage_passes)
    assert paid.end_s > bare.end_s
    parts = time_by_bound(paid, 2)
    assert parts["overhead"] >= 2 * 2 * 1e-3 - 1e-12  # each stage waits on its host for each pass
    assert sum(parts.values()) == pytest.approx(paid.end_s, rel=1e-9)


def _tier2_s(chip, op) -> float:
    """A toy second memory tier holding the KV cache, at 50 GB/s."""
    return op.bytes_by_role(Role.kv) / 50e9


TIER2 = dataclasses.replace(Resource.extra("tier2", "KV memory tier", Bound.memory, _tier2_s, "KV bytes"),
                            amount=lambda op, _cost: op.bytes_by_role(Role.kv), peak_per_s=lambda _chip, _a: 50e9)


@pytest.mark.parametrize("fidelity", ["analytic", "des"])
def test_a_resource_is_one_declaration_and_a_cost_function(fidelity):
    cfg = make_config("hardware=teaching_npu", "model=llama2_7b", "workload.batch=4", "workload.prompt_tokens=64",
                      "workload.decode_tokens=4", f"fidelity={fidelity}")
    resources = RESOURCES + (TIER2,)
    plain, tiered = simulate(cfg), simulate(cfg, resources)
    work = sum(_tier2_s(None, r.op) * r.count for r in tiered.timeline.records)
    assert work > 0 and tiered.timeline.busy_s["tier2"] == pytest.approx(work, rel=1e-9)
    assert tiered.timeline.end_s > plain.timeline.end_s  # attention now waits on the slow tier
    s = summarize(tiered)
    assert s["busy_fraction"]["tier2"] == pytest.approx(work / s["total_s"], rel=1e-9)
    assert s["utilisation_by_resource"]["tier2"] == pytest.approx(work / s["total_s"], rel=1e-9)
    assert set(s["utilisation_by_resource"]) == {"matrix", "vector", "hbm", "link", "tier2"}
    assert s["utilisation_by_resource"]["hbm"] == pytest.approx(s["utilisation"]["hbm_bandwidth"], rel=1e-9)
    assert sum(s["time_by_bound_s"].values()) == pytest.approx(s["total_s"], rel=1e-9)
    trace = chrome_trace(pd.DataFrame(ops_columns(tiered)), resources=resources)
    pid = next(e["pid"] for e in trace["traceEvents"] if e["ph"] == "M" and e["args"].get("name") == "KV memory tier")
    assert any(e["ph"] == "X" and e["pid"] == pid and e["cat"] == "attention" for e in trace["traceEvents"])


BASES: dict = {}  # composed configs, reused across examples (composing through Hydra is slow)


def _base(*overrides: str):
    if overrides not in BASES:
        BASES[overrides] = make_config(*overrides)
    return BASES[overrides]


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(model=st.sampled_from(["llama2_7b", "mixtral_8x7b"]), hardware=st.sampled_from(["teaching_npu", "h100_sxm"]),
       layers=st.integers(1, 4), batch=st.integers(1, 6), prompt=st.integers(1, 96), decode=st.integers(1, 5),
       tp=st.sampled_from([1, 2, 4]), pp=st.sampled_from([1, 1, 2, 3]), micro=st.integers(0, 3),
       overlap=st.booleans(), des=st.booleans(), eager=st.booleans())
def test_time_by_bound_parts_add_up_to_the_total(model, hardware, layers, batch, prompt, decode, tp, pp, micro,
                                                 overlap, des, eager):
    base = _base(f"model={model}", f"hardware={hardware}")
    eager = eager and pp == 1  # the combinations the config accepts
    try:
        cfg = dataclasses.replace(
            base, model=dataclasses.replace(base.model, num_layers=layers),
            workload=dataclasses.replace(base.workload, batch=batch, prompt_tokens=prompt, decode_tokens=decode),
            parallel=dataclasses.replace(base.parallel, tp=tp, pp=pp, microbatches=micro, overlap_comm=overlap,
                                         overlap_chunks=2 if overlap else 0,
                                         ep=tp if model == "mixtral_8x7b" and overlap else 1),
            runtime=_base("runtime=vllm_eager" if eager else "runtime=graphs").runtime,
            fidelity=Fidelity.des if des else Fidelity.analytic)
        s = summarize(simulate(cfg))
    except RunError:
        assume(False)
    event(f"pp={cfg.parallel.pp} overlap={overlap} {model} {cfg.fidelity.value} eager={eager}")
    parts = s["time_by_bound_s"]
    assert set(parts) == set(PARTS)
    assert all(v >= 0 for v in parts.values())
    assert sum(parts.values()) == pytest.approx(s["total_s"], rel=1e-9)


def test_concurrent_ops_share_the_instants_they_overlap():
    """A memory-bound and a compute-bound op side by side: while both run each gets half of the
    time; then the one left gets all of it (teaching chip of test_engine: 1 TB/s, 1 GHz)."""
    dag = nx.DiGraph()
    dag.add_node("a", op=_stream("a", 2e9))  # 2 ms of HBM
    dag.add_node("b", op=Op("b", OpKind.mlp_up, Unit.matrix, 2.0 * 128 * 128 * 10**6, m=128, n=128, k=10**6))
    for fidelity in (simulate_des, simulate_analytic):
        tl = fidelity([_pass(dag)], Coster(CHIP))
        end = {r.op.name: r.end_s for r in tl.records}
        start = {r.op.name: r.start_s for r in tl.records}
        parts = time_by_bound(tl)
        if fidelity is simulate_des:  # side by side from 0
            assert parts["compute"] == pytest.approx(end["b"] / 2, rel=1e-12)
            assert parts["memory"] == pytest.approx(end["a"] - end["b"] / 2, rel=1e-12)
        else:  # one after the other: each op's own time
            assert parts["compute"] == pytest.approx(end["b"] - start["b"], rel=1e-12)
            assert parts["memory"] == pytest.approx(end["a"] - start["a"], rel=1e-12)
        assert sum(parts.values()) == pytest.approx(tl.end_s, rel=1e-12)


@pytest.mark.parametrize("overrides", [("hardware=teaching_npu", "model=llama2_7b", "parallel.tp=2"),
                                       ("model=llama2_13b", "runtime=vllm_eager", "workload.batch=4")])
def test_fidelities_split_the_time_alike_where_nothing_overlaps(overrides):
    runs = [summarize(simulate(make_config(*overrides, "workload.decode_tokens=8", f"fidelity={f}")))
            for f in ("analytic", "des")]
    ana, des = (s["time_by_bound_s"] for s in runs)
    assert des == pytest.approx(ana, rel=1e-9)
    assert ana["overhead"] > 0 if "runtime=vllm_eager" in overrides else ana["interconnect"] > 0
