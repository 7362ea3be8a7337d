"""Decode in closed form (sim/batch/closed_form.py): the mean steps of a few segments give the numbers of
the step-by-step replay (analytic to 1e-9 relative, the discrete-event path to 1e-6), op by op."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.batch.run import simulate
from sim.metrics.economics import op_energies_J
from sim.metrics.summary import batch_summary, ops_columns
from tests.conftest import make_config
from workloads.decode_steps import at_context, mean_op, pieces
from workloads.graph import Phase, build_pass

SKIP = ("wall", "events", "distinct_ops", "passes")  # how the run was simulated, not what it found


def _numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and not any(s in key for s in SKIP):
            out[f"{prefix}{key}"] = float(value)
    return out


def _by_op(result) -> dict[tuple[str, str], tuple[float, ...]]:
    """Per (phase, op): instances, total time, FLOPs, HBM bytes, dynamic energy; summed over the run."""
    energy = op_energies_J(result)
    acc: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * 5)
    for r, joules in zip(result.timeline.records, energy, strict=True):
        row = acc[(r.phase.value, r.op.name)]
        for i, value in enumerate((r.count, r.total_s, r.op.flops * r.count, r.cost.hbm_bytes * r.count,
                                   joules * r.count)):
            row[i] += value
    return {k: tuple(v) for k, v in acc.items()}


def assert_same(overrides: tuple[str, ...], rel: float) -> None:
    cfg = make_config(*overrides)
    closed, steps = simulate(cfg), simulate(cfg, step_by_step=True)
    a, b = _numbers(batch_summary(closed).as_dict()), _numbers(batch_summary(steps).as_dict())
    assert a.keys() == b.keys()
    for key, value in b.items():
        assert a[key] == pytest.approx(value, rel=rel, abs=1e-300), key
    ops_a, ops_b = _by_op(closed), _by_op(steps)
    assert ops_a.keys() == ops_b.keys()
    for key, values in ops_b.items():
        assert ops_a[key] == pytest.approx(values, rel=rel), key
    assert sum(p.steps for p in closed.timeline.passes) == len(steps.timeline.passes)


def test_a_decode_step_is_the_template_with_its_attention():
    for model in ("mistral_7b", "gpt_oss_120b"):  # one window everywhere; windows on alternate layers
        cfg = make_config(f"model={model}", "model.sliding_window=40" if model == "mistral_7b" else "seed=0")
        ex, m = cfg.execution(), cfg.model
        template = build_pass(m, ex, Phase.decode, 3, 1, 30, step=1)
        for context in (41, 200):
            built = build_pass(m, ex, Phase.decode, 3, 1, context, step=9)
            made = at_context(template, m, ex, context, 9)
            assert (made.step, made.context) == (9, context)
            assert len(list(made.segments())) == len(list(built.segments()))
            for (name, dag, repeat), (name2, dag2, repeat2) in zip(built.segments(), made.segments(), strict=True):
                assert (name, repeat) == (name2, repeat2)
                assert nx.utils.graphs_equal(nx.DiGraph(dag.edges), nx.DiGraph(dag2.edges))
                assert {n: dag.nodes[n]["op"] for n in dag} == {n: dag2.nodes[n]["op"] for n in dag2}


def test_mean_op_mixes_flops_and_bytes():
    cfg = make_config()
    ex, m = cfg.execution(), cfg.model
    ops = [build_pass(m, ex, Phase.decode, 1, 1, c).layer.nodes["attention"]["op"] for c in (100, 200)]
    mean = mean_op(ops, [0.5, 0.5])
    assert mean.flops == pytest.approx((ops[0].flops + ops[1].flops) / 2)
    assert mean.hbm_bytes == pytest.approx((ops[0].hbm_bytes + ops[1].hbm_bytes) / 2)


def test_pieces_cut_where_a_window_fills_and_a_chunk_restarts():
    cfg = make_config("model=mistral_7b", "model.sliding_window=100")
    assert pieces(cfg.model, cfg.execution(), 50, 300) == [(50, 100), (101, 300)]
    chunked = dataclasses.replace(cfg.model, sliding_window=0, attention_chunk=64)
    assert pieces(chunked, cfg.execution(), 60, 200) == [(60, 64), (65, 128), (129, 192), (193, 200)]


@pytest.mark.parametrize("overrides", [
    ("model=mistral_7b", "model.sliding_window=200", "workload.prompt_tokens=100", "workload.decode_tokens=160",
     "fidelity=analytic"),
    ("runtime=vllm_eager", "workload.decode_tokens=40", "fidelity=analytic"),  # the host's dispatch stalls
])
def test_closed_form_equals_step_by_step_analytic(overrides):
    assert_same(overrides, 1e-9)


def test_closed_form_equals_step_by_step_des():
    assert_same(("workload.decode_tokens=90", "fidelity=des"), 1e-6)


def test_a_closed_form_run_is_a_few_segments_with_their_steps():
    result = simulate(make_config("workload.decode_tokens=128"))
    decode = [p for p in result.timeline.passes if p.phase is Phase.decode]
    assert len(decode) < 5 and sum(p.steps for p in decode) == 127
    ops = ops_columns(result)
    rows = [i for i, (phase, op) in enumerate(zip(ops["phase"], ops["op"], strict=True))
            if phase == "decode" and op == "attention"]
    assert sum(ops["count"][i] for i in rows) == 32 * 127
    assert all(ops["count"][i] == 32 * ops["steps"][i] for i in rows)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    ("workload.batch=3", "attention.kv_block_tokens=0", "workload.decode_tokens=60", "fidelity=analytic"),
    ("model.attention_chunk=64", "workload.prompt_tokens=40", "workload.decode_tokens=100", "fidelity=analytic"),
    ("model=mistral_7b", "model.sliding_window=64", "workload.prompt_tokens=30", "workload.decode_tokens=80",
     "fidelity=des"),
    ("model=gpt_oss_120b", "parallel.tp=4", "workload.decode_tokens=200", "workload.prompt_tokens=64",
     "fidelity=analytic"),  # windows on alternate layers: two attention kinds, one fills at 128 keys
    ("model=jamba_1_5_large", "parallel.tp=8", "precision.weights=fp8", "workload.decode_tokens=50",
     "fidelity=analytic"),  # Mamba layers beside attention
    ("model=mixtral_8x7b", "parallel.tp=2", "parallel.overlap_comm=true", "workload.decode_tokens=50",
     "fidelity=analytic"),
    ("hardware=mi300x", "workload.decode_tokens=40", "fidelity=analytic"),  # no published kernel: step by step
    ("attention.kernel=unfused", "workload.decode_tokens=40", "fidelity=des"),
    ("model=mixtral_8x7b", "parallel.tp=2", "workload.decode_tokens=50", "fidelity=des"),
])
def test_closed_form_equals_step_by_step_wider(overrides):
    assert_same(overrides, 1e-9 if "fidelity=analytic" in overrides else 1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("fidelity", ["analytic", "des"])
def test_mistral_8192_tokens_in_closed_form(fidelity):
    """The issue's case: 8,191 decode steps, window filling at 4,096 keys; a few segments."""
    overrides = ("model=mistral_7b", "workload.decode_tokens=8192", f"fidelity={fidelity}")
    assert len(simulate(make_config(*overrides)).timeline.passes) < 20
    assert_same(overrides, 1e-9 if fidelity == "analytic" else 1e-6)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=st.integers(1, 300), decode=st.integers(2, 70), batch=st.integers(1, 4),
       block=st.sampled_from([0, 7, 16]), window=st.sampled_from([0, 33, 150]),
       fidelity=st.sampled_from(["analytic", "des"]))
def test_closed_form_equals_step_by_step_random(prompt, decode, batch, block, window, fidelity):
    overrides = ("model=mistral_7b", f"model.sliding_window={window}", f"workload.prompt_tokens={prompt}",
                 f"workload.decode_tokens={decode}", f"workload.batch={batch}", f"attention.kv_block_tokens={block}",
                 f"fidelity={fidelity}")
    assert_same(overrides, 1e-9 if fidelity == "analytic" else 1e-6)
    assert math.isfinite(simulate(make_config(*overrides)).timeline.end_s)


def test_a_pass_that_is_not_a_chain_merges_only_inside_a_cache_block(monkeypatch):
    """Branches (MoE, overlapped all-reduces) make a pass's time convex, not affine, in the context: a
    segment then stays inside one cache block and its mean step must sit on the chord of its ends."""
    monkeypatch.setattr("sim.batch.closed_form._is_chain", lambda dag: False)
    overrides = ("workload.decode_tokens=70", "workload.prompt_tokens=20", "fidelity=analytic")
    assert_same(overrides, 1e-9)
    segments = [p for p in simulate(make_config(*overrides)).timeline.passes if p.phase is Phase.decode]
    assert 5 <= len(segments) <= 12  # 69 steps over contexts 21..89: six blocks of 16
