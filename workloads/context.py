"""Context parallelism: a prefill's sequence split over ``cp`` ranks (each a tensor-parallel group) with
ring attention, and a decode over the KV cache that split leaves sharded.

The layout. The prompt of S tokens is cut into 2 cp chunks of h = ceil(S / 2 cp) tokens (padded) and
rank i holds chunks i and 2 cp - 1 - i, the causal load balancing of Llama 3's context parallelism
(Llama Team 2024, arXiv 2407.21783, Sec. 3.3.2) and of Meta's million-token inference (Yang et al.
2024, "Context Parallelism for Scalable Million-Token Inference", arXiv 2411.01783). Every op outside
attention (projections, MLP, norms) runs on the rank's 2h tokens.

The ring (Liu, Zaharia and Abbeel 2023, "Ring Attention with Blockwise Transformers", arXiv
2310.01889; the pass-KV ring of arXiv 2411.01783; Llama 3's training all-gathers K and V instead): in
step 0 a rank attends its queries to its own keys; in step j = 1 .. cp - 1 to the block of keys and
values that arrived from its ring neighbour, while it forwards that block on. A block is the rank's K
and V, ``2h x 2 x kv_heads/tp x head_dim`` values per sequence, sent point to point on the scale-up
link (``OpKind.send``, costed by hwmodels/links.py like any send). On the DAG step 0
(``attention``) and send 1 (``cp_ring_send1``) start together; step j (``ring<j>_attention``) starts
when step j - 1 and send j have both ended; send j + 1 follows send j on the link stream. So the
sends hide behind the steps while a send takes less than a step, and the layer's attention is then
the steps back to back.

Pairs per step with that layout (per sequence and head), rank i holding chunks (i, 2cp-1-i): step 0,
the two diagonal chunks and the later chunk over the earlier one, ``h(h+1) + h^2``. A block from rank
j < i: both of i's chunks see j's earlier chunk whole and neither sees j's later one (``2 h^2``); from
j > i: i's later chunk sees both of j's chunks whole and i's earlier chunk sees neither (``2 h^2``).
Each rank thus computes ``2 cp h^2 + h = S(S+1)/(2 cp)`` over its steps (S = 2 cp h, padded): the
causal total over cp, so no rank waits on a busier one.

Decode after such a prefill: each rank holds 1/cp of every sequence's KV cache, attends the new token
to it, and the ranks all-gather their partial outputs and log-sum-exps to combine them
(``cp_combine``); everything else is replicated over the cp ranks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workloads.attention import attention_kernel
from workloads.blocks import _act, _Dag
from workloads.model import ModelConfig
from workloads.ops import Op, OpKind, Role, Tensor, Unit

if TYPE_CHECKING:
    from workloads.graph import Execution

def chunk_tokens(tokens: int, cp: int) -> int:
    """Tokens per chunk when ``tokens`` are cut into ``2 cp`` equal chunks (the last ones padded)."""
    return -(-tokens // (2 * cp))


def rank_tokens(tokens: int, cp: int) -> int:
    """Tokens of a sequence one context-parallel rank holds: two chunks."""
    return 2 * chunk_tokens(tokens, cp)


def step_pairs(tokens: int, cp: int) -> tuple[float, float]:
    """(query, key) pairs per sequence and head of a rank's first ring step (its own keys) and of each
    later step (a neighbour's block), with the load-balanced layout."""
    h = chunk_tokens(tokens, cp)
    return float(2 * h * h + h), float(2 * h * h)


def ring_block_bytes(model: ModelConfig, ex: Execution, batch: int, tokens: int) -> float:
    """Bytes of one ring block per chip: the rank's K and V of every sequence, this chip's KV heads."""
    return batch * rank_tokens(tokens, ex.cp) * 2 * (model.num_kv_heads // ex.tp) * model.head_dim * \
        ex.activations.bytes


def ring_attention(model: ModelConfig, ex: Execution, batch: int, tokens: int, writes_kv: bool = True) -> list[Op]:
    """A context-parallel prefill's attention on one chip: step 0, then per later step a send and the
    attention over the block received (order: attention, send 1, step 1, send 2, step 2, ...)."""
    cp, hd = ex.cp, model.head_dim
    kv_heads = model.num_kv_heads // ex.tp
    local = batch * rank_tokens(tokens, cp)
    own, peer = step_pairs(tokens, cp)
    block = ring_block_bytes(model, ex, batch, tokens)
    ops = attention_kernel(model, ex, seqs=batch, queries=local, pairs=own * batch,
                           kv_read=(_act("kv", local * 2 * kv_heads * hd, ex),), context=local // batch,
                           score_pairs=local * (local // batch), writes_kv=writes_kv)
    for j in range(1, cp):
        ops.append(Op(f"cp_ring_send{j}", OpKind.send, Unit.link, 0.0, comm_bytes=block, comm_chips=2))
        ops += attention_kernel(model, ex, seqs=batch, queries=local, pairs=peer * batch,
                                kv_read=(Tensor("kv_block", block, Role.activation),), context=local // batch,
                                score_pairs=local * (local // batch), prefix=f"ring{j}_", writes_kv=False)
    return ops


def add_ring(dag: _Dag, ops: list[Op]) -> None:
    """Lay out ``ring_attention``'s ops: step 0 and the first send both after what came before; step j
    after step j - 1 and send j; send j + 1 after send j. The last step is ``dag.last``."""
    start = dag.last
    step = dag.add(ops[0], after=start)
    send_after = start
    for j in range(1, len(ops), 2):
        send = dag.add(ops[j], after=send_after)
        step = dag.add(ops[j + 1], after=(step, send))
        send_after = (send,)
    dag.last = (step,)
