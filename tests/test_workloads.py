"""Model specs and operator graphs against closed forms worked out independently."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from hwmodels.numerics import DType
from workloads import AttentionKernel, Execution, ModelConfig, ModelError, Phase, Unit, build_pass
from workloads.footprint import weight_bytes_per_chip

LLAMA2_7B = dict(name="llama2_7b", num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=32, ffn_size=11008,
                 vocab_size=32000)
LLAMA2_70B = dict(name="llama2_70b", num_layers=80, hidden_size=8192, num_heads=64, num_kv_heads=8, ffn_size=28672,
                  vocab_size=32000)


def test_parameter_counts_match_the_published_sizes():
    assert ModelConfig(**LLAMA2_7B).num_params() == pytest.approx(6.74e9, rel=1e-3)
    assert ModelConfig(**LLAMA2_70B).num_params() == pytest.approx(68.98e9, rel=1e-3)


def test_kv_cache_bytes_per_token_bf16():
    assert ModelConfig(**LLAMA2_7B).kv_bytes_per_token(2) == 512 * 1024
    assert ModelConfig(**LLAMA2_70B).kv_bytes_per_token(2) == 320 * 1024  # GQA: 8 KV heads


def _matrix_flops_by_hand(d, h, kv, hd, f, layers, vocab, batch, s, causal_pairs):
    """2 x (projection parameters) x tokens + attention + LM head on the last token of each sequence."""
    tokens = batch * s
    proj_params = layers * (d * (h + 2 * kv) * hd + h * hd * d + 3 * d * f)
    attention = layers * batch * h * 4 * hd * causal_pairs
    return 2 * proj_params * tokens + attention + 2 * d * vocab * batch


@pytest.mark.parametrize("spec", [LLAMA2_7B, LLAMA2_70B])
@pytest.mark.parametrize("batch, s", [(1, 512), (4, 2048)])
def test_prefill_flops_are_2_params_tokens_plus_attention(spec, batch, s):
    model = ModelConfig(**spec)
    graph = build_pass(model, Execution(), Phase.prefill, batch, s, s)
    expected = _matrix_flops_by_hand(spec["hidden_size"], spec["num_heads"], spec["num_kv_heads"], 128,
                                     spec["ffn_size"], spec["num_layers"], spec["vocab_size"], batch, s,
                                     s * (s + 1) / 2)  # fused kernel: causal pairs only
    assert graph.total("flops", Unit.matrix) == pytest.approx(expected, rel=1e-12)


def test_unfused_attention_computes_the_whole_square():
    model = ModelConfig(**LLAMA2_7B)
    s = 512
    fused = build_pass(model, Execution(), Phase.prefill, 1, s, s).total("flops", Unit.matrix)
    unfused = build_pass(model, Execution(attention=AttentionKernel.unfused), Phase.prefill, 1, s, s)
    extra = 32 * 32 * 4 * 128 * (s * s - s * (s + 1) / 2)
    assert unfused.total("flops", Unit.matrix) == pytest.approx(fused + extra)
    # the S x S score matrix goes through HBM: written by the score op, read and written by softmax, read by context
    scores = 32 * s * s * 2
    fused_bytes = build_pass(model, Execution(), Phase.prefill, 1, s, s).total("hbm_bytes")
    assert unfused.total("hbm_bytes") - fused_bytes == pytest.approx(32 * 4 * scores, rel=0.02)


def test_decode_step_reads_every_weight_once_and_the_kv_cache():
    model = ModelConfig(**LLAMA2_70B)
    ctx = 1000
    graph = build_pass(model, Execution(), Phase.decode, 1, 1, ctx, step=1)
    weight_read = sum(op.bytes_by_role(_role("weight")) * r for op, r in graph.ops())
    table_rows = 8192 * 2  # the embedding reads one row, not the table
    assert weight_read == pytest.approx(2 * (model.num_params() - model.embedding_params()) + table_rows)
    kv_read = sum(t.nbytes for op, _ in graph.ops() for t in op.reads if t.role.value == "kv")  # one layer
    assert kv_read == ctx * 2 * 8 * 128 * 2  # K and V of 8 KV heads, not 64 query heads


def _role(name):
    from workloads.ops import Role

    return Role(name)


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_tensor_parallel_shards_the_weights(tp):
    model = ModelConfig(**LLAMA2_70B)
    whole = weight_bytes_per_chip(model, Execution())
    shard = weight_bytes_per_chip(model, Execution(tp=tp))
    assert shard == pytest.approx(whole / tp, rel=2e-4)  # all but the norm scales are split
    graph = build_pass(model, Execution(tp=tp), Phase.decode, 4, 1, 100)
    kinds = [op.kind.value for op, _ in graph.ops()]
    assert (kinds.count("allreduce") > 0) == (tp > 1)
    per_chip = graph.total("flops", Unit.matrix)
    single = build_pass(model, Execution(), Phase.decode, 4, 1, 100).total("flops", Unit.matrix)
    assert per_chip == pytest.approx(single / tp, rel=1e-3)


def test_quantized_weight_bytes_closed_form():
    model = ModelConfig(**LLAMA2_7B)
    projections = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    dense = 2 * 32000 * 4096 + (2 * 32 + 1) * 4096  # embedding table, LM head, norm scales: bf16
    # fp4 is MXFP4: one 1-byte scale per 32 weights, whatever group_size (the integer formats' fp16 groups) says
    for dtype, per_weight in ((DType.int8, 1 + 2 / 128), (DType.int4, 0.5 + 2 / 128), (DType.fp8, 1.0),
                              (DType.fp4, 0.5 + 1 / 32)):
        for group in (128, 64):
            scale = per_weight if dtype is DType.fp4 else per_weight + (2 / group - 2 / 128) * dtype.is_integer
            got = weight_bytes_per_chip(model, Execution(weights=dtype, activations=DType.bf16, group_size=group))
            assert got == pytest.approx(projections * scale + dense * 2), (dtype, group)
    # weight-only int4 GEMMs pay dequantization: 2 FLOP per weight per 128-token block
    graph = build_pass(model, Execution(weights=DType.int4), Phase.prefill, 1, 300, 300)
    qkv = next(op for op, _ in graph.ops() if op.name == "qkv_proj")
    assert qkv.dequant_flops == 2 * 4096 * 3 * 4096 * 3


def test_full_graph_expands_every_layer():
    model = ModelConfig(**LLAMA2_7B)
    graph = build_pass(model, Execution(), Phase.decode, 1, 1, 10)
    full = graph.full_graph()
    assert full.number_of_nodes() == 1 + 32 * graph.layer.number_of_nodes() + graph.post.number_of_nodes()
    assert nx.is_directed_acyclic_graph(full)
    # one chain: every op waits for the one before it (the residual edges skip, they never branch)
    assert nx.dag_longest_path_length(full) == full.number_of_nodes() - 1


def test_sliding_window_caps_the_keys():
    spec = dict(LLAMA2_7B, num_kv_heads=8, sliding_window=1024)
    model = ModelConfig(**spec)
    near = build_pass(model, Execution(), Phase.decode, 1, 1, 2000)
    far = build_pass(model, Execution(), Phase.decode, 1, 1, 4000)
    assert near.total("hbm_bytes") == far.total("hbm_bytes")


def test_hf_config_json(tmp_path):
    cfg = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
           "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 8192,
           "tie_word_embeddings": False, "hidden_act": "silu", "_name_or_path": "meta-llama/Meta-Llama-3-8B"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    model = ModelConfig(name="hf", hf_config_path=str(path))
    assert model.num_params() == pytest.approx(8.03e9, rel=1e-3)
    assert model.name == "meta-llama/Meta-Llama-3-8B"
    assert ModelConfig(name="hf", hf_config_path=str(tmp_path)).num_kv_heads == 8  # a folder works too


def test_gpt2_style_hf_config(tmp_path):
    cfg = {"n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257, "n_positions": 1024,
           "activation_function": "gelu_new"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    model = ModelConfig(name="hf", hf_config_path=str(tmp_path / "config.json"))
    assert model.num_params() == pytest.approx(124.4e6, rel=1e-2)  # GPT-2 small
    assert model.tied_embeddings and not model.gated_mlp


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "holds no JSON object"),
        ('{"hidden_size": 64}', "lacks 'num_hidden_layers'"),
        ('{"num_hidden_layers": "x", "hidden_size": 64}', "expected a whole number"),
    ],
)
def test_bad_hf_config_gets_a_clear_error(tmp_path, content, words):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ModelError, match=words):
        ModelConfig(name="hf", hf_config_path=str(path))


def test_missing_hf_config(tmp_path):
    with pytest.raises(ModelError, match="no file at"):
        ModelConfig(name="hf", hf_config_path=str(tmp_path / "nope.json"))


def test_heads_must_group():
    with pytest.raises(ModelError, match="not a multiple"):
        ModelConfig(**dict(LLAMA2_7B, num_kv_heads=5))
