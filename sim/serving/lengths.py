"""Prompt and output lengths of drawn requests: parametric around the means, or a dataset's.

``workload.lengths`` draws prompts and outputs, ``workload.output_lengths`` (when set) outputs
only. Around ``prompt_tokens`` and ``decode_tokens``: ``fixed``; ``uniform`` with coefficient of
variation ``length_cv`` (half-width ``sqrt(3) x cv x mean``, at least 1 token); ``lognormal`` with
that mean and coefficient of variation. A dataset brings its own statistics (``DATASETS`` below,
each figure with its source), or its rows: ``azure_code`` and ``azure_conv`` draw whole rows of the
shipped Azure traces (data/traces/), so a prompt keeps the output it came with when both sides
come from the same trace. Draws are rounded to whole tokens, at least 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from sim.config.schema import LengthDistribution, RunError, WorkloadConfig
from sim.serving.traces import TRACE_OF, shipped_trace

Z99 = NormalDist().inv_cdf(0.99)  # the standard normal's 99th percentile (scipy.stats.norm.ppf gives the same bits)


@dataclass(frozen=True)
class Lognormal:
    """A lognormal length distribution, clipped at ``cap`` tokens (0: no cap)."""

    mu: float
    sigma: float
    cap: int = 0

    @classmethod
    def from_mean_cv(cls, mean: float, cv: float, cap: int = 0) -> Lognormal:
        sigma2 = math.log1p(cv * cv)
        return cls(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), cap)

    @classmethod
    def from_median_p99(cls, median: float, p99: float, cap: int = 0) -> Lognormal:
        return cls(math.log(median), math.log(p99 / median) / Z99, cap)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        draws = np.maximum(1, np.rint(rng.lognormal(self.mu, self.sigma, n))).astype(np.int64)
        return np.minimum(draws, self.cap) if self.cap else draws


@dataclass(frozen=True)
class Dataset:
    """Length statistics of a benchmark dataset: prompts and outputs (None: this side is not given)."""

    prompt: Lognormal | None
    output: Lognormal | None
    source: str


DATASETS = {
    # Kwon et al., "Efficient Memory Management for LLM Serving with PagedAttention" (vLLM), SOSP 2023,
    # Fig. 11: ShareGPT mean input 161.31 and output 337.99 tokens; Alpaca 19.31 and 58.45. The paper
    # gives the means and histograms only: the coefficients of variation are ESTIMATE (read off the
    # histograms' long tails: ShareGPT's spread past 1,000 tokens, Alpaca's tighter).
    LengthDistribution.sharegpt: Dataset(Lognormal.from_mean_cv(161.31, 1.0), Lognormal.from_mean_cv(337.99, 1.0),
                                         "ShareGPT, vLLM paper means"),
    LengthDistribution.alpaca: Dataset(Lognormal.from_mean_cv(19.31, 0.7), Lognormal.from_mean_cv(58.45, 0.7),
                                       "Alpaca, vLLM paper means"),
    # Chat answers as in MLPerf Inference's Llama-2-70B server benchmark (OpenOrca, generation capped at
    # 1,024 tokens; MLCommons, v4.0, 2024): output median about 260 and p99 about 860 tokens, mean about
    # 290 (the statistics issue 15 of this project states). Lognormal fitted to the median and p99
    # (ESTIMATE: the shape between them is assumed); the cap trims the mean to about 295.
    LengthDistribution.chat: Dataset(None, Lognormal.from_median_p99(260, 860, cap=1024),
                                     "chat answers, median 260, p99 860, cap 1024"),
}


def draw_lengths(w: WorkloadConfig, n: int, prompts_rng: np.random.Generator,
                 outputs_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """Prompt and output lengths of ``n`` drawn requests and how they were drawn (for the report)."""
    out_dist = w.output_lengths or w.lengths
    if w.lengths in TRACE_OF and out_dist is w.lengths:  # whole rows: a prompt keeps its own output
        trace = shipped_trace(TRACE_OF[w.lengths])
        rows = prompts_rng.integers(0, len(trace.prompt_tokens), n)
        return trace.prompt_tokens[rows], trace.output_tokens[rows], f"lengths of {trace.name} rows"
    prompts, p_how = _side(w.lengths, "prompt", w.prompt_tokens, w.length_cv, n, prompts_rng)
    outputs, o_how = _side(out_dist, "output", w.decode_tokens, w.length_cv, n, outputs_rng)
    return prompts, outputs, f"prompts {p_how}, outputs {o_how}"


def _side(dist: LengthDistribution, side: str, mean: int, cv: float, n: int,
          rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One side's lengths (``side`` is prompt or output) and how they were drawn."""
    if dist in TRACE_OF:
        trace = shipped_trace(TRACE_OF[dist])
        column = trace.prompt_tokens if side == "prompt" else trace.output_tokens
        return column[rng.integers(0, len(column), n)], f"from {trace.name}"
    if dist in DATASETS:
        data = DATASETS[dist]
        law = data.prompt if side == "prompt" else data.output
        if law is None:
            raise RunError(f"workload lengths {dist.value} give {'output' if side == 'prompt' else 'prompt'} lengths "
                           f"only; use it as workload.output_lengths and draw prompts another way")
        return law.draw(n, rng), f"{dist.value} ({data.source})"
    if dist is LengthDistribution.fixed or cv == 0:
        return np.full(n, mean, dtype=np.int64), f"{mean} tokens"
    if dist is LengthDistribution.uniform:
        widest = (mean - 1) / (math.sqrt(3.0) * mean)  # the cv of uniform lengths from 1 to 2 mean - 1
        if cv > widest * (1 + 1e-12):  # clipped at 1 token, the draws would have another mean and cv
            key = "decode_tokens" if side == "output" else "prompt_tokens"
            top = math.floor(widest * 1000) / 1000
            raise RunError(f"workload.length_cv={cv:g}: uniform {side} lengths of mean {mean} (workload.{key}) spread "
                           f"at most to cv {top:g} (from 1 to {2 * mean - 1} tokens); lower it or use "
                           "workload.lengths=lognormal for a wider spread")
        half = math.sqrt(3.0) * cv * mean
        draws = rng.uniform(max(1.0, mean - half), mean + half, n)
        return np.maximum(1, np.rint(draws)).astype(np.int64), f"uniform, mean {mean}, cv {cv:g}"
    return Lognormal.from_mean_cv(mean, cv).draw(n, rng), f"lognormal, mean {mean}, cv {cv:g}"
