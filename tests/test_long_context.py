"""Long contexts: up to a model's published maximum, the KV cache spilled to a host tier, and
context-parallel prefill with ring attention (workloads/context.py)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.links import Collective, collective_time
from sim.batch.run import simulate
from sim.config.errors import RunError
from sim.engine.costing import Bound, Coster
from sim.metrics.summary import summarize
from tests.conftest import make_config
from workloads import Execution, Phase, build_pass
from workloads.context import rank_tokens, ring_block_bytes, step_pairs
from workloads.ops import OpKind, Role

GB = 1e9
QWEN = ("model=qwen2_5_7b_1m", "workload.decode_tokens=4")
QWEN_1M = (*QWEN, "fidelity=analytic")


def _attention_flops(graph) -> float:
    return sum(op.flops * n for op, n in graph.ops() if op.kind is OpKind.attention)


# Context parallelism ------------------------------------------------------------------------------
@pytest.mark.parametrize("cp", [2, 4, 8])
def test_cp_splits_prefill_attention_flops_and_tokens_evenly(cp):
    cfg = make_config("model=llama3_8b", "parallel.tp=2")
    model, ex = cfg.model, cfg.execution()
    one = build_pass(model, ex, Phase.prefill, 2, 4096, 4096)
    split = build_pass(model, dataclasses.replace(ex, cp=cp), Phase.prefill, 2, 4096, 4096)
    assert _attention_flops(split) == pytest.approx(_attention_flops(one) / cp, rel=1e-12)
    assert split.layer.nodes["qkv_proj"]["op"].flops == one.layer.nodes["qkv_proj"]["op"].flops / cp
    sends = [op for op, _ in split.ops() if op.kind is OpKind.send]
    assert len(sends) == cp - 1 and all(op.comm_bytes == ring_block_bytes(model, split_ex(ex, cp), 2, 4096)
                                        for op in sends)


def split_ex(ex: Execution, cp: int) -> Execution:
    return dataclasses.replace(ex, cp=cp)


@given(tokens=st.integers(2, 10**6), cp=st.integers(1, 64))
@settings(max_examples=200, deadline=None)
def test_load_balanced_ring_steps_sum_to_the_causal_total_over_cp(tokens, cp):
    own, peer = step_pairs(tokens, cp)
    padded = rank_tokens(tokens, cp) * cp  # the prompt padded to 2 cp equal chunks
    assert own + (cp - 1) * peer == padded * (padded + 1) / 2 / cp
    assert padded - tokens < 2 * cp


def test_cp_1_is_the_run_without_context_parallelism_bit_for_bit():
    plain = summarize(simulate(make_config("model=llama2_13b", "parallel.tp=2", "fidelity=analytic")))
    same = summarize(simulate(make_config("model=llama2_13b", "parallel.tp=2", "fidelity=analytic", "parallel.cp=1",
                                          "memory.kv_offload=none")))
    for key in ("ttft_s", "tpot_s", "total_s", "energy_J", "flops_per_chip", "hbm_bytes_per_chip"):
        assert plain[key] == same[key]


def test_the_ring_transfer_is_the_point_to_point_closed_form():
    """A ring send of a rank's K and V over one NVLink: one hop of latency, the block over the usable link."""
    cfg = make_config("model=llama3_8b", "parallel.tp=2", "parallel.cp=4", "hardware.link_ramp_exponent=0",
                      "workload.prompt_tokens=8064")
    chip, ex = cfg.hardware, cfg.execution()
    block = ring_block_bytes(cfg.model, ex, 1, 8064)
    assert block == 1 * (8064 // 4) * 2 * (8 // 2) * 128 * 2  # 2016 tokens, K and V, 4 KV heads, bf16
    graph = build_pass(cfg.model, ex, Phase.prefill, 1, 8064, 8064)
    cost = Coster(chip)(graph.layer.nodes["cp_ring_send1"]["op"])
    assert cost.link_transfer_s == pytest.approx(block / (chip.link_bandwidth_Bps * chip.link_efficiency))
    assert cost.link_latency_s == pytest.approx(chip.collective_latency_us * 1e-6 + chip.link_latency_s)
    assert cost.link_s == collective_time(chip, Collective.sendrecv, block, 2).seconds
    run = summarize(simulate(cfg))
    assert run["context_parallel"] == {"cp": 4, "ring_sends": 3 * 32, "ring_bytes_per_chip": 3 * 32 * block}


def test_the_ring_overlaps_its_sends_with_attention_steps():
    """Each step waits for its block: with sends slower than the steps the attention is the sends' chain plus
    the last step; with fast sends it is the steps back to back."""
    cfg = make_config("model=llama3_8b", "parallel.cp=4", "workload.prompt_tokens=8064", "fidelity=analytic")
    result = simulate(cfg)
    layer = [r for r in result.timeline.records if r.phase is Phase.prefill and r.segment == "layer"]
    by = {r.op.name: r for r in layer}
    steps = [by["attention"]] + [by[f"ring{j}_attention"] for j in (1, 2, 3)]
    sends = [by[f"cp_ring_send{j}"] for j in (1, 2, 3)]
    assert sends[0].start_s == steps[0].start_s  # the first send leaves as step 0 starts
    for j in (1, 2, 3):
        assert steps[j].start_s == max(steps[j - 1].end_s, sends[j - 1].end_s)
        assert sends[j - 1].end_s - sends[j - 1].start_s == pytest.approx(sends[j - 1].cost.time_s, rel=1e-9)


@pytest.mark.slow
@given(bandwidth=st.floats(5.0, 600.0), more=st.floats(1.0, 3.0))
@settings(max_examples=8, deadline=None)
def test_more_link_bandwidth_never_slows_a_context_parallel_run(bandwidth, more):
    base = make_config("model=llama3_8b", "parallel.tp=2", "parallel.cp=4", "workload.prompt_tokens=8064",
                       "fidelity=analytic", "workload.decode_tokens=2")

    def ttft(gbps: float) -> float:
        cfg = dataclasses.replace(base, hardware=dataclasses.replace(base.hardware, link_bandwidth_GBps=gbps))
        return simulate(cfg).timeline.passes[0].duration_s

    assert ttft(bandwidth * more) <= ttft(bandwidth)


def test_cp_shards_the_kv_cache_and_decode_gathers_the_partial_outputs():
    one = simulate(make_config(*QWEN_1M, "parallel.tp=4", "workload.prompt_tokens=131072"))
    two = simulate(make_config(*QWEN_1M, "parallel.tp=4", "parallel.cp=2", "workload.prompt_tokens=131072"))
    assert two.memory.kv_cache == pytest.approx(one.memory.kv_cache / 2, rel=1e-3)
    combine = [r for r in two.timeline.records if r.op.name == "cp_combine"]
    assert combine and all(r.op.comm_chips == 2 and r.phase is Phase.decode for r in combine)
    assert two.chips == 8 and two.group_chips == 8


@pytest.mark.parametrize("overrides, words", [
    (("model=deepseek_v3", "parallel.cp=2", "hardware=h200"), "full causal attention"),
    (("model=mistral_7b", "parallel.cp=2"), "full causal attention"),
    (("parallel.tp=8", "parallel.cp=2"), "scale-up link"),
    (("parallel.cp=2", "attention.kernel=unfused"), "fused attention kernel"),
    (("parallel.cp=4", "workload.prompt_tokens=6"), "chunks"),
    (("parallel.cp=0",), "parallel.cp must be >= 1"),
])
def test_context_parallel_runs_it_does_not_model_are_refused(overrides, words):
    with pytest.raises(RunError, match=words):
        simulate(make_config(*overrides))


def test_serving_refuses_cp_and_kv_offload_in_one_line():
    from sim.config.schema import KvOffload
    from sim.serving.run import check_serving

    cfg = make_config("workload=serving", "workload.num_requests=2")
    for changed in (dataclasses.replace(cfg, parallel=dataclasses.replace(cfg.parallel, cp=2)),
                    dataclasses.replace(cfg, memory=dataclasses.replace(cfg.memory, kv_offload=KvOffload.host))):
        with pytest.raises(RunError, match="single-batch runs"):
            check_serving(changed)


# The maximum context ------------------------------------------------------------------------------
def test_the_million_token_preset_has_its_published_size_and_context():
    """Qwen2.5-7B-Instruct-1M model card: 7.61 B parameters, 6.53 B without embeddings, 1,010,000 tokens."""
    model = make_config("model=qwen2_5_7b_1m").model
    assert model.num_params() == pytest.approx(7.61e9, rel=0.002)
    assert model.num_params() - model.embedding_params() - model.lm_head_params() == pytest.approx(6.53e9, rel=0.002)
    assert model.max_context == 1_010_000 and model.kv_bytes_per_token(2) == 28 * 2 * 4 * 128 * 2


def test_a_million_token_prefill_runs_at_the_models_maximum_and_cp_halves_it():
    one = summarize(simulate(make_config(*QWEN_1M, "parallel.tp=4", "workload.prompt_tokens=1000000")))
    two = summarize(simulate(make_config(*QWEN_1M, "parallel.tp=4", "parallel.cp=2",
                                         "workload.prompt_tokens=1000000")))
    assert two["ttft_s"] == pytest.approx(one["ttft_s"] / 2, rel=0.02)  # the ring hides behind the steps
    with pytest.raises(RunError, match="context of 1010000"):
        simulate(make_config(*QWEN_1M, "workload.prompt_tokens=1010000"))


# The KV cache's host tier -------------------------------------------------------------------------
SPILL = (*QWEN_1M, "hardware=h200", "workload.prompt_tokens=1000000", "memory.kv_offload=host")
SPILL_ANY = (*QWEN, "hardware=h200", "workload.prompt_tokens=1000000", "memory.kv_offload=host")


def test_a_run_that_does_not_fit_is_one_error_that_names_the_offload():
    with pytest.raises(RunError, match="does not fit.*memory.kv_offload=host"):
        simulate(make_config(*SPILL[:-1]))


def test_the_spilled_kv_is_read_over_the_host_link_at_its_bandwidth():
    result = simulate(make_config(*SPILL))
    mem, bw = result.memory, result.cfg.hardware.host_link_Bps
    assert mem.used == pytest.approx(mem.capacity) and mem.kv_on_host > 0
    decode = [r for r in result.timeline.records if r.phase is Phase.decode and r.op.kind is OpKind.attention]
    step = decode[0]
    host = step.op.bytes_by_role(Role.kv_host)
    assert host / (host + step.op.bytes_by_role(Role.kv)) == pytest.approx(mem.kv_on_host / mem.kv_cache, rel=1e-3)
    assert step.cost.extra("host") == host / bw
    assert step.cost.bound is Bound.interconnect and step.cost.time_s >= host / bw
    summary = summarize(result)
    assert summary["kv_offload"]["kv_on_host_GB"] == mem.kv_on_host / GB
    assert summary["hbm_GB_per_chip"]["used"] == pytest.approx(summary["hbm_GB_per_chip"]["capacity"])
    assert summary["time_by_bound_s"]["interconnect"] > 0 and summary["busy_fraction"]["host"] > 0
    moved = sum(r.op.host_bytes * r.count for r in result.timeline.records)
    assert moved == pytest.approx(summary["kv_offload"]["host_busy_s"] * bw)
    from sim.metrics.shared import chip_economics

    per_byte = chip_economics(result.cfg).energy.host_J_per_byte
    assert summary["energy"]["by_component_J_per_chip"]["host_J"] >= moved * per_byte


def test_more_host_bandwidth_never_slows_and_nvlink_c2c_is_faster_than_pcie():
    pcie, c2c = (summarize(simulate(make_config(*SPILL, f"memory.host_bandwidth_GBps={bw}"))) for bw in (64, 450))
    assert c2c["tpot_s"] < pcie["tpot_s"] and c2c["ttft_s"] <= pcie["ttft_s"]


def test_offload_that_is_not_needed_changes_no_number():
    plain = summarize(simulate(make_config("model=llama2_7b", "fidelity=analytic")))
    host = summarize(simulate(make_config("model=llama2_7b", "fidelity=analytic", "memory.kv_offload=host")))
    assert host["kv_offload"]["kv_on_host_GB"] == 0
    assert (host["ttft_s"], host["tpot_s"], host["total_s"]) == (plain["ttft_s"], plain["tpot_s"], plain["total_s"])


def test_a_spill_over_the_host_capacity_is_refused():
    with pytest.raises(RunError, match="host_capacity_GB"):
        simulate(make_config(*SPILL, "memory.host_capacity_GB=10"))


def test_des_and_analytic_agree_on_a_spilled_run():
    runs = [simulate(make_config(*SPILL_ANY, f"fidelity={f}")) for f in ("analytic", "des")]
    assert runs[1].timeline.end_s == pytest.approx(runs[0].timeline.end_s, rel=1e-9)


@pytest.mark.parametrize("fidelity", ["analytic", "des"])
@pytest.mark.parametrize("extra", [
    ("parallel.cp=4", "workload.prompt_tokens=4096"),
    ("parallel.cp=2", "parallel.tp=2", "workload.batch=4", "workload.prompt_tokens=1000"),
])
def test_time_by_bound_adds_up_with_the_ring_beside_the_steps(fidelity, extra):
    s = summarize(simulate(make_config("model=llama3_8b", f"fidelity={fidelity}", "workload.decode_tokens=3", *extra)))
    assert sum(s["time_by_bound_s"].values()) == pytest.approx(s["total_s"], rel=1e-9)
    assert all(v >= 0 for v in s["time_by_bound_s"].values())


def test_des_and_analytic_agree_on_a_context_parallel_run():
    """The ring's sends use only the link and the steps only the arrays and HBM: nothing is shared, so the
    discrete-event replay is the analytic one."""
    runs = [simulate(make_config("model=llama3_8b", "parallel.cp=4", "workload.prompt_tokens=4096",
                                 "workload.decode_tokens=3", f"fidelity={f}")) for f in ("analytic", "des")]
    assert runs[1].timeline.end_s == pytest.approx(runs[0].timeline.end_s, rel=1e-9)
