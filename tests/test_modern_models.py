"""The models deployed now: MLA, fine-grained MoE, interleaved local/global attention, chunked-local
attention, cross-layer KV sharing, Mamba hybrids, their presets and their config.json files."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from hwmodels.numerics import DType
from sim.engine.pipeline import split, stage_segments
from workloads import AttentionKernel, Execution, ModelConfig, ModelError, Phase, Unit, build_pass
from workloads.attention import MlaForm, chunked_keys, chunked_pairs
from workloads.footprint import kv_bytes_per_chip
from workloads.moe import dispatch_copies
from workloads.step import build_step, chunk_pairs

REPO = Path(__file__).resolve().parent.parent
NEW = ["deepseek_v3", "qwen3_235b_a22b", "mixtral_8x22b", "llama3_1_405b", "gpt_oss_120b", "jamba_1_5_large"]


def preset(name: str) -> ModelConfig:
    """A model preset as the config composes it (the YAML over the typed ModelConfig), without Hydra."""
    yaml = OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml")
    merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), yaml)
    return OmegaConf.to_object(merged)


def small(**changes) -> ModelConfig:
    base = dict(name="t", num_layers=4, hidden_size=256, num_heads=8, num_kv_heads=2, ffn_size=512, vocab_size=1000,
                max_context=1 << 20)
    return ModelConfig(**{**base, **changes})


# What the authors state -------------------------------------------------------------------------
@pytest.mark.parametrize("name, elements", [
    # DeepSeek-V2 (arXiv 2405.04434) Table 1: MLA caches (d_c + d_h^R) x layers values per token;
    # V3 (arXiv 2412.19437 Sec. 4.2): d_c = 512, d_h^R = 64, 61 layers
    ("deepseek_v3", (512 + 64) * 61),
    ("llama3_1_405b", 2 * 126 * 8 * 128),  # Llama 3 paper Table 3: 126 layers, 8 KV heads of 128
    ("qwen3_235b_a22b", 2 * 94 * 4 * 128),  # Qwen3 report Table 2: 94 layers, 4 KV heads, head dim 128
    ("mixtral_8x22b", 2 * 56 * 8 * 128),  # config.json: 56 layers, 8 KV heads of 128
    ("gpt_oss_120b", 2 * 36 * 8 * 64),  # model card Sec. 2.1: 36 layers, 8 KV heads of 64 (banded ones in full)
    ("jamba_1_5_large", 2 * 9 * 8 * 128),  # Jamba-1.5 Sec. 2: 9 attention layers of 72, 8 KV heads
])
def test_kv_cache_per_token_is_the_authors(name, elements):
    model = preset(name)
    assert model.kv_bytes_per_token(1) == elements
    assert model.kv_bytes_per_token(2) == 2 * elements  # bf16


def test_jamba_kv_cache_at_256k_is_the_9_gb_of_its_paper():
    # Jamba-1.5 (arXiv 2408.12570) Table 1: KV cache of Jamba-1.5-Large at 256K context, 16 bit: 9 GB
    assert round(preset("jamba_1_5_large").kv_bytes_per_token(2) * 262144 / 2**30) == 9


@pytest.mark.parametrize("name, total, active, rel", [
    ("deepseek_v3", 671e9, 37e9, 0.015),  # V3 report abstract: 671 B total, 37 B activated per token
    ("qwen3_235b_a22b", 235e9, 22e9, 0.02),  # Qwen3 report Table 2
    ("mixtral_8x22b", 141e9, 39e9, 0.005),  # Mistral AI announcement, April 2024
    ("llama3_1_405b", 405e9, None, 0.005),  # Llama 3 paper: 405 B
    ("gpt_oss_120b", 116.83e9, 5.13e9, 0.002),  # gpt-oss model card Table 1
    ("jamba_1_5_large", 398e9, 94e9, 0.005),  # Jamba-1.5 Sec. 2: 398 B total, 94 B active
])
def test_total_and_active_parameters_are_the_published_ones(name, total, active, rel):
    model = preset(name)
    assert model.num_params() == pytest.approx(total, rel=rel)
    if active:
        assert model.active_params() == pytest.approx(active, rel=rel)


def test_deepseek_v3_active_parameters_round_to_37b_and_total_to_671b():
    model = preset("deepseek_v3")
    assert (round(model.active_params() / 1e9), round(model.num_params() / 1e9)) == (37, 671)


@pytest.mark.parametrize("name", NEW)
def test_every_new_model_loads_from_its_config_json_as_its_preset(name):
    loaded = ModelConfig(name="hf", hf_config_path=str(REPO / "data" / "hf_configs" / name))
    ours = preset(name)
    skip = {"name", "hf_config_path"}
    assert {k: v for k, v in dataclasses.asdict(loaded).items() if k not in skip} == \
        {k: v for k, v in dataclasses.asdict(ours).items() if k not in skip}


def test_a_layer_pattern_the_layouts_cannot_express_is_refused(tmp_path):
    raw = json.loads((REPO / "data" / "hf_configs" / "gpt_oss_120b" / "config.json").read_text())
    raw["layer_types"] = ["sliding_attention"] * 5 + ["full_attention"] * 31
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="only a global layer every n-th layer"):
        ModelConfig(name="hf", hf_config_path=str(tmp_path))


@pytest.mark.parametrize("changes, words", [
    (dict(global_layer_period=2), "set model.sliding_window or model.attention_chunk"),
    (dict(kv_lora_rank=64), "multi-head latent attention needs"),
    (dict(sliding_window=8, attention_chunk=8), "not both"),
    (dict(num_experts=8, experts_per_token=2, expert_groups=3, expert_groups_per_token=1), "must divide"),
    (dict(ssm_state_size=16, attn_layer_period=2, attn_layer_offset=2), "must be below"),
])
def test_impossible_layouts_are_refused(changes, words):
    with pytest.raises(ModelError, match=words):
        small(**changes)


# Multi-head latent attention --------------------------------------------------------------------
def _op(graph, name: str, segment: str = "layer"):
    dag = dict((n, d) for n, d, _ in graph.segments())[segment]
    return dag.nodes[name]["op"]


def test_absorbed_mla_decode_reads_the_latent_once_for_all_heads():
    model, batch, context, tp = preset("deepseek_v3"), 4, 8192, 8
    ex = Execution(tp=tp, mla_form=MlaForm.absorbed)
    graph = build_pass(model, ex, Phase.decode, batch, 1, context)
    heads = 128 // tp
    attention = _op(graph, "attention")
    assert attention.flops == 2.0 * (576 + 512) * context * heads * batch  # QK over latent+rope, PV over latent
    assert attention.bytes_by_role(attention.reads[-1].role) == pytest.approx(
        batch * context * 576 * 2 + batch * 576 * 2)  # the cached latents read, the new one written (bf16)
    assert _op(graph, "q_absorb").flops == 2.0 * batch * heads * 128 * 512
    assert _op(graph, "v_absorb").flops == 2.0 * batch * heads * 512 * 128
    assert "kv_expand" not in graph.layer


def test_naive_mla_decode_expands_the_whole_context_every_step():
    model, context = preset("deepseek_v3"), 8192
    naive = build_pass(model, Execution(tp=8, mla_form=MlaForm.naive), Phase.decode, 1, 1, context)
    absorbed = build_pass(model, Execution(tp=8, mla_form=MlaForm.absorbed), Phase.decode, 1, 1, context)
    assert _op(naive, "kv_expand").flops == 2.0 * context * 512 * 16 * (128 + 128)
    assert _op(naive, "attention").flops == 2.0 * (192 + 128) * context * 16
    layer_flops = [sum(d.nodes[n]["op"].flops for n in d) for d in (naive.layer, absorbed.layer)]
    assert layer_flops[0] > 30 * layer_flops[1]


def test_mla_auto_is_naive_for_prefill_and_absorbed_for_decode_and_naive_prefill_is_cheaper():
    model, s = preset("deepseek_v3"), 8192
    prefill = build_pass(model, Execution(tp=8), Phase.prefill, 1, s, s)
    decode = build_pass(model, Execution(tp=8), Phase.decode, 1, 1, s)
    assert "kv_expand" in prefill.layer and "q_absorb" not in prefill.layer
    assert "q_absorb" in decode.layer and "kv_expand" not in decode.layer
    absorbed = build_pass(model, Execution(tp=8, mla_form=MlaForm.absorbed), Phase.prefill, 1, s, s)
    assert prefill.total("flops", Unit.matrix) < absorbed.total("flops", Unit.matrix)


def test_the_mla_cache_is_whole_on_every_chip():
    model = preset("deepseek_v3")
    one, eight = (kv_bytes_per_chip(model, Execution(tp=t), 1000) for t in (1, 8))
    assert one == eight == 1000 * 576 * 61 * 2
    gqa = preset("llama3_1_405b")
    assert kv_bytes_per_chip(gqa, Execution(tp=8), 1000) * 8 == kv_bytes_per_chip(gqa, Execution(tp=1), 1000)


# Fine-grained MoE ---------------------------------------------------------------------------------
def test_deepseek_v3_has_three_dense_layers_then_58_moe_layers():
    model = preset("deepseek_v3")
    graph = build_pass(model, Execution(tp=8, ep=8), Phase.decode, 8, 1, 1024)
    counts = {name: n for name, _, n in graph.segments()}
    assert counts == {"pre": 1, "layer_attn_mlp": 3, "layer": 58, "post": 1}
    assert graph.pattern[:4] == ("layer_attn_mlp",) * 3 + ("layer",)
    dense = dict((n, d) for n, d, _ in graph.segments())["layer_attn_mlp"]
    assert dense.nodes["mlp_up"]["op"].n == 2 * 18432 // 8 and "router" not in dense
    assert graph.layer.nodes["shared_up"]["op"].n == 2 * 2048 // 8


def test_node_limited_routing_sends_a_token_to_at_most_four_groups_of_chips():
    ds, mixtral = preset("deepseek_v3"), preset("mixtral_8x22b")
    assert [dispatch_copies(ds, ep) for ep in (2, 4, 8, 16, 32)] == [2, 4, 4, 8, 8]
    assert dispatch_copies(mixtral, 8) == 2  # no group limit: one copy per routed expert
    graph = build_pass(ds, Execution(tp=8, ep=8), Phase.decode, 64, 1, 1024)
    assert graph.layer.nodes["moe_dispatch"]["op"].comm_bytes == 64 // 8 * 4 * 7168 * 2


# Local and global layers, chunked attention, shared KV ---------------------------------------------
def test_gpt_oss_alternates_banded_and_full_layers():
    model, context = preset("gpt_oss_120b"), 10_000
    graph = build_pass(model, Execution(), Phase.decode, 1, 1, context)
    assert graph.pattern == ("layer", "layer_attn_moe") * 18  # on a tie the first kind is "layer"
    full = dict((n, d) for n, d, _ in graph.segments())["layer_attn_moe"]
    assert graph.layer.nodes["attention"]["op"].flops == 4.0 * 64 * 128 * 64
    assert full.nodes["attention"]["op"].flops == 4.0 * 64 * context * 64
    assert graph.full_graph().number_of_nodes() == sum(d.number_of_nodes() * n for _, d, n in graph.segments())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 700), st.integers(1, 3000))
def test_chunked_pairs_are_the_sum_over_positions(tokens, chunk, prior):
    assert chunked_pairs(tokens, chunk) == sum(chunked_keys(p, chunk) for p in range(1, tokens + 1))
    context = prior + tokens
    brute = sum(chunked_keys(p, chunk) for p in range(prior + 1, context + 1))
    assert chunk_pairs(tokens, context, 0, AttentionKernel.fused, chunk) == brute


def test_cross_layer_kv_sharing_halves_the_cache_and_the_kv_projection():
    plain, shared = small(), small(kv_share_layers=2)
    assert shared.kv_bytes_per_token(2) * 2 == plain.kv_bytes_per_token(2)
    graph = build_pass(shared, Execution(), Phase.decode, 1, 1, 100)
    reuse = dict((n, d) for n, d, _ in graph.segments())["layer_attn_mlp_kvshared"]
    assert reuse.nodes["qkv_proj"]["op"].n == 8 * 32 and graph.layer.nodes["qkv_proj"]["op"].n == (8 + 4) * 32
    assert reuse.nodes["attention"]["op"].writes[1].nbytes == 0


@pytest.mark.parametrize("changes", [
    dict(sliding_window=64, global_layer_period=4), dict(attention_chunk=64, global_layer_period=4),
    dict(attention_chunk=64), dict(kv_share_layers=2), dict(ssm_state_size=16, attn_layer_period=2),
    dict(ssm_state_size=64, ssm_head_dim=32, ssm_groups=2, attn_layer_period=4, attn_layer_offset=1),
    dict(kv_lora_rank=64, q_lora_rank=96, qk_rope_head_dim=16, head_dim=48, v_head_dim=32, num_kv_heads=8),
    dict(num_experts=8, experts_per_token=2, first_dense_layers=1, dense_ffn_size=1024, shared_ffn_size=256),
])
def test_a_step_of_one_sequence_is_the_single_batch_pass_for_every_layout(changes):
    model = small(**changes)
    for ex in (Execution(), Execution(kv_block_tokens=16, tp=2),
               Execution(attention=AttentionKernel.unfused, fused_elementwise=False, mla_form=MlaForm.naive)):
        for context in (1, 50, 300):
            assert list(build_step(model, ex, [], [context]).ops()) == \
                list(build_pass(model, ex, Phase.decode, 1, 1, context).ops())
        for prompt in (1, 300):
            assert list(build_step(model, ex, [(prompt, prompt)], []).ops()) == \
                list(build_pass(model, ex, Phase.prefill, 1, prompt, prompt).ops())


# State-space hybrids ------------------------------------------------------------------------------
def test_jamba_decode_cost_of_its_mamba_layers_is_flat_in_context():
    model = preset("jamba_1_5_large")
    short, long = (build_pass(model, Execution(tp=8), Phase.decode, 4, 1, c) for c in (1024, 256 * 1024))
    segments = [dict((n, d) for n, d, _ in g.segments()) for g in (short, long)]
    ssm = [name for name in segments[0] if name.startswith("layer") and "ssm" in name or name == "layer"]
    assert ssm and all(segments[0][n].nodes["ssm_scan"]["op"] for n in ssm)
    for name in ssm:  # the same ops, so the same cost at any context
        assert {n: d["op"] for n, d in segments[0][name].nodes(data=True)} == \
            {n: d["op"] for n, d in segments[1][name].nodes(data=True)}
    attention = "layer_attn_mlp"
    assert segments[1][attention].nodes["attention"]["op"].hbm_bytes > \
        100 * segments[0][attention].nodes["attention"]["op"].hbm_bytes / 256


def test_mamba_state_per_sequence_is_fixed_and_the_scan_reads_and_writes_it():
    model = preset("jamba_1_5_large")
    per_layer = 16384 * 16 + 3 * 16384  # scan state + the convolution's last 3 inputs
    assert model.ssm_state_bytes_per_seq(2) == 63 * per_layer * 2
    graph = build_pass(model, Execution(tp=8), Phase.decode, 4, 1, 1000)
    scan = graph.layer.nodes["ssm_scan"]["op"]
    assert scan.flops == 9 * 4 * (16384 // 8) * 16
    state = 4 * 16384 // 8 * 16 * 2
    assert [t.nbytes for t in scan.reads if t.name == "ssm_state"] == [state]
    assert [t.nbytes for t in scan.writes if t.name == "ssm_state"] == [state]
    assert kv_bytes_per_chip(model, Execution(tp=8), 4000, 4) == pytest.approx(
        model.kv_bytes_per_token(2) * 4000 / 8 + model.ssm_state_bytes_per_seq(2) * 4 / 8)


def test_mamba2_prefill_scan_is_chunked_ssd_on_the_matrix_units():
    model = small(ssm_state_size=128, ssm_head_dim=64, ssm_groups=1, attn_layer_period=4, hidden_size=512)
    t, heads = 1024, 2 * 512 // 64
    graph = build_pass(model, Execution(), Phase.prefill, 2, t, t)
    scan = graph.layer.nodes["ssm_scan"]["op"]
    assert scan.unit is Unit.matrix
    assert scan.flops == 2 * 2.0 * t * (256 * (128 + 64) + 2 * 128 * 64) * heads


def test_pipeline_stages_run_their_own_layers_kinds():
    model = preset("deepseek_v3")
    graph = build_pass(model, Execution(tp=8), Phase.decode, 2, 1, 100)
    shares = split(61, 4)
    stages = [stage_segments(graph, s, 4) for s in range(4)]
    assert [(n, c) for n, _, c in stages[0] if n.startswith("layer")] == [("layer_attn_mlp", 3), ("layer", 13)]
    assert [sum(c for n, _, c in st_ if n.startswith("layer")) for st_ in stages] == shares


@pytest.mark.slow
@pytest.mark.parametrize("name, overrides", [
    ("deepseek_v3", ("parallel.tp=8", "parallel.ep=8", "precision.weights=fp8", "precision.activations=fp8")),
    ("qwen3_235b_a22b", ("parallel.tp=4", "parallel.ep=4", "precision.weights=fp8", "precision.activations=fp8")),
    ("mixtral_8x22b", ("parallel.tp=8",)),
    ("llama3_1_405b", ("parallel.tp=8", "precision.weights=fp8", "precision.activations=fp8")),
    ("gpt_oss_120b", ("parallel.tp=8", "parallel.ep=8")),
    ("jamba_1_5_large", ("parallel.tp=8", "fidelity=des")),
])
def test_every_new_preset_runs_on_eight_h200(name, overrides):
    from sim.batch.run import simulate
    from tests.conftest import make_config

    cfg = make_config(f"model={name}", "hardware=h200", "workload.batch=2", "workload.prompt_tokens=256",
                      "workload.decode_tokens=4", *overrides)
    assert simulate(cfg).timeline.end_s > 0


def test_copies_of_hot_experts_cut_the_straggler_and_cost_their_weights():
    from workloads.footprint import weight_bytes_per_chip
    from workloads.moe import replicated_imbalance

    model = preset("deepseek_v3")
    plain = Execution(tp=8, ep=8, moe_imbalance=1.5)
    copies = dataclasses.replace(plain, moe_redundant_experts=8)
    assert (replicated_imbalance(plain), replicated_imbalance(dataclasses.replace(plain, moe_redundant_experts=4)),
            replicated_imbalance(copies)) == (1.5, 1.25, 1.0)
    assert weight_bytes_per_chip(model, copies) - weight_bytes_per_chip(model, plain) == \
        pytest.approx(8 * model.expert_params() * 58 / 8 * 2)
    rows = [build_pass(model, ex, Phase.prefill, 4, 4096, 4096).layer.nodes["expert_up"]["op"].m
            for ex in (plain, copies)]
    assert rows[1] < rows[0]


@pytest.mark.parametrize("overrides, words", [
    (("parallel.moe_redundant_experts=4",), "needs parallel.ep > 1"),
    (("parallel.tp=8", "parallel.ep=8", "parallel.moe_redundant_experts=4"), "fill the 8 chips evenly"),
    (("parallel.moe_redundant_experts=-1",), "must be >= 0"),
])
def test_expert_copies_that_cannot_be_placed_are_refused(overrides, words):
    from sim.config.checks import check_run
    from sim.config.errors import RunError
    from tests.conftest import make_config

    with pytest.raises(RunError, match=words):
        check_run(make_config("model=deepseek_v3", "hardware=h200", *overrides))


def test_a_speculative_check_scans_its_drafted_tokens_from_the_stored_state():
    model = small(ssm_state_size=16, attn_layer_period=2)
    graph = build_pass(model, Execution(), Phase.decode, 2, 3, 100)  # 2 sequences verify 3 tokens each
    ssm = dict((n, d) for n, d, _ in graph.segments())
    scan = next(d.nodes["ssm_scan"]["op"] for d in ssm.values() if "ssm_scan" in d)
    state = 512 * 16 * 2  # inner width x N, bf16
    assert scan.flops == 9 * 6 * 512 * 16
    assert [t.nbytes for t in scan.reads if t.name == "ssm_state"] == [2 * state]


def test_mamba_layers_named_in_layer_types_load_when_periodic_and_are_refused_otherwise(tmp_path):
    raw = {"hidden_size": 256, "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 2,
           "intermediate_size": 512, "vocab_size": 1000, "max_position_embeddings": 4096, "mamba_d_state": 64,
           "mamba_d_head": 32, "mamba_n_groups": 1, "layer_types": ["mamba"] * 3 + ["attention"] + ["mamba"] * 3
           + ["attention"]}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    model = ModelConfig(name="hf", hf_config_path=str(tmp_path))
    assert [k.ssm for k in model.layer_kinds()] == [t == "mamba" for t in raw["layer_types"]]
    raw["layer_types"] = ["attention"] + ["mamba"] * 3 + ["attention"] * 2 + ["mamba"] * 2
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="only an attention layer every n-th layer"):
        ModelConfig(name="hf", hf_config_path=str(tmp_path))


def test_mla_down_projections_are_whole_on_every_chip_in_the_weight_format():
    from workloads.footprint import weight_bytes_per_chip

    model = preset("deepseek_v3")
    ex = Execution(tp=8, ep=8, weights=DType.fp8, activations=DType.fp8)
    down = 61 * 7168 * (1536 + 576)
    norms = 61 * (2 * 7168 + 1536 + 512) + 7168
    embeddings = 2 * 129280 * 7168
    rest = model.num_params() - down - norms - embeddings
    assert weight_bytes_per_chip(model, ex) == pytest.approx(rest / 8 + down + (embeddings / 8 + norms) * 2)


@pytest.mark.parametrize("extra, expected", [
    ({"sliding_window": 512, "sliding_window_pattern": 6}, dict(sliding_window=512, global_layer_period=6)),
    ({"attention_chunk_size": 8192}, dict(attention_chunk=8192, global_layer_period=4, sliding_window=0)),
    ({"sliding_window": 4096}, dict(sliding_window=4096, global_layer_period=0)),  # Mistral: every layer
])
def test_local_global_keys_of_a_config_json(tmp_path, extra, expected):
    raw = {"hidden_size": 256, "num_hidden_layers": 12, "num_attention_heads": 8, "intermediate_size": 512,
           "vocab_size": 1000, "max_position_embeddings": 1 << 20, **extra}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    model = ModelConfig(name="hf", hf_config_path=str(tmp_path))
    assert {key: getattr(model, key) for key in expected} == expected


def test_an_absurd_layer_count_is_refused_before_any_layer_is_listed():
    with pytest.raises(ModelError, match="exceeds 100,000"):
        small(num_layers=10**30)


def test_the_measured_imbalance_is_the_default_with_expert_parallelism_only():
    """LMSYS 2025: DeepSeek-V3 prefill at EP32 ran 1.18x faster with balanced routing; without EP every chip holds a
    slice of every expert, so routing cannot unbalance the chips."""
    from sim.config.execution import MOE_IMBALANCE_EP, ParallelConfig

    assert MOE_IMBALANCE_EP == pytest.approx(59337 / 50302, abs=0.005)
    assert ParallelConfig(tp=8).expert_imbalance() == 1.0
    assert ParallelConfig(tp=8, ep=8).expert_imbalance() == MOE_IMBALANCE_EP
    assert ParallelConfig(tp=8, ep=8, moe_imbalance=1.0).expert_imbalance() == 1.0
    model = preset("deepseek_v3")
    rows = [build_pass(model, Execution(tp=8, ep=8, moe_imbalance=x), Phase.prefill, 4, 4096, 4096)
            .layer.nodes["expert_up"]["op"].m for x in (1.0, MOE_IMBALANCE_EP)]
    assert rows[1] == pytest.approx(rows[0] * MOE_IMBALANCE_EP, rel=0.01)


@pytest.mark.parametrize("batch, imbalance", [(1, 1.5), (1, 1.0), (2, 1.5), (3, 2.0)])
def test_no_expert_computes_more_rows_than_there_are_tokens(batch, imbalance):
    """A token picks an expert once, so the busiest expert's rows are at most the T tokens of the EP group: one
    decoding sequence on DeepSeek-V3 (tp 8, ep 8) gives its experts 1 row, not the ceil(8/8 x 1.18) = 2 the
    imbalance rounded up to (twice the FLOPs on the same weights; independent review)."""
    model = preset("deepseek_v3")
    ex = Execution(tp=8, ep=8, moe_imbalance=imbalance)
    layer = build_pass(model, ex, Phase.decode, batch, 1, 1024).layer
    for name in ("expert_up", "expert_down"):
        op = layer.nodes[name]["op"]
        assert 1 <= op.m <= batch * ex.attention_groups
    many = build_pass(model, ex, Phase.prefill, 4, 4096, 4096).layer.nodes["expert_up"]["op"]
    mean = 4 * 4096 * model.experts_per_token / model.num_experts  # every local expert hit: T k / E rows each
    assert many.m == math.ceil(mean * imbalance)  # at scale the imbalance still sets the busiest expert
