"""Published efficiencies of attention-kernel families on chip architectures.

A fused attention kernel's time on the arrays is ``FLOPs / (peak of its format x fraction)``,
where the fraction is what the kernel's authors measured for that family on that architecture
(forward pass, as a fraction of the format's dense peak). The fraction already contains
everything the kernel meets on that chip (its clock under load, softmax, pipeline bubbles), so
no fitted matmul efficiency and no power throttle is applied on top. A family with no
published figure for an architecture is costed like any other matmul (hwmodels/compute.py),
and ``fused`` means the best family published for the architecture. The presets' other
architectures (``cdna3``, ``cdna4``, ``blackwell``, ``tpu``, ``gaudi``) have no figure here yet, so
their fused attention is tiled like a matmul.

Sources:

* FlashAttention-2 on Ampere: Dao, "FlashAttention-2: Faster Attention with Better Parallelism
  and Work Partitioning", 2023 (arXiv 2307.08691): forward pass "50-73% of the theoretical
  maximum FLOPs/s on A100"; taken at the middle of that range, 0.62.
* FlashAttention-2 on Hopper: Shah et al., "FlashAttention-3: Fast and Accurate Attention with
  Asynchrony and Low-precision", 2024 (arXiv 2407.08608): FlashAttention-2 "achieves only 35%
  utilization on H100".
* FlashAttention-3 on Hopper, same paper: 16-bit "up to 740 TFLOPs/s (75% utilization)"; fp8
  "close to 1.2 PFLOPs/s", 1.2 / 1.979 = 0.61 of H100's dense fp8 peak.
"""

from __future__ import annotations

from hwmodels.numerics import DType

# (family, architecture) -> fraction of the format's peak; "fp8" keys the 8-bit figure.
ATTENTION_EFFICIENCY: dict[tuple[str, str], dict[str, float]] = {
    ("flash2", "ampere"): {"16bit": 0.62},
    ("flash2", "hopper"): {"16bit": 0.35},
    ("flash3", "hopper"): {"16bit": 0.75, "fp8": 0.61},
}
BEST_FAMILY = {"ampere": "flash2", "hopper": "flash3"}  # what ``fused`` means where a family is published
HOPPER_ONLY = {"flash3": "hopper"}  # families that only exist on one architecture


class KernelError(ValueError):
    """A kernel family the chip's architecture cannot run."""


def attention_family(kernel: str, architecture: str) -> str:
    """The family a fused attention op of ``kernel`` runs as on ``architecture`` ("" if none is published)."""
    if kernel in ("", "fused"):
        return BEST_FAMILY.get(architecture, "")
    needs = HOPPER_ONLY.get(kernel)
    if needs and needs != architecture:
        raise KernelError(f"attention.kernel={kernel} runs only on {needs} chips (the chip's architecture is "
                          f"{architecture}); use fused, flash2 or unfused")
    return kernel if (kernel, architecture) in ATTENTION_EFFICIENCY else ""


def attention_efficiency(kernel: str, architecture: str, dtype: DType) -> float | None:
    """Published fraction of peak for a fused attention op, or None (cost it as a matmul)."""
    family = attention_family(kernel, architecture)
    if not family:
        return None
    figures = ATTENTION_EFFICIENCY[(family, architecture)]
    return figures.get("fp8" if dtype.bits <= 8 else "16bit", figures["16bit"])
