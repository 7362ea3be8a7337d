"""Operators: what one kernel computes and which bytes it reads and writes.

An Op is frozen and hashable, so identical ops (the same projection in every layer, every
decode step) are costed once per run. It describes work per chip: with tensor parallelism the
shapes are already the shard's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hwmodels.numerics import DType


class Unit(str, Enum):
    """Which part of the chip does an op's arithmetic."""

    matrix = "matrix"  # compute arrays (tensor cores, MXUs)
    vector = "vector"  # vector unit: elementwise ops, reductions, softmax, norms
    link = "link"  # chip-to-chip fabric: collectives


class Role(str, Enum):
    """What a tensor is, for the memory breakdown."""

    weight = "weight"
    activation = "activation"
    kv = "kv"  # the KV cache
    kv_host = "kv_host"  # the share of the KV cache spilled to the host tier: moves over the host link, not HBM


class OpKind(str, Enum):
    """Operator type, the rows of the time breakdown."""

    embedding = "embedding"
    norm = "norm"
    qkv_proj = "qkv_proj"
    rope = "rope"
    attention = "attention"  # fused attention kernel (scores, softmax and context in one)
    attn_score = "attn_score"  # unfused: Q @ K^T, scores written to HBM
    softmax = "softmax"
    attn_context = "attn_context"  # unfused: P @ V
    out_proj = "out_proj"
    mla_absorb = "mla_absorb"  # MLA absorbed form: per-head Q into the latent space, the latent output back out
    kv_expand = "kv_expand"  # MLA naive form: the latent up-projected to per-head K and V
    ssm_proj = "ssm_proj"  # Mamba in-projection (and Mamba-1's dt, B, C projections)
    ssm_conv = "ssm_conv"  # Mamba's causal depthwise convolution
    ssm_scan = "ssm_scan"  # the selective scan: the state recurrence (decode) or chunked scan (prefill)
    mlp_up = "mlp_up"  # gate and up projections, fused into one GEMM
    activation = "activation"
    mlp_down = "mlp_down"
    router = "router"  # mixture of experts: token-to-expert scores
    expert_up = "expert_up"  # grouped GEMM over the experts that received tokens
    expert_down = "expert_down"
    alltoall = "alltoall"  # expert-parallel dispatch and combine
    residual = "residual"
    allreduce = "allreduce"
    allgather = "allgather"
    send = "send"  # point to point: a pipeline stage's activations, a KV cache moved between instances
    lm_head = "lm_head"
    sampling = "sampling"


@dataclass(frozen=True, slots=True)
class Tensor:
    """A tensor an op moves between HBM and the chip."""

    name: str
    nbytes: float
    role: Role


@dataclass(frozen=True, slots=True)
class Op:
    """One kernel on one chip.

    For matrix ops ``m, n, k, groups`` give the shape: ``groups`` independent products of
    ``(m x k) @ (k x n)``; ``flops`` is then ``2*m*n*k*groups``. Vector ops carry only ``flops``.
    Link ops carry the collective's payload per chip in ``comm_bytes`` over ``comm_chips`` (a send:
    ``comm_chips=2``, sender and receiver), which sit in ``comm_nodes`` scale-up domains (1: all in
    one, on the chip's fabric; more: the collective also crosses the scale-out network).
    """

    name: str
    kind: OpKind
    unit: Unit
    flops: float
    reads: tuple[Tensor, ...] = ()
    writes: tuple[Tensor, ...] = ()
    dtype: DType = DType.bf16  # format the arithmetic runs in
    m: int = 0
    n: int = 0
    k: int = 0
    groups: int = 1
    comm_bytes: float = 0.0
    comm_chips: int = 1
    dequant_flops: float = 0.0  # vector work to widen quantized weights before the matrix units use them
    kernel: str = ""  # the kernel family that runs it where it matters (fused attention: workloads/attention.py)
    comm_nodes: int = 1  # scale-up domains the collective's chips span (hwmodels/network.py)

    @property
    def tier(self) -> str:
        """The network a link op's bytes cross: scale_out once its chips span domains, else scale_up; "" otherwise."""
        if self.unit is not Unit.link:
            return ""
        return "scale_out" if self.comm_nodes > 1 else "scale_up"

    @property
    def hbm_bytes(self) -> float:
        """Bytes read plus written in HBM (each tensor once: perfect on-chip reuse); the host tier's are not."""
        return sum(t.nbytes for t in self.reads if t.role is not Role.kv_host) + \
            sum(t.nbytes for t in self.writes if t.role is not Role.kv_host)

    @property
    def host_bytes(self) -> float:
        """Bytes read plus written in the host tier (the spilled KV cache), over the host link."""
        return self.bytes_by_role(Role.kv_host)

    def bytes_by_role(self, role: Role) -> float:
        return sum(t.nbytes for t in self.reads + self.writes if t.role is role)

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP per HBM byte (inf when no bytes move)."""
        nbytes = self.hbm_bytes
        return self.flops / nbytes if nbytes else float("inf")


def matmul(name: str, kind: OpKind, m: int, n: int, k: int, dtype: DType, reads, writes, groups: int = 1) -> Op:
    """A matrix op with FLOPs ``2*m*n*k*groups``."""
    return Op(name, kind, Unit.matrix, 2.0 * m * n * k * groups, tuple(reads), tuple(writes), dtype, m, n, k, groups)


def vector(name: str, kind: OpKind, flops: float, reads, writes) -> Op:
    return Op(name, kind, Unit.vector, float(flops), tuple(reads), tuple(writes), DType.fp32)


def tiered(tensor: Tensor, host_fraction: float) -> tuple[Tensor, ...]:
    """A KV-cache tensor split between HBM and the host tier: ``host_fraction`` of its bytes are spilled
    (``Role.kv_host``), the rest stays in HBM. Unsplit when nothing is spilled."""
    if not host_fraction or not tensor.nbytes:
        return (tensor,)
    return (Tensor(tensor.name, tensor.nbytes * (1.0 - host_fraction), tensor.role),
            Tensor(f"{tensor.name}_host", tensor.nbytes * host_fraction, Role.kv_host))
