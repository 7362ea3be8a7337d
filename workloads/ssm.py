"""State-space (Mamba) mixers of hybrid models: Mamba-1 (Gu & Dao 2023, arXiv 2312.00752) as in
Jamba, and Mamba-2 (Dao & Gu 2024, "Transformers are SSMs", arXiv 2405.21060).

A Mamba layer keeps no KV cache: each sequence has a fixed-size state, the scan state
(inner width x ``ssm_state_size`` values) and the causal convolution's last ``kernel - 1`` inputs.
A decode step reads and rewrites that state whatever the context length, so its cost is flat in
context. Ops per layer on one chip (inner width, heads and convolution channels split over tp,
as vLLM's column-parallel in-projection and row-parallel out-projection do):

* ``ssm_in_proj``: hidden -> x and the gate z (Mamba-2 also B, C for each group and dt per head);
* ``ssm_conv``: depthwise causal convolution, 2 x kernel FLOP per channel and token;
* Mamba-1 only: ``ssm_x_proj`` (x -> dt rank + B + C, row-parallel, all-reduced) and ``ssm_dt_proj``;
* ``ssm_scan``: decode, the recurrence ``h = exp(dt A) h + dt B x``, ``y = C h`` per state element
  (Mamba-1: 9 FLOP, an exp per element since A is per channel and state; Mamba-2: 5, A is per
  head; ESTIMATE: counted from the recurrence, on the vector unit); prefill, Mamba-1's selective scan
  (the same 9 FLOP per element, vector unit) or Mamba-2's chunked SSD on the matrix units,
  ``2 T (Q (N + P) + 2 N P)`` FLOP per head for T tokens in chunks of Q (the diagonal blocks
  C B^T and their product with x, the chunk states B^T x and the outputs C h; Dao & Gu 2024 Sec. 6);
* ``ssm_gate``: y x silu(z) (Mamba-2: then a gated RMSNorm);
* ``ssm_out_proj``: inner -> hidden, then the tensor-parallel all-reduce (added by the layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from workloads.blocks import _act, _allreduce, _Dag, _dense, _proj
from workloads.model import ModelConfig
from workloads.ops import Op, OpKind, Role, Tensor, Unit, vector

if TYPE_CHECKING:
    from workloads.graph import Execution

SCAN_FLOPS_MAMBA1 = 9  # per (token, channel, state) element: exp, dt*B*x, decay and add, C*h; ESTIMATE (see above)
SCAN_FLOPS_MAMBA2 = 5  # per element: decay and add, dt*B*x, C*h; exp(dt A) once per head; ESTIMATE


def _shard(n: int, t: int) -> int:
    return -(-n // t)


def ssm_mixer(dag: _Dag, model: ModelConfig, ex: Execution, prefill: Sequence[int], resumed: int,
              decodes: int) -> str:
    """The Mamba mixer of one layer on one chip, up to its out-projection (whose name it returns).

    Args:
        prefill: new tokens of each sequence scanning a prompt (or a chunk of one).
        resumed: how many of those continue from a stored state (later chunks, speculative checks).
        decodes: sequences taking one recurrent step.
    """
    t, d, n = ex.tp, model.hidden_size, model.ssm_state_size
    inner, heads, conv = _shard(model.ssm_inner, t), _shard(model.ssm_heads, t), _shard(model.ssm_conv_channels, t)
    mamba2 = model.ssm_head_dim > 0
    bc = 2 * model.ssm_groups * n if mamba2 else 2 * n  # B and C per token
    tokens, seqs = sum(prefill) + decodes, len(prefill) + decodes
    state, conv_state = inner * n * ex.kv_cache.bytes, (model.ssm_conv_kernel - 1) * conv * ex.kv_cache.bytes
    in_width = 2 * inner + (_shard(bc, t) + heads if mamba2 else 0)
    dag.add(_proj("ssm_in_proj", OpKind.ssm_proj, tokens, in_width, d, ex, _act("x", tokens * d, ex), False,
                  _act("xz", tokens * in_width, ex)))
    old = (Tensor("conv_state", (resumed + decodes) * conv_state, Role.kv),) if resumed + decodes else ()
    dag.add(vector("ssm_conv", OpKind.ssm_conv, 2 * model.ssm_conv_kernel * tokens * conv,
                   [_act("x", tokens * conv, ex), _dense("w_conv", conv * (model.ssm_conv_kernel + 1), ex), *old],
                   [_act("x_conv", tokens * conv, ex), Tensor("conv_state", seqs * conv_state, Role.kv)]))
    if not mamba2:
        rank = model.dt_rank
        x_proj = dag.add(_proj("ssm_x_proj", OpKind.ssm_proj, tokens, rank + bc, inner, ex,
                               _act("x_conv", tokens * inner, ex), False, _act("dt_bc", tokens * (rank + bc), ex)))
        if t > 1:
            dag.add(_allreduce("ssm_x_allreduce", ex, tokens * (rank + bc)), after=(x_proj,))
        dag.add(_proj("ssm_dt_proj", OpKind.ssm_proj, tokens, inner, rank, ex, _act("dt_low", tokens * rank, ex),
                      True, _act("dt", tokens * inner, ex)))
    per_token = inner + bc + (heads if mamba2 else inner)  # x, B, C and dt the scan reads per token
    both = bool(prefill) and decodes > 0
    if prefill:
        dag.add(_prefill_scan(model, ex, prefill, resumed, inner, heads, per_token, state, "prefill_" if both else ""))
    if decodes:
        flops = (SCAN_FLOPS_MAMBA2 if mamba2 else SCAN_FLOPS_MAMBA1) * decodes * inner * n
        dag.add(vector("decode_ssm_scan" if both else "ssm_scan", OpKind.ssm_scan, flops,
                       [_act("x_dt_bc", decodes * per_token, ex), Tensor("ssm_state", decodes * state, Role.kv)],
                       [_act("y", decodes * inner, ex), Tensor("ssm_state", decodes * state, Role.kv)]))
    dag.add(vector("ssm_gate", OpKind.activation, (10 if mamba2 else 5) * tokens * inner,
                   [_act("y", tokens * inner, ex), _act("z", tokens * inner, ex)], [_act("g", tokens * inner, ex)]))
    return dag.add(_proj("ssm_out_proj", OpKind.ssm_proj, tokens, d, inner, ex, _act("g", tokens * inner, ex), False,
                         _act("out", tokens * d, ex)))


def _prefill_scan(model: ModelConfig, ex: Execution, prefill: Sequence[int], resumed: int, inner: int, heads: int,
                  per_token: int, state: float, prefix: str) -> Op:
    """The scan over whole prompts or chunks: Mamba-2's chunked SSD (matrix) or Mamba-1's selective scan."""
    n, tokens = model.ssm_state_size, sum(prefill)
    reads = [_act("x_dt_bc", tokens * per_token, ex)]
    if resumed:
        reads.append(Tensor("ssm_state", resumed * state, Role.kv))
    writes = (_act("y", tokens * inner, ex), Tensor("ssm_state", len(prefill) * state, Role.kv))
    if not model.ssm_head_dim:
        return vector(f"{prefix}ssm_scan", OpKind.ssm_scan, SCAN_FLOPS_MAMBA1 * tokens * inner * n, reads, writes)
    p, q = model.ssm_head_dim, model.ssm_chunk
    flops = sum(2.0 * s * (min(q, s) * (n + p) + 2 * n * p) for s in prefill) * heads
    chunks = sum(-(-s // q) for s in prefill)
    return Op(f"{prefix}ssm_scan", OpKind.ssm_scan, Unit.matrix, flops, tuple(reads), writes, ex.activations,
              m=min(q, max(prefill)), n=p, k=n, groups=chunks * heads)
