"""Hugging Face ``config.json`` keys mapped to ``ModelConfig`` fields: Llama/Mistral/Qwen and GPT-2
style dense models; Mixtral, Qwen2/3-MoE, DeepSeek-V2/V3 and gpt-oss mixtures of experts; MLA
(DeepSeek); interleaved local/global layers (gpt-oss ``layer_types``, Gemma-style
``sliding_window_pattern``); Jamba's Mamba/attention and dense/MoE layer periods; Mamba-2 sizes."""

from __future__ import annotations

from pathlib import Path

from workloads.model import Activation, ModelError, Norm, Positional


class _HfKeys:
    """Typed reads of a Hugging Face config's keys, each failure one ModelError naming the file and key."""

    def __init__(self, raw: dict, path: Path) -> None:
        self.raw = raw
        self.where = f"model.hf_config_path: '{path}'"

    def whole(self, name: str, value, least: int = 1) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ModelError(f"{self.where} has {name}={value!r}; expected a whole number")
        if value < least:
            raise ModelError(f"{self.where} has {name}={value}; expected a whole number >= {least}")
        return value

    def need(self, *names: str) -> int:
        """The first of ``names`` present, a whole number >= 1."""
        for name in names:
            if name in self.raw:
                return self.whole(name, self.raw[name])
        raise ModelError(f"{self.where} lacks '{names[0]}'; is it a decoder-only transformer config?")

    def size(self, name: str, default: int, least: int = 1) -> int:
        """An optional whole-number key (null or absent: ``default``)."""
        value = self.raw.get(name)
        return default if value is None else self.whole(name, value, least)

    def optional(self, name: str, default):
        value = self.raw.get(name)
        return default if value is None else value


def fields_from_hf(raw: dict, path: Path) -> dict:
    """Map the keys of a Hugging Face config to ModelConfig fields.

    Raises:
        ModelError: a size that is missing, not a whole number, below 1, or inconsistent with
            the others (heads that do not divide the hidden size without an explicit head_dim,
            query heads that are not whole groups of key/value heads), or a layer pattern the
            model's periodic layouts cannot express.
    """
    keys = _HfKeys(raw, path)
    gpt2_style = "n_embd" in raw
    layers = keys.need("num_hidden_layers", "n_layer")
    hidden = keys.need("hidden_size", "n_embd", "d_model")
    heads = keys.need("num_attention_heads", "n_head")
    kv_heads = keys.size("num_key_value_heads", heads)
    mla = keys.size("kv_lora_rank", 0, least=0)
    if raw.get("head_dim") is None and hidden % heads and not mla:
        raise ModelError(f"{keys.where} has hidden_size={hidden}, not a multiple of num_attention_heads={heads}, "
                         "and no head_dim; no whole head size fits")
    if heads % kv_heads:
        raise ModelError(f"{keys.where} has num_attention_heads={heads}, not a multiple of num_key_value_heads="
                         f"{kv_heads}; grouped-query attention needs whole groups")
    act = str(keys.optional("hidden_act", keys.optional("activation_function", "silu"))).lower()
    fields = {
        "num_layers": layers,
        "hidden_size": hidden,
        "num_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": keys.size("head_dim", hidden // heads),
        "ffn_size": keys.size("intermediate_size", 0, least=0) or keys.size("n_inner", 0, least=0) or 4 * hidden,
        "vocab_size": keys.need("vocab_size"),
        "tied_embeddings": bool(keys.optional("tie_word_embeddings", gpt2_style)),
        "max_context": keys.need("max_position_embeddings", "n_positions"),
        "gated_mlp": not gpt2_style,
        "norm": Norm.layernorm if gpt2_style else Norm.rmsnorm,
        "positional": Positional.learned if gpt2_style else Positional.rope,
        "activation": Activation.gelu if "gelu" in act else Activation.relu if "relu" in act else Activation.silu,
        "bias": bool(gpt2_style or raw.get("attention_bias", False)),
        "sliding_window": keys.size("sliding_window", 0, least=0) if raw.get("use_sliding_window", True) else 0,
    }
    if mla:
        fields.update(_mla_fields(keys, mla))
    fields.update(_local_global_fields(keys, layers, fields["sliding_window"]))
    fields.update(_ssm_fields(keys))
    return {**fields, **_moe_fields(keys, fields["ffn_size"])}


def _mla_fields(keys: _HfKeys, rank: int) -> dict:
    """DeepSeek-V2/V3 multi-head latent attention: the QK head dim is the nope plus rope parts."""
    rope = keys.need("qk_rope_head_dim")
    return {"kv_lora_rank": rank, "q_lora_rank": keys.size("q_lora_rank", 0, least=0), "qk_rope_head_dim": rope,
            "head_dim": keys.need("qk_nope_head_dim") + rope, "v_head_dim": keys.need("v_head_dim")}


def _local_global_fields(keys: _HfKeys, layers: int, window: int) -> dict:
    """Interleaved sliding/global layers: gpt-oss ``layer_types`` or ``sliding_window_pattern`` (Gemma
    2/3: every n-th layer global), as ``global_layer_period``; Llama 4 ``attention_chunk_size``."""
    chunk = keys.size("attention_chunk_size", 0, least=0)
    types = keys.raw.get("layer_types")
    period = keys.size("sliding_window_pattern", 0, least=0)
    if isinstance(types, list) and any(t == "sliding_attention" for t in types) and window:
        full = [i for i, t in enumerate(types) if t == "full_attention"]
        period = full[0] + 1 if full else 0
        if not full or len(types) != layers or [i for i in range(len(types)) if (i + 1) % period == 0] != full:
            raise ModelError(f"{keys.where} has layer_types with full-attention layers at {full[:8]}...; only "
                             "a global layer every n-th layer (n, 2n, ...) is modelled")
    if chunk:  # Llama 4: chunked-local layers, every no_rope_layer_interval-th layer global (no rope)
        return {"attention_chunk": chunk, "sliding_window": 0,
                "global_layer_period": keys.size("no_rope_layer_interval", 4)}
    return {"global_layer_period": period} if period and window else {}


def _ssm_fields(keys: _HfKeys) -> dict:
    """Mamba layers of a hybrid: Jamba (Mamba-1, attention every attn_layer_period layers) or Mamba-2 sizes."""
    state = keys.size("mamba_d_state", 0, least=0) or keys.size("ssm_state_size", 0, least=0)
    if not state:
        return {}
    if "hybrid_override_pattern" in keys.raw:
        raise ModelError(f"{keys.where} has hybrid_override_pattern (Mamba, attention and MLP as separate layers); "
                         "only layers of a mixer plus an MLP are modelled")
    fields = {"ssm_state_size": state, "ssm_conv_kernel": keys.size("mamba_d_conv", keys.size("conv_kernel", 4)),
              "ssm_expand": keys.size("mamba_expand", keys.size("expand", 2)),
              "attn_layer_period": keys.size("attn_layer_period", 1),
              "attn_layer_offset": keys.size("attn_layer_offset", 0, least=0)}
    types = keys.raw.get("layer_types")
    if isinstance(types, list) and "mamba" in types:  # Granite-4.0-H style: each layer named
        attention = [i for i, t in enumerate(types) if t == "attention"]
        period = attention[1] - attention[0] if len(attention) > 1 else len(types)
        if not attention or [i for i in range(len(types)) if i % period == attention[0] % period] != attention:
            raise ModelError(f"{keys.where} has attention layers at {attention[:8]} among Mamba layers; only an "
                             "attention layer every n-th layer (attn_layer_period, attn_layer_offset) is modelled")
        fields.update(attn_layer_period=period, attn_layer_offset=attention[0] % period)
    dt_rank = keys.raw.get("mamba_dt_rank")
    if isinstance(dt_rank, int) and not isinstance(dt_rank, bool):
        fields["ssm_dt_rank"] = keys.whole("mamba_dt_rank", dt_rank)
    if keys.raw.get("model_type") == "jamba":  # Jamba's attention layers have no positional encoding
        fields["positional"] = Positional.none
    head_dim = keys.size("mamba_d_head", 0, least=0) or keys.size("mamba_head_dim", 0, least=0)
    if head_dim:  # Mamba-2
        fields.update(ssm_head_dim=head_dim, ssm_groups=keys.size("mamba_n_groups", keys.size("n_groups", 1)),
                      ssm_chunk=keys.size("chunk_size", 256))
    return fields


def _moe_fields(keys: _HfKeys, ffn_size: int) -> dict:
    """The mixture-of-experts fields of a Hugging Face config (none for a dense model)."""
    experts = (keys.size("num_local_experts", 0, least=0) or keys.size("num_experts", 0, least=0)
               or keys.size("n_routed_experts", 0, least=0))
    if not experts:
        return {}
    if keys.raw.get("mlp_only_layers"):
        raise ModelError(f"{keys.where} has mlp_only_layers; dense layers among MoE ones are modelled only as the "
                         "first ones (first_k_dense_replace) or by a period (expert_layer_period)")
    expert_ffn = keys.size("moe_intermediate_size", ffn_size)
    shared = keys.size("shared_expert_intermediate_size", 0, least=0) or (
        keys.size("n_shared_experts", 0, least=0) * expert_ffn)
    fields = {"num_experts": experts, "ffn_size": expert_ffn, "shared_ffn_size": shared,
              "experts_per_token": keys.size("num_experts_per_tok", keys.size("experts_per_token", 2)),
              "first_dense_layers": keys.size("first_k_dense_replace", 0, least=0),
              "moe_layer_period": keys.size("expert_layer_period", keys.size("moe_layer_freq",
                                                                             keys.size("decoder_sparse_step", 1))),
              "moe_layer_offset": keys.size("expert_layer_offset", 0, least=0)}
    if (fields["first_dense_layers"] or fields["moe_layer_period"] > 1) and ffn_size != expert_ffn:
        fields["dense_ffn_size"] = ffn_size  # the dense layers' MLP (intermediate_size)
    if keys.size("n_group", 0, least=0) > 1:
        fields.update(expert_groups=keys.raw["n_group"], expert_groups_per_token=keys.size("topk_group", 1))
    return fields
