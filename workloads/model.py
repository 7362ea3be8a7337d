"""Transformer model specs: presets (conf/model/*.yaml) and Hugging Face ``config.json`` files."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional

MAX_LAYERS = 100_000  # each layer's kind is listed (layer_kinds); the deepest published models have a few hundred


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
    none = "none"  # no positional encoding (Jamba's attention layers: the Mamba layers carry position)


@dataclass(frozen=True)
class LayerKind:
    """What one layer is: its mixer (attention, local or global, or a state-space layer) and its MLP."""

    ssm: bool = False  # a Mamba layer instead of attention
    window: int = 0  # attention: sliding window in keys; 0: full
    chunk: int = 0  # attention: chunked-local, queries see their own aligned chunk only; 0: none
    moe: bool = False  # routed experts instead of a dense MLP
    ffn_size: int = 0  # the dense MLP's width (MoE layers: each expert's)
    kv_owner: bool = True  # cross-layer KV sharing: computes and stores K and V (False: reuses the group's)


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
    # Layer layout of MoE models: the first ``first_dense_layers`` layers (DeepSeek first_k_dense_replace)
    # and the layers i with i % moe_layer_period != moe_layer_offset (Jamba) have a dense MLP of
    # width ``dense_ffn_size`` (0: ffn_size).
    first_dense_layers: int = 0
    dense_ffn_size: int = 0
    moe_layer_period: int = 1
    moe_layer_offset: int = 0
    # Node-limited (group-limited) routing, DeepSeek-V3 n_group / topk_group: the experts form
    # ``expert_groups`` groups and a token picks its experts from at most ``expert_groups_per_token``.
    expert_groups: int = 0
    expert_groups_per_token: int = 0
    # Multi-head latent attention (DeepSeek-V2/V3): K and V are compressed to a ``kv_lora_rank``
    # latent plus a ``qk_rope_head_dim`` rotary key shared by all heads; head_dim is then the QK
    # head dim (qk_nope + qk_rope) and ``v_head_dim`` the value head dim. 0: standard attention.
    kv_lora_rank: int = 0
    q_lora_rank: int = 0  # Q through a low-rank latent too; 0: projected directly
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # Interleaved local/global attention: with global_layer_period > 0, layers i with
    # (i + 1) % global_layer_period == 0 attend to the whole context and the others are local:
    # a sliding window of ``sliding_window`` keys, or chunked (``attention_chunk``: queries see
    # only keys of their own aligned chunk, Llama 4). With period 0 the window/chunk covers every layer.
    global_layer_period: int = 0
    attention_chunk: int = 0
    kv_share_layers: int = 1  # cross-layer KV sharing: this many consecutive attention layers use one KV cache
    # State-space (Mamba) layers of a hybrid: layers i with i % attn_layer_period == attn_layer_offset
    # are attention, the others SSM. ssm_state_size 0: no SSM layers.
    ssm_state_size: int = 0  # N (d_state)
    ssm_expand: int = 2  # inner width = ssm_expand x hidden_size
    ssm_conv_kernel: int = 4
    ssm_head_dim: int = 0  # Mamba-2 head dim P; 0: Mamba-1 (a dt per channel, through a rank-ssm_dt_rank projection)
    ssm_groups: int = 1  # Mamba-2 groups of heads sharing B and C
    ssm_dt_rank: int = 0  # Mamba-1; 0: ceil(hidden_size / 16) as Mamba's "auto"
    ssm_chunk: int = 256  # Mamba-2 SSD chunk length of the prefill scan
    attn_layer_period: int = 1
    attn_layer_offset: int = 0
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
        if self.num_layers > MAX_LAYERS:
            raise ModelError(f"{where}: model.num_layers={self.num_layers} exceeds {MAX_LAYERS:,}; the deepest "
                             "published models have a few hundred layers")
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
        self._validate_layout(where)

    def _validate_layout(self, where: str) -> None:
        """The fields of MLA, layer layouts, local attention and SSM layers."""
        for key in ("first_dense_layers", "dense_ffn_size", "moe_layer_offset", "expert_groups",
                    "expert_groups_per_token", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "v_head_dim",
                    "global_layer_period", "attention_chunk", "ssm_state_size", "ssm_head_dim", "ssm_dt_rank",
                    "attn_layer_offset"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise ModelError(f"{where}: model.{key} must be a whole number >= 0 (got {getattr(self, key)})")
        for key in ("moe_layer_period", "kv_share_layers", "ssm_expand", "ssm_conv_kernel", "ssm_groups",
                    "ssm_chunk", "attn_layer_period"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ModelError(f"{where}: model.{key} must be a whole number >= 1 (got {getattr(self, key)})")
        for period, offset in (("moe_layer_period", "moe_layer_offset"), ("attn_layer_period", "attn_layer_offset")):
            if getattr(self, offset) >= getattr(self, period):
                raise ModelError(f"{where}: model.{offset}={getattr(self, offset)} must be below "
                                 f"model.{period}={getattr(self, period)}")
        if self.expert_groups and (self.num_experts % self.expert_groups
                                   or not 1 <= self.expert_groups_per_token <= self.expert_groups):
            raise ModelError(f"{where}: model.expert_groups={self.expert_groups} must divide the "
                             f"{self.num_experts} experts and model.expert_groups_per_token="
                             f"{self.expert_groups_per_token} be between 1 and it")
        if self.is_mla and not (0 < self.qk_rope_head_dim < self.head_dim and self.v_head_dim > 0):
            raise ModelError(f"{where}: multi-head latent attention needs 0 < model.qk_rope_head_dim < "
                             f"model.head_dim (the QK head dim, nope + rope) and model.v_head_dim >= 1")
        if self.global_layer_period and not (self.sliding_window or self.attention_chunk):
            raise ModelError(f"{where}: model.global_layer_period={self.global_layer_period} interleaves global "
                             "layers with local ones; set model.sliding_window or model.attention_chunk")
        if self.sliding_window and self.attention_chunk:
            raise ModelError(f"{where}: local layers use a sliding window or chunks, not both; "
                             "set model.sliding_window or model.attention_chunk to 0")
        if self.ssm_head_dim and self.ssm_inner % (self.ssm_head_dim * self.ssm_groups):
            raise ModelError(f"{where}: the SSM width {self.ssm_inner} (ssm_expand x hidden_size) is not a "
                             f"multiple of model.ssm_head_dim x model.ssm_groups")

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

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def latent_size(self) -> int:
        """MLA: what one token caches per layer, the KV latent plus the shared rotary key."""
        return self.kv_lora_rank + self.qk_rope_head_dim

    @property
    def ssm_inner(self) -> int:
        return self.ssm_expand * self.hidden_size

    @property
    def ssm_heads(self) -> int:
        """Mamba-2 heads (each with its own dt and decay); Mamba-1: one per channel."""
        return self.ssm_inner // self.ssm_head_dim if self.ssm_head_dim else self.ssm_inner

    @property
    def ssm_conv_channels(self) -> int:
        """Channels of the causal convolution: x, plus B and C in Mamba-2."""
        return self.ssm_inner + (2 * self.ssm_groups * self.ssm_state_size if self.ssm_head_dim else 0)

    @property
    def dt_rank(self) -> int:
        return self.ssm_dt_rank or -(-self.hidden_size // 16)

    def layer_kinds(self) -> tuple[LayerKind, ...]:
        """Each layer's kind, in order (the same tuple for the same fields: a serving run asks often)."""
        return _layer_kinds(self.num_layers, self.ssm_state_size, self.attn_layer_period, self.attn_layer_offset,
                            self.is_moe, self.first_dense_layers, self.moe_layer_period, self.moe_layer_offset,
                            self.global_layer_period, self.kv_share_layers, self.sliding_window,
                            self.attention_chunk, self.ffn_size, self.dense_ffn_size)

    # Parameters ------------------------------------------------------------------------------
    def expert_params(self) -> int:
        """Parameters of one expert (or of the dense MLP)."""
        return self.hidden_size * self.mlp_in_size + self.ffn_size * self.hidden_size

    def shared_params(self) -> int:
        """Parameters of the shared expert MLP (gated like the experts)."""
        width = (2 if self.gated_mlp else 1) * self.shared_ffn_size
        return self.hidden_size * width + self.shared_ffn_size * self.hidden_size

    def attention_params(self) -> int:
        """Projections of one attention layer. MLA (DeepSeek-V2 Sec. 2.1): Q down and up (or one
        projection), the KV down-projection to the latent plus rotary key, the latent's up-projection
        to per-head K (nope part) and V, the latent norms, and the output projection."""
        d, h = self.hidden_size, self.num_heads
        if not self.is_mla:
            return d * (self.q_size + 2 * self.kv_size) + self.q_size * d
        r, nope = self.q_lora_rank, self.head_dim - self.qk_rope_head_dim
        q = d * r + r + r * self.q_size if r else d * self.q_size
        kv = d * self.latent_size + self.kv_lora_rank + self.kv_lora_rank * h * (nope + self.v_head_dim)
        return q + kv + h * self.v_head_dim * d

    def ssm_params(self) -> int:
        """One Mamba mixer: in-projection, causal convolution (weights and bias), the dt, B, C
        projections of Mamba-1 (x_proj, dt_proj) or their place in Mamba-2's in-projection, A, D,
        dt bias, Mamba-2's gated norm, out-projection (Gu & Dao 2023; Dao & Gu 2024)."""
        d, e, n = self.hidden_size, self.ssm_inner, self.ssm_state_size
        conv = self.ssm_conv_channels * (self.ssm_conv_kernel + 1)
        if self.ssm_head_dim:
            heads = self.ssm_heads
            return d * (2 * e + 2 * self.ssm_groups * n + heads) + conv + 3 * heads + e + e * d
        r = self.dt_rank
        return d * 2 * e + conv + e * (r + 2 * n) + r * e + e + e * n + e + e * d

    def ffn_params(self, kind: LayerKind) -> int:
        """The MLP of a layer of ``kind``: dense, or routed experts, router and shared expert."""
        d = self.hidden_size
        if kind.moe:
            return self.num_experts * self.expert_params() + d * self.num_experts + self.shared_params()
        return d * (2 if self.gated_mlp else 1) * kind.ffn_size + kind.ffn_size * d

    def layer_params(self, kind: LayerKind | None = None) -> int:
        """Parameters of one layer of ``kind`` (default: the last layer's) (projections, experts, router,
        norms, biases)."""
        kind = kind or self.layer_kinds()[-1]
        d = self.hidden_size
        mixer = self.ssm_params() if kind.ssm else self.attention_params()
        norms = 2 * d * (2 if self.norm is Norm.layernorm else 1)
        biases = 0
        if self.bias:
            up = (2 if self.gated_mlp else 1) * kind.ffn_size
            biases = (0 if kind.ssm else self.q_size + 2 * self.kv_size + d) + (
                self.num_experts * (up + d + 1) if kind.moe else up + d)
        return mixer + self.ffn_params(kind) + norms + biases

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
        kinds = self.layer_kinds()
        layers = sum(self.layer_params(k) for k in kinds) if len(set(kinds)) > 1 else \
            self.num_layers * self.layer_params(kinds[0])
        return self.embedding_params() + layers + final_norm + self.lm_head_params()

    def active_params(self) -> int:
        """Parameters one token's forward pass multiplies by: every layer's dense parts, the
        ``experts_per_token`` routed experts it picks, shared experts, the final norm and the LM
        head (the embedding table when tied). The input embedding, a row lookup, is not counted,
        as in the active counts of DeepSeek-V3 and gpt-oss."""
        idle = self.num_experts - self.experts_per_token
        expert = self.expert_params() + ((self.mlp_in_size + self.hidden_size + 1) if self.bias else 0)
        layers = sum(self.layer_params(k) - (idle * expert if k.moe else 0) for k in self.layer_kinds())
        final_norm = self.hidden_size * (2 if self.norm is Norm.layernorm else 1)
        return layers + final_norm + self.vocab_size * self.hidden_size

    def kv_bytes_per_token(self, kv_dtype_bytes: float) -> float:
        """KV-cache bytes per token over all layers: for each attention layer that keeps a cache
        (cross-layer sharing: the first of each group), 2 (K and V) x KV heads x head dim, or MLA's
        latent plus rotary key. Local layers are counted in full (a token's cost before any window
        frees it)."""
        per_layer = self.latent_size if self.is_mla else 2 * self.kv_size
        owners = sum(1 for k in self.layer_kinds() if not k.ssm and k.kv_owner)
        return owners * per_layer * kv_dtype_bytes

    def ssm_state_bytes_per_seq(self, dtype_bytes: float) -> float:
        """Fixed-size state of one sequence over the SSM layers: the scan state (inner width x N)
        and the convolution's last ``ssm_conv_kernel - 1`` inputs; independent of its length."""
        per_layer = self.ssm_inner * self.ssm_state_size + (self.ssm_conv_kernel - 1) * self.ssm_conv_channels
        return sum(1 for k in self.layer_kinds() if k.ssm) * per_layer * dtype_bytes

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
        from workloads.hf import fields_from_hf  # the key mapping, beside this module

        for key, value in fields_from_hf(raw, path).items():
            setattr(self, key, value)
        if self.name in ("custom", "hf"):
            self.name = str(raw.get("_name_or_path") or raw.get("model_type") or path.parent.name)


def hf_config_file(path: str | Path) -> Path:
    """The ``config.json`` that ``model.hf_config_path`` names (the path itself, or config.json in a folder)."""
    path = Path(path)
    return path / "config.json" if path.is_dir() else path


@functools.lru_cache(maxsize=64)
def _layer_kinds(num_layers: int, ssm_state_size: int, attn_layer_period: int, attn_layer_offset: int, is_moe: bool,
                 first_dense_layers: int, moe_layer_period: int, moe_layer_offset: int, global_layer_period: int,
                 kv_share_layers: int, sliding_window: int, attention_chunk: int, ffn_size: int,
                 dense_ffn_size: int) -> tuple[LayerKind, ...]:
    """ModelConfig.layer_kinds of the fields it reads (LayerKind is frozen: the tuple is shared)."""
    kinds, attention_layers = [], 0
    for i in range(num_layers):
        ssm = ssm_state_size > 0 and i % attn_layer_period != attn_layer_offset
        moe = is_moe and i >= first_dense_layers and i % moe_layer_period == moe_layer_offset
        local = not ssm and not (global_layer_period and (i + 1) % global_layer_period == 0)
        owner = ssm or attention_layers % kv_share_layers == 0
        attention_layers += not ssm
        kinds.append(LayerKind(ssm, sliding_window if local else 0, attention_chunk if local else 0,
                               moe, ffn_size if moe else (dense_ffn_size or ffn_size), owner))
    return tuple(kinds)
