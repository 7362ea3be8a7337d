"""Transformer model specs: presets (conf/model/*.yaml) and Hugging Face ``config.json`` files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional


class ModelError(ValueError):
    """An impossible model spec or an unreadable model config file."""


class Norm(str, Enum):
    rmsnorm = "rmsnorm"
    layernorm = "layernorm"


class Activation(str, Enum):
    silu = "silu"
    gelu = "gelu"
    relu = "relu"


class Positional(str, Enum):
    rope = "rope"  # rotary embedding applied to Q and K in every layer
    learned = "learned"  # a position-embedding table added once at the input


@dataclass
class ModelConfig:
    """A decoder-only transformer.

    ``head_dim`` of 0 means ``hidden_size // num_heads``; ``num_kv_heads`` of 0 means as many
    as query heads (multi-head attention). ``hf_config_path`` loads every architectural field
    from a Hugging Face ``config.json`` on disk (no network), overriding the values here.
    """

    name: str = "custom"
    num_layers: int = 0
    hidden_size: int = 0
    num_heads: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    ffn_size: int = 0
    gated_mlp: bool = True  # SwiGLU-style: gate and up projections, then down
    vocab_size: int = 0
    tied_embeddings: bool = False
    max_context: int = 4096
    norm: Norm = Norm.rmsnorm
    activation: Activation = Activation.silu
    positional: Positional = Positional.rope
    bias: bool = False  # biases on the projections (GPT-style)
    sliding_window: int = 0  # 0: full attention
    num_experts: int = 0  # mixture of experts: experts per layer (ffn_size is each expert's width); 0: dense
    experts_per_token: int = 0  # top-k experts each token is routed to
    shared_ffn_size: int = 0  # width of an always-active shared expert MLP (DeepSeek/Qwen MoE); 0: none
    hf_config_path: Optional[str] = None

    def __post_init__(self) -> None:
        if self.name == "hf" and not self.hf_config_path:
            raise ModelError("model=hf needs model.hf_config_path=<path to a Hugging Face config.json>")
        if self.hf_config_path:
            self._load_hf(Path(self.hf_config_path))
        if self.num_kv_heads == 0:
            self.num_kv_heads = self.num_heads
        if self.head_dim == 0 and self.num_heads > 0:
            if self.hidden_size % self.num_heads:
                raise ModelError(
                    f"model '{self.name}': model.hidden_size={self.hidden_size} is not a multiple of "
                    f"model.num_heads={self.num_heads}; set model.head_dim explicitly or fix the sizes")
            self.head_dim = self.hidden_size // self.num_heads
        self.validate()

    def validate(self) -> None:
        where = f"model '{self.name}'"
        for key in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "ffn_size",
                    "vocab_size", "max_context"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ModelError(f"{where}: model.{key} must be a whole number >= 1 (got {value})")
        if self.num_heads % self.num_kv_heads:
            raise ModelError(
                f"{where}: model.num_heads={self.num_heads} is not a multiple of "
                f"model.num_kv_heads={self.num_kv_heads}; grouped-query attention needs whole groups"
            )
        if self.num_experts < 0 or self.shared_ffn_size < 0:
            raise ModelError(f"{where}: model.num_experts and model.shared_ffn_size must be >= 0")
        if self.num_experts and not 1 <= self.experts_per_token <= self.num_experts:
            raise ModelError(
                f"{where}: model.experts_per_token={self.experts_per_token} must be between 1 and "
                f"model.num_experts={self.num_experts}"
            )
        if self.sliding_window < 0:
            raise ModelError(f"{where}: model.sliding_window must be >= 0 (got {self.sliding_window})")

    # Derived sizes ---------------------------------------------------------------------------
    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Width of K (and of V) per token: KV heads x head dim."""
        return self.num_kv_heads * self.head_dim

    @property
    def mlp_in_size(self) -> int:
        """Output width of the first MLP projection (gate and up together when gated)."""
        return 2 * self.ffn_size if self.gated_mlp else self.ffn_size

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def expert_params(self) -> int:
        """Parameters of one expert (or of the dense MLP)."""
        return self.hidden_size * self.mlp_in_size + self.ffn_size * self.hidden_size

    def shared_params(self) -> int:
        """Parameters of the shared expert MLP (gated like the experts)."""
        width = (2 if self.gated_mlp else 1) * self.shared_ffn_size
        return self.hidden_size * width + self.shared_ffn_size * self.hidden_size

    def layer_params(self) -> int:
        """Parameters of one transformer layer (projections, experts, router, norms, biases)."""
        d = self.hidden_size
        attn = d * (self.q_size + 2 * self.kv_size) + self.q_size * d
        if self.is_moe:
            mlp = self.num_experts * self.expert_params() + d * self.num_experts + self.shared_params()
        else:
            mlp = self.expert_params()
        norms = 2 * d * (2 if self.norm is Norm.layernorm else 1)
        biases = (self.q_size + 2 * self.kv_size + d + self.mlp_in_size + d) if self.bias else 0
        return attn + mlp + norms + biases

    def embedding_params(self) -> int:
        table = self.vocab_size * self.hidden_size
        positions = self.max_context * self.hidden_size if self.positional is Positional.learned else 0
        return table + positions

    def lm_head_params(self) -> int:
        """Output projection parameters; 0 when tied to the embedding table."""
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden_size

    def num_params(self) -> int:
        """All parameters: embeddings, layers, final norm, LM head."""
        final_norm = self.hidden_size * (2 if self.norm is Norm.layernorm else 1)
        return self.embedding_params() + self.num_layers * self.layer_params() + final_norm + self.lm_head_params()

    def kv_bytes_per_token(self, kv_dtype_bytes: float) -> float:
        """KV-cache bytes per token over all layers: 2 (K and V) x layers x KV heads x head dim."""
        return 2 * self.num_layers * self.kv_size * kv_dtype_bytes

    # Hugging Face config.json ----------------------------------------------------------------
    def _load_hf(self, path: Path) -> None:
        path = hf_config_file(path)
        if not path.is_file():
            raise ModelError(f"model.hf_config_path: no file at '{path}'; point it at a Hugging Face config.json")
        try:
            raw = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelError(f"model.hf_config_path: '{path}' is not valid JSON ({err}); fix or re-download "
                             f"it") from None
        if not isinstance(raw, dict):
            raise ModelError(f"model.hf_config_path: '{path}' holds no JSON object; expected a config.json mapping")
        for key, value in _fields_from_hf(raw, path).items():
            setattr(self, key, value)
        if self.name in ("custom", "hf"):
            self.name = str(raw.get("_name_or_path") or raw.get("model_type") or path.parent.name)


def hf_config_file(path: str | Path) -> Path:
    """The ``config.json`` that ``model.hf_config_path`` names (the path itself, or config.json in a folder)."""
    path = Path(path)
    return path / "config.json" if path.is_dir() else path


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


def _fields_from_hf(raw: dict, path: Path) -> dict:
    """Map the keys of a Hugging Face config (Llama/Mistral/Qwen or GPT-2 style) to ModelConfig fields.

    Raises:
        ModelError: a size that is missing, not a whole number, below 1, or inconsistent with
            the others (heads that do not divide the hidden size without an explicit head_dim,
            query heads that are not whole groups of key/value heads).
    """
    keys = _HfKeys(raw, path)
    gpt2_style = "n_embd" in raw
    layers = keys.need("num_hidden_layers", "n_layer")
    hidden = keys.need("hidden_size", "n_embd", "d_model")
    heads = keys.need("num_attention_heads", "n_head")
    kv_heads = keys.size("num_key_value_heads", heads)
    if raw.get("head_dim") is None and hidden % heads:
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
    return {**fields, **_moe_fields(keys, fields["ffn_size"])}


def _moe_fields(keys: _HfKeys, ffn_size: int) -> dict:
    """The mixture-of-experts fields of a Hugging Face config (none for a dense model)."""
    experts = (keys.size("num_local_experts", 0, least=0) or keys.size("num_experts", 0, least=0)
               or keys.size("n_routed_experts", 0, least=0))
    if not experts:
        return {}
    expert_ffn = keys.size("moe_intermediate_size", ffn_size)
    shared = keys.size("shared_expert_intermediate_size", 0, least=0) or (
        keys.size("n_shared_experts", 0, least=0) * expert_ffn)
    return {"num_experts": experts, "experts_per_token": keys.size("num_experts_per_tok", 2),
            "ffn_size": expert_ffn, "shared_ffn_size": shared}
