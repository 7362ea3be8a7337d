"""Chunked overlap of tensor-parallel all-reduces with the GEMMs that produce them (parallel.overlap_comm).

A collective can only reduce what its producer has already computed: the GEMM is split into
pieces and piece i's all-reduce runs beside piece i+1's GEMM; the last piece's reduction is
exposed. These tests hold causality over random configs at both fidelities, check the graph's
pieces add up to the whole, and check the overlapped time in closed form on the teaching chip.
"""

from __future__ import annotations

import dataclasses

import networkx as nx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sim import simulate
from sim.batch.run import passes
from sim.config.errors import RunError
from sim.config.execution import Fidelity
from sim.engine.analytic import simulate_analytic
from sim.engine.costing import Coster
from sim.engine.des import simulate_des
from tests.conftest import make_config
from workloads.blocks import _split_gemm, overlap_chunks
from workloads.graph import Execution, Phase, build_pass
from workloads.ops import OpKind, Role, Tensor, matmul

BASES: dict = {}  # composed configs, reused across examples (composing through Hydra is slow)
REL = 1e-9


def _base(*overrides: str):
    if overrides not in BASES:
        BASES[overrides] = make_config(*overrides)
    return BASES[overrides]


# The ops whose outputs a layer's all-reduce sums (whole, or the piece with the same number).
PRODUCERS = {"attn_allreduce": {OpKind.out_proj},
             "mlp_allreduce": {OpKind.mlp_down, OpKind.expert_down, OpKind.alltoall}}


def _producers(name: str, recs: dict) -> list:
    """Records of the ops that produce the input of the layer all-reduce ``name`` (or of its piece),
    from what the ops compute, not from the DAG's edges."""
    base, _, piece = name.partition(".")
    return [r for r in recs.values() if r.op.kind in PRODUCERS[base] and r.op.name.partition(".")[2] in ("", piece)]


def _dags(cfg) -> dict:
    """(phase, step, segment) -> the DAG the run replayed."""
    return {(g.phase, g.step, name): dag for g in passes(cfg) for name, dag, _ in g.segments()}


@pytest.mark.slow
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(model=st.sampled_from(["llama2_7b", "mixtral_8x7b", "llama3_8b"]),
       hardware=st.sampled_from(["teaching_npu", "a100_80gb"]), layers=st.integers(1, 3),
       batch=st.integers(1, 8), prompt=st.integers(1, 160), decode=st.integers(1, 4), tp=st.sampled_from([2, 4, 8]),
       overlap=st.booleans(), chunks=st.integers(0, 5), des=st.booleans(), slow_link=st.booleans())
def test_no_op_starts_before_its_producers_finish(model, hardware, layers, batch, prompt, decode, tp, overlap, chunks,
                                                  des, slow_link):
    """From the op records: every op starts when all its DAG predecessors have ended, takes at least
    its time alone, and a chunk's all-reduce ends at least its own time after its GEMM piece."""
    base = _base(f"model={model}", f"hardware={hardware}",
                 *(("hardware.link_bandwidth_GBps=5",) if slow_link else ()))
    try:
        cfg = dataclasses.replace(
            base, model=dataclasses.replace(base.model, num_layers=layers),
            workload=dataclasses.replace(base.workload, batch=batch, prompt_tokens=prompt, decode_tokens=decode),
            parallel=dataclasses.replace(base.parallel, tp=tp, overlap_comm=overlap,
                                         overlap_chunks=chunks if overlap else 0),
            fidelity=Fidelity.des if des else Fidelity.analytic)
        result = simulate(cfg)
    except RunError:
        assume(False)
    dags = _dags(cfg)
    by_segment: dict = {}
    for r in result.timeline.records:
        by_segment.setdefault((r.phase, r.step, r.segment), {})[r.op.name] = r
    pieces = 0
    for key, recs in by_segment.items():
        dag = dags[key]
        assert set(recs) == set(dag.nodes)
        for name, r in recs.items():
            assert r.duration_s >= r.cost.time_s * (1 - REL)
            for pred in dag.predecessors(name):
                assert r.start_s >= recs[pred].end_s - REL * r.end_s, f"{name} starts before {pred} ends"
            if r.op.kind is OpKind.allreduce and key[2] == "layer":  # after what makes its input
                made = _producers(name, recs)
                assert made and all(r.start_s >= p.end_s - REL * r.end_s for p in made), f"{name} before its input"
            if r.op.kind is OpKind.allreduce and "." in name:  # a piece: after its own GEMM piece
                pieces += 1
                gemm = next(p for p in dag.predecessors(name) if dag.nodes[p]["op"].kind is not OpKind.allreduce)
                assert gemm.rsplit(".", 1)[1] == name.rsplit(".", 1)[1]
                assert r.end_s >= recs[gemm].end_s + r.cost.time_s * (1 - REL)
    if overlap and chunks > 1:  # every layer's out_proj has more columns than pieces
        assert pieces > 0
    if not overlap or chunks == 1:  # chunks=0 picks pieces from the shapes and the chip's saturation size
        assert pieces == 0


@settings(max_examples=80, deadline=None)
@given(m=st.integers(1, 600), n=st.integers(1, 600), k=st.integers(1, 300), chunks=st.integers(2, 6),
       weight_only=st.booleans())
def test_pieces_add_up_to_the_gemm(m, n, k, chunks, weight_only):
    """FLOPs, outputs and the split operand add up; the operand every piece reads again is the smaller one."""
    x, w, y = (Tensor("x", 2.0 * m * k, Role.activation), Tensor("w", 2.0 * k * n, Role.weight),
               Tensor("y", 2.0 * m * n, Role.activation))
    op = matmul("mlp_down", OpKind.mlp_down, m, n, k, Execution().activations, [x, w], [y])
    if weight_only:
        op = dataclasses.replace(op, dequant_flops=2.0 * k * n * -(-m // 128))
    chunks = min(chunks, max(m, n))
    pieces = _split_gemm(op, chunks)
    assert len(pieces) == chunks and [p.name for p in pieces] == [f"mlp_down.{i}" for i in range(chunks)]
    assert sum(p.flops for p in pieces) == pytest.approx(op.flops, rel=REL)
    assert sum(p.writes[0].nbytes for p in pieces) == pytest.approx(y.nbytes, rel=REL)
    along_n = n >= m
    assert all((p.m, p.k) == (m, k) if along_n else (p.n, p.k) == (n, k) for p in pieces)
    split, again = (1, 0) if along_n else (0, 1)  # weights split along N, activations along M
    assert sum(p.reads[split].nbytes for p in pieces) == pytest.approx(op.reads[split].nbytes, rel=REL)
    assert all(p.reads[again] == op.reads[again] for p in pieces)
    assert sum(p.dequant_flops for p in pieces) >= op.dequant_flops * (1 - REL)


def _teaching(link_GBps: float, chunks: int):
    cfg = make_config("hardware=teaching_npu", "model=llama2_7b", "parallel.tp=2", "parallel.overlap_comm=true",
                      f"parallel.overlap_chunks={chunks}", f"hardware.link_bandwidth_GBps={link_GBps}")
    return cfg, build_pass(cfg.model, cfg.execution(), Phase.decode, batch=4, new_tokens=1, context=128, step=1)


@pytest.mark.parametrize("link_GBps", [1000, 0.5])  # GEMM pieces longer than the reductions, then shorter
def test_chunked_overlap_time_in_closed_form(link_GBps):
    """Teaching chip, Llama-2-7B TP2 decode of 4 sequences, MLP down projection (4 x 4096 x 5504 per
    chip) in c = 4 equal pieces of g seconds, each reduced in r seconds (costed alone). On the
    analytic streams the block takes ``g + r + (c - 1) max(g, r)``: the first piece's GEMM, then
    c reductions or c - 1 GEMMs, whichever is longer, then the last piece's reduction, which is
    what stays exposed after the last GEMM when ``g >= r``."""
    c = 4
    cfg, graph = _teaching(link_GBps, c)
    coster = Coster(cfg.hardware)
    g, r = (coster(graph.layer.nodes[n]["op"]).time_s for n in ("mlp_down.0", "mlp_allreduce.0"))
    assert (g > r) == (link_GBps == 1000)
    ana = {x.op.name: x for x in simulate_analytic([graph], coster).records if x.segment == "layer"}
    block = ana[f"mlp_allreduce.{c - 1}"].end_s - ana["mlp_down.0"].start_s
    assert block == pytest.approx(g + r + (c - 1) * max(g, r), rel=1e-12)
    exposed = ana[f"mlp_allreduce.{c - 1}"].end_s - ana[f"mlp_down.{c - 1}"].end_s
    assert exposed == pytest.approx(r if g >= r else c * r - (c - 1) * g, rel=1e-12)
    # the whole layer: every other op one after another, plus the two overlapped blocks
    layer = max(x.end_s for x in ana.values()) - min(x.start_s for x in ana.values())
    go, ro = (coster(graph.layer.nodes[n]["op"]).time_s for n in ("out_proj.0", "attn_allreduce.0"))
    rest = sum(coster(op).time_s for _, op in graph.layer.nodes(data="op") if "." not in op.name)
    assert layer == pytest.approx(rest + go + ro + (c - 1) * max(go, ro) + g + r + (c - 1) * max(g, r), rel=1e-12)
    # with HBM shared between a piece's all-reduce and the next GEMM, the DES is no faster than the
    # analytic streams and no slower than the pieces one after another
    des = {x.op.name: x for x in simulate_des([graph], coster).records if x.segment == "layer"}
    des_block = des[f"mlp_allreduce.{c - 1}"].end_s - des["mlp_down.0"].start_s
    assert block * (1 - 1e-12) <= des_block <= c * (g + r)


def test_one_piece_is_the_graph_without_overlap():
    """overlap_chunks=1, or the default rule on decode steps (512 KB all-reduces, far below the chip's
    saturation size), builds exactly the graph that overlap_comm=false builds; the prefill's 268 MB
    all-reduces split by default."""
    plain = make_config("model=llama2_70b", "parallel.tp=8", "workload.batch=32")
    for overrides in (("parallel.overlap_chunks=1",), ()):
        cfg = make_config("model=llama2_70b", "parallel.tp=8", "workload.batch=32", "parallel.overlap_comm=true",
                          *overrides)
        pairs = list(zip(passes(plain), passes(cfg), strict=True))
        if not overrides:
            prefill = pairs.pop(0)[1]
            assert {"mlp_down.0", "mlp_down.1", "mlp_allreduce.1"} <= set(prefill.layer.nodes)
        for a, b in pairs:
            for (_, da, _), (_, db, _) in zip(a.segments(), b.segments(), strict=True):
                assert nx.utils.graphs_equal(da, db)


def test_default_pieces_follow_the_payload():
    """min(4, payload // overlap_min_chunk_bytes), at least 1, at most the rows of the split dimension."""
    ex = Execution(tp=8, overlap_comm=True, overlap_min_chunk_bytes=50e6)
    a, w = Tensor("a", 1.0, Role.activation), Tensor("w", 1.0, Role.weight)
    gemm = matmul("mlp_down", OpKind.mlp_down, 4096, 8192, 3584, ex.activations, [a, w], [a])
    assert [overlap_chunks(ex, gemm, p) for p in (16e3, 49e6, 100e6, 160e6, 1e9)] == [1, 1, 2, 3, 4]
    assert overlap_chunks(dataclasses.replace(ex, overlap_chunks=6), gemm, 16e3) == 6
    assert overlap_chunks(dataclasses.replace(ex, overlap_comm=False), gemm, 1e9) == 1
    assert overlap_chunks(dataclasses.replace(ex, overlap_chunks=64), dataclasses.replace(gemm, m=1, n=8), 1e9) == 8


@pytest.mark.parametrize("overrides, words", [
    (("parallel.overlap_chunks=4",), "set parallel.overlap_comm=true"),
    (("parallel.overlap_comm=true", "parallel.overlap_chunks=-1"), "must be 0"),
    (("parallel.overlap_comm=true", "parallel.overlap_chunks=65"), "to 64"),
])
def test_bad_chunk_counts_are_one_line_errors(overrides, words):
    with pytest.raises(RunError, match=words):
        make_config(*overrides)
