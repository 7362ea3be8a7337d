"""Software options: quantization, attention kernels, paged KV, speculative decoding, MoE."""

from __future__ import annotations

import pytest

from sim.batch.run import simulate
from sim.batch.speculative import expected_tokens
from sim.config.schema import RunError
from sim.metrics.summary import summarize
from tests.conftest import make_config
from workloads.ops import Role

MEMORY_BOUND = ("hardware=teaching_npu", "hardware.hbm_bandwidth_GBps=100", "hardware.kernel_overhead_us=0")


def _step(*overrides: str):
    """The first decode step of a batch-1 run."""
    result = simulate(make_config(*overrides, "workload.decode_tokens=2"))
    return next(p for p in result.timeline.passes if p.step == 1), result


def _step_bytes(result) -> float:
    return sum(r.cost.hbm_bytes * r.count for r in result.timeline.records if r.step == 1)


def test_int4_weights_decode_about_3_5x_faster_from_bytes():
    bf16, r16 = _step(*MEMORY_BOUND)
    int4, r4 = _step(*MEMORY_BOUND, "precision.weights=int4")
    # by hand: Llama-2-7B projections 6.48e9 weights; int4 packs 0.5 byte plus an fp16 scale per
    # 128 weights; embeddings, LM head and norms stay bf16; KV cache and activations unchanged
    projections = 32 * (4 * 4096**2 + 3 * 4096 * 11008)
    delta = projections * (2 - (0.5 + 2 / 128))
    assert _step_bytes(r16) - _step_bytes(r4) == pytest.approx(delta, rel=1e-9)
    expected = _step_bytes(r16) / _step_bytes(r4)
    assert bf16.duration_s / int4.duration_s == pytest.approx(expected, rel=0.02)
    assert 3.3 < expected < 3.8  # not 4x: scales, 16-bit embeddings and LM head, KV cache


def test_weight_only_quantization_pays_dequantization_when_compute_bound():
    prefill = ("hardware=teaching_npu", "workload.batch=8", "workload.decode_tokens=1")
    plain = simulate(make_config(*prefill))
    w4 = simulate(make_config(*prefill, "precision.weights=int4"))
    qkv = {r.op.name: r for r in plain.timeline.records}["qkv_proj"]
    qkv4 = {r.op.name: r for r in w4.timeline.records}["qkv_proj"]
    # 2 FLOP per weight per 128-token block on the 10 TFLOP/s vector unit, added to the GEMM
    dequant = 2 * 4096 * 12288 * (4096 // 128) / 10e12
    assert qkv4.cost.compute_s - qkv.cost.compute_s == pytest.approx(dequant)


def test_w8a8_uses_the_int8_arrays():
    prefill = ("hardware=teaching_npu", "workload.batch=8", "workload.decode_tokens=1")
    plain = {r.op.name: r for r in simulate(make_config(*prefill)).timeline.records}["mlp_up"]
    w8a8 = {r.op.name: r for r in simulate(make_config(*prefill, "precision.weights=int8",
                                                        "precision.activations=int8")).timeline.records}["mlp_up"]
    assert w8a8.cost.compute_s == pytest.approx(plain.cost.compute_s / 2)  # int8 rate is twice bf16


def test_quantized_model_fits_where_bf16_does_not():
    with pytest.raises(RunError, match="does not fit"):
        simulate(make_config("hardware=h100_sxm", "model=llama2_70b", "workload.decode_tokens=2"))
    result = simulate(make_config("hardware=h100_sxm", "model=llama2_70b", "precision.weights=int4",
                                  "workload.decode_tokens=2"))
    assert result.memory.weights < 40e9


def test_int8_kv_cache_holds_twice_the_tokens():
    bf16 = simulate(make_config("workload.decode_tokens=2")).memory.kv_cache
    int8 = simulate(make_config("workload.decode_tokens=2", "precision.kv_cache=int8")).memory.kv_cache
    assert int8 == pytest.approx(bf16 / 2)


@pytest.mark.parametrize("overrides, words", [
    (("hardware=teaching_npu", "precision.weights=int4", "precision.activations=int4"), "no int4 matrix units"),
    (("precision.weights=bf16", "precision.activations=int8"), "narrower than precision.weights"),
    (("hardware=teaching_npu", "hardware.sram_MiB=0.1"), "attention.kernel=fused keeps 64x64 tiles"),
    (("speculative.draft_model=llama3_8b",), "has a 128256-token vocabulary"),
    (("speculative.draft_model=nope",), "unknown model preset 'nope'"),
    (("parallel.ep=2", "parallel.tp=2"), "applies to mixture-of-experts models"),
    (("model=mixtral_8x7b", "parallel.tp=4", "parallel.ep=2"), "must be a multiple of parallel.tp=4"),
])
def test_options_that_cannot_combine(overrides, words):
    with pytest.raises(RunError, match=words):
        simulate(make_config(*overrides, "workload.decode_tokens=2"))


def test_more_experts_per_token_than_experts():
    from workloads.model import ModelError

    with pytest.raises(ModelError, match="experts_per_token=9 must be between 1 and model.num_experts=8"):
        make_config("model=mixtral_8x7b", "model.experts_per_token=9")


def test_unfused_attention_moves_the_score_matrix_through_hbm():
    s = 2048
    args = ("hardware=teaching_npu", f"workload.prompt_tokens={s}", "workload.decode_tokens=1")
    fused = simulate(make_config(*args))
    unfused = simulate(make_config(*args, "attention.kernel=unfused"))
    extra = _step_bytes_phase(unfused) - _step_bytes_phase(fused)
    # per layer: scores written, read and written by softmax, read again: 4 x heads x S^2 x 2 bytes
    assert extra == pytest.approx(32 * 4 * 32 * s * s * 2, rel=0.01)
    assert unfused.timeline.end_s > fused.timeline.end_s


def _step_bytes_phase(result) -> float:
    return sum(r.cost.hbm_bytes * r.count for r in result.timeline.records)


def test_paged_kv_reads_whole_blocks():
    plain, r0 = _step(*MEMORY_BOUND, "workload.prompt_tokens=300", "attention.kv_block_tokens=0")
    paged, r1 = _step(*MEMORY_BOUND, "workload.prompt_tokens=300", "attention.kv_block_tokens=256")
    kv = sum(r.op.bytes_by_role(Role.kv) * r.count for r in r1.timeline.records if r.step == 1) - sum(
        r.op.bytes_by_role(Role.kv) * r.count for r in r0.timeline.records if r.step == 1)
    # context 301 tokens -> 2 blocks of 256 = 512 tokens read: 211 tokens of padding, K and V, 32 layers
    assert kv == pytest.approx(211 * 2 * 32 * 4096 * 2)
    assert paged.duration_s > plain.duration_s


def test_speculative_expected_tokens_closed_form():
    assert expected_tokens(4, 0.0) == 1.0
    assert expected_tokens(4, 1.0) == 5.0
    assert expected_tokens(3, 0.5) == pytest.approx(1 + 0.5 + 0.25 + 0.125)


@pytest.mark.slow
def test_speculative_decoding_needs_acceptance_to_pay():
    base = ("hardware=h100_sxm", "model=llama2_70b", "parallel.tp=4", "workload.decode_tokens=33")
    plain = summarize(simulate(make_config(*base)))["tpot_s"]
    spec = ("speculative.draft_model=llama2_7b", "speculative.k=4")
    never = summarize(simulate(make_config(*base, *spec, "speculative.acceptance=0")))["tpot_s"]
    often = summarize(simulate(make_config(*base, *spec, "speculative.acceptance=0.8")))["tpot_s"]
    assert never > plain  # four draft passes and a verification for one token
    assert often < plain  # memory-bound target: verifying 5 positions costs about one step
    s = summarize(simulate(make_config(*base, *spec, "speculative.acceptance=0.8")))
    # only the tokens asked for count as output: the figures agree with each other
    assert s["total_s"] == pytest.approx(s["ttft_s"] + 32 * s["tpot_s"])
    assert s["output_tokens_per_s"] == pytest.approx(33 / s["total_s"])


def test_mixtral_reads_only_the_chosen_experts_in_decode():
    result = simulate(make_config("hardware=h100_sxm", "model=mixtral_8x7b", "parallel.tp=2",
                                  "workload.decode_tokens=2"))
    ops = {r.op.name: r.op for r in result.timeline.records if r.step == 1}
    expert_weights = ops["expert_up"].bytes_by_role(Role.weight) + ops["expert_down"].bytes_by_role(Role.weight)
    # batch 1: 2 of 8 experts, each 3 x 4096 x 14336 bf16 weights split over 2 chips
    assert expert_weights == pytest.approx(2 * 3 * 4096 * 14336 * 2 / 2)
    assert result.memory.weights == pytest.approx(46.70e9 * 2 / 2, rel=0.01)  # all experts stay in memory


def test_expert_parallelism_adds_all_to_all():
    base = ("hardware=h100_sxm", "model=mixtral_8x7b", "parallel.tp=2", "workload.batch=32", "workload.decode_tokens=2")
    ep = simulate(make_config(*base, "parallel.ep=2"))
    kinds = {r.op.kind.value for r in ep.timeline.records}
    assert "alltoall" in kinds
    dispatch = next(r for r in ep.timeline.records if r.op.name == "moe_dispatch" and r.step == 1)
    assert dispatch.op.comm_bytes == 16 * 2 * 4096 * 2  # half the 32 tokens, top-2, bf16 rows
    assert dispatch.cost.link_s > 0


# Pipeline parallelism ------------------------------------------------------------------------
PREFILL = ("hardware=teaching_npu", "workload.batch=16", "workload.prompt_tokens=512", "workload.decode_tokens=1")


def test_one_microbatch_leaves_each_stage_idle_half_the_time():
    result = simulate(make_config(*PREFILL, "parallel.pp=2", "parallel.microbatches=1"))
    idle = summarize(result)["pipeline"]["stage_idle_fraction"]
    assert idle == pytest.approx([0.5, 0.5], abs=0.02)  # each stage waits while the other works


def test_microbatches_fill_the_pipeline_as_the_schedule_predicts():
    single = simulate(make_config(*PREFILL)).timeline.end_s
    piped = simulate(make_config(*PREFILL, "parallel.pp=2", "parallel.microbatches=4")).timeline.end_s
    # four micro-batches over two stages of half the layers each: (M + pp - 1) slots of T / (pp M)
    assert piped / single == pytest.approx((4 + 2 - 1) / (4 * 2), rel=0.05)


def test_pipeline_stage_holds_its_share_of_the_weights():
    one = simulate(make_config("workload.decode_tokens=2")).memory.weights
    two = simulate(make_config("workload.decode_tokens=2", "workload.batch=2", "parallel.pp=2")).memory.weights
    assert two == pytest.approx(one / 2)


@pytest.mark.parametrize("overrides, words", [
    (("parallel.pp=40",), "pipeline stages exceed llama2_7b's 32 layers"),
    (("parallel.pp=2", "parallel.microbatches=4"), "exceeds workload.batch=1"),
    (("parallel.pp=2", "workload.batch=2", "fidelity=analytic"), "use fidelity=des"),
])
def test_pipeline_options_that_cannot_combine(overrides, words):
    with pytest.raises(RunError, match=words):
        simulate(make_config(*overrides, "workload.decode_tokens=2"))


def test_overlapping_all_reduces_with_gemms_hides_link_time():
    base = ("hardware=h100_sxm", "model=llama2_13b", "parallel.tp=4", "workload.batch=64",
            "workload.prompt_tokens=1024", "workload.decode_tokens=1")
    slow_link = ("hardware.link_bandwidth_GBps=50",)
    plain = simulate(make_config(*base, *slow_link)).timeline.end_s
    overlapped = simulate(make_config(*base, *slow_link, "parallel.overlap_comm=true")).timeline.end_s
    fast = simulate(make_config(*base, "hardware.link_bandwidth_GBps=450")).timeline.end_s
    fast_overlapped = simulate(make_config(*base, "hardware.link_bandwidth_GBps=450",
                                           "parallel.overlap_comm=true")).timeline.end_s
    assert overlapped < plain and fast_overlapped <= fast and fast < plain
    # the analytic path overlaps the same pieces on its two streams, without HBM contention
    analytic = simulate(make_config(*base, *slow_link, "parallel.overlap_comm=true", "fidelity=analytic"))
    assert analytic.timeline.end_s <= overlapped * (1 + 1e-12)


def test_data_parallel_replicas_multiply_throughput_not_latency():
    one = summarize(simulate(make_config("workload.decode_tokens=8")))
    two = summarize(simulate(make_config("workload.decode_tokens=8", "parallel.dp=2")))
    assert two["output_tokens_per_s"] == pytest.approx(2 * one["output_tokens_per_s"])
    assert two["tpot_s"] == one["tpot_s"] and two["usd_per_million_output_tokens"] == pytest.approx(
        one["usd_per_million_output_tokens"])


@pytest.mark.parametrize("overrides, prefills, steps, decodes, heading", [
    ((), 1, 127, 127, "decode (127 steps)"),
    (("model=llama2_70b", "parallel.tp=2", "parallel.pp=2", "workload.batch=8", "parallel.microbatches=4"),
     4, 127, 508, "decode (127 steps, 508 passes)"),
    (("model=llama2_70b", "parallel.tp=4", "speculative.draft_model=llama2_7b", "speculative.k=4",
      "speculative.acceptance=1.0"), 2, 26, 130, "decode (26 steps, 130 passes)"),
])
def test_the_console_counts_decode_steps_and_passes_apart(overrides, prefills, steps, decodes, heading):
    """The decode heading was the run's passes less one: 511 'steps' for 127 steps of 4 micro-batches, 131 for 26
    speculative steps of 4 drafts and a verification (review)."""
    from sim.metrics.summary import breakdown_by_kind
    from sim.output.console import render
    result = simulate(make_config(*overrides))
    summary = summarize(result)
    run = summary["run"]
    assert (run["prefill_passes"], run["decode_steps"], run["passes"] - run["prefill_passes"]) == \
        (prefills, steps, decodes)
    text = render(summary, breakdown_by_kind(result))
    assert f"  prefill ({prefills} pass{'es' if prefills > 1 else ''}): time by operator" in text, text
    assert f"  {heading}: time by operator" in text, text


def test_a_speculative_run_names_its_draft_in_the_header_and_the_summary():
    """Nothing in a speculative run's output said it was one: its draft's weights sat in the HBM line unexplained
    (review)."""
    from sim.metrics.summary import breakdown_by_kind
    from sim.output.console import render
    result = simulate(make_config("model=llama2_13b", "speculative.draft_model=llama2_7b", "speculative.k=3",
                                  "speculative.acceptance=0.5", "fidelity=analytic", "workload.decode_tokens=16"))
    summary = summarize(result)
    assert summary["run"]["speculative"] == {"draft_model": "llama2_7b", "k": 3, "acceptance": 0.5,
                                             "expected_tokens_per_step": expected_tokens(3, 0.5)}
    header = render(summary, breakdown_by_kind(result)).splitlines()[0]
    assert header.endswith("| speculative: draft llama2_7b, k 3, acceptance 0.5 (1.88 tokens a step expected)")
    assert "speculative" not in summarize(simulate(make_config("fidelity=analytic")))["run"]
    from sim.metrics.summary import ops_columns
    ops = ops_columns(result)  # the draft's ops and the target's had the same names and nothing apart
    decode = [(m, s) for m, s, p in zip(ops["model"], ops["step"], ops["phase"], strict=True) if p == "decode"]
    assert {m for m, s in decode if s == 1} == {"llama2_13b", "llama2_7b"}
    assert "model" not in ops_columns(simulate(make_config("fidelity=analytic", "workload.decode_tokens=4")))
    none_taken = summarize(simulate(make_config("speculative.draft_model=llama2_7b", "speculative.acceptance=0",
                                                "model=llama2_13b", "fidelity=analytic", "workload.decode_tokens=4")))
    assert render(none_taken, []).splitlines()[0].endswith("acceptance 0 (1 token a step expected)")
