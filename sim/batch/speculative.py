"""Speculative decoding: the passes of a draft-and-verify step and how many tokens it yields.

Each step the draft model decodes ``k`` tokens one pass at a time, then the target model runs
one pass over the ``k + 1`` positions (the last accepted token and the ``k`` drafts) and
scores all of them. With each drafted token accepted independently with probability ``a``,
a step yields ``1 + a + a^2 + ... + a^k = (1 - a^(k+1)) / (1 - a)`` tokens on average (the
target always contributes one); with ``a = 0`` a step costs more than a plain decode step and
yields one token, with ``a`` near 1 it yields ``k + 1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from workloads.graph import Execution, PassGraph, Phase, build_pass
from workloads.model import ModelConfig


def expected_tokens(k: int, acceptance: float) -> float:
    """Mean tokens a draft-and-verify step yields."""
    if acceptance >= 1.0:
        return float(k + 1)
    return (1.0 - acceptance ** (k + 1)) / (1.0 - acceptance)


def steps_needed(tokens: int, k: int, acceptance: float) -> int:
    """Draft-and-verify steps to produce ``tokens`` tokens on average."""
    return math.ceil(tokens / expected_tokens(k, acceptance)) if tokens > 0 else 0


def speculative_passes(target: ModelConfig, draft: ModelConfig, ex: Execution, batch: int, prompt: int,
                       tokens: int, k: int, acceptance: float) -> Iterator[PassGraph]:
    """Decode passes for ``tokens`` tokens after the prefill: per step, k draft passes, then a verify.

    Step i (1-based) starts with ``prompt + 1 + (i - 1) * E`` tokens known (E the expected
    yield, rounded down), the draft attends to them plus its own drafts, and the target
    verifies ``k + 1`` positions with logits for each.
    """
    per_step = expected_tokens(k, acceptance)
    for i in range(1, steps_needed(tokens, k, acceptance) + 1):
        known = prompt + 1 + int((i - 1) * per_step)
        for j in range(k):
            yield build_pass(draft, ex, Phase.decode, batch, 1, known + j, step=i)
        yield build_pass(target, ex, Phase.decode, batch, k + 1, known + k, step=i, logits_per_seq=k + 1)
