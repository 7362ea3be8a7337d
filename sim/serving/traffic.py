"""The requests of a serving run: arrival times and lengths, generated from the seed or read from a trace.

Arrival processes (``workload.arrival``):

* ``poisson``: exponential inter-arrival times with mean ``1 / rate_per_s``;
* ``gamma``: gamma inter-arrival times with the same mean and coefficient of variation ``cv``
  (shape ``1 / cv^2``): ``cv > 1`` is bursty, ``cv = 1`` is Poisson;
* ``closed``: ``concurrency`` users; each sends a request, waits for it to complete and sends
  the next one at once (no think time); the first ``concurrency`` arrive at time 0;
* ``offline``: every request at time 0 (a batch job; its throughput includes the drain of the last outputs);
* ``trace``: a shipped trace (``workload.trace``) or a CSV (``workload.trace_path``,
  sim/serving/traces.py), all its rows or its first ``num_requests``, which also give the lengths;
  ``trace_scale`` divides its arrival times (2: twice as fast).

Lengths: sim/serving/lengths.py. A request's prompt plus output is clipped to the model's context;
a row of a trace in llmsim's own format that does not fit is refused (its row named), while
the prompts of an Azure trace that do not fit are cut to the context (as a server truncates
its input) and counted in the report.

Conversations (``workload.turns`` > 1): request ``i`` is turn ``i % turns`` of conversation
``i // turns`` (the last one may be shorter). The arrival process gives each conversation's first
turn; a later turn arrives when the turn before it completes plus a think time, exponential with
mean ``workload.think_s`` (its own seeded stream). The drawn prompt of a turn is its user's new
tokens; its prompt is the earlier turns' prompts and outputs plus them (its ``context`` is that
earlier part, whose KV a prefix cache may still hold). A conversation longer than the model's
context is refused, named.

Every draw comes from numpy Generators seeded from ``seed`` (one stream each for arrivals,
prompts and outputs), so the same seed gives the same requests, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.config.schema import ArrivalProcess, RunError, WorkloadConfig
from sim.serving.lengths import draw_lengths
from sim.serving.traces import TraceRows, read_trace_file, shipped_trace


@dataclass(frozen=True)
class Traffic:
    """The requests, in arrival order (closed loop: in the order users send them).

    Attributes:
        arrival_s: arrival times, seconds (NaN for a closed loop: set when a user sends it).
        prompt_tokens: prompt length of each request, tokens.
        output_tokens: tokens each request generates (the first comes from its prefill).
        rows: trace row (1-based) or request number of each, for error messages.
        users: closed-loop users (0: open loop).
        source: how the requests were made, for the report.
        shared_prefix: tokens at the start of every prompt that are the same for all (a system prompt).
        turns: turns per conversation (1: every request stands alone).
        context: prompt tokens of each request that are its conversation's earlier turns (None: turns=1).
        think_s: pause before each request after the turn before it completes, s (None: turns=1).
    """

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    rows: np.ndarray
    users: int
    source: str
    shared_prefix: int = 0
    turns: int = 1
    context: np.ndarray | None = None
    think_s: np.ndarray | None = None

    def follows(self, i: int) -> bool:
        """Whether request ``i`` is a later turn of a conversation (it arrives after the turn before it)."""
        return self.turns > 1 and i % self.turns > 0

    def __len__(self) -> int:
        return len(self.prompt_tokens)

    def where(self, i: int) -> str:
        """Names request ``i`` in an error message."""
        return f"trace row {self.rows[i]}" if self.source.startswith("trace") else f"request {self.rows[i]}"


def make_traffic(w: WorkloadConfig, seed: int, max_context: int) -> Traffic:
    """The requests of workload ``w`` (kind serving), drawn with ``seed`` or read from its trace.

    Raises:
        RunError: an unreadable trace or a bad row (the row is named).
    """
    if w.arrival is ArrivalProcess.trace:
        rows = shipped_trace(w.trace) if w.trace else read_trace_file(Path(w.trace_path))
        return replay(rows, w.num_requests, w.trace_scale, max_context)
    if w.turns > 1:
        return _conversations(w, seed, max_context)
    arrivals_ss, prompts_ss, outputs_ss = np.random.SeedSequence(seed).spawn(3)
    n = w.requests
    arrivals = _arrivals(w, n, np.random.default_rng(arrivals_ss))
    prompts, outputs, lengths = draw_lengths(w, n, np.random.default_rng(prompts_ss),
                                             np.random.default_rng(outputs_ss))
    prefix = w.shared_prefix_tokens
    if prefix >= max_context - 1:
        raise RunError(f"workload.shared_prefix_tokens={prefix} leaves no room in the model's context of "
                       f"{max_context} tokens")
    # a request longer than the context keeps its output (at most what leaves the prefix and a token of prompt) and
    # has its prompt cut, as a trace replay does (``replay``), and the run says how many were
    over = int(np.count_nonzero(prompts + prefix + outputs > max_context))
    shortened = int(np.count_nonzero(outputs > max_context - 1 - prefix))  # an output alone past the context
    outputs = np.minimum(outputs, max_context - 1 - prefix)
    prompts = np.minimum(prompts + prefix, max_context - outputs)
    users = w.concurrency if w.arrival is ArrivalProcess.closed else 0
    shared = f"; a {prefix:,}-token shared prefix before each prompt" if prefix else ""
    cut = f"; {over:,} prompts cut to the model's {max_context:,}-token context" if over else ""
    if shortened:
        cut += f" ({shortened:,} outputs shortened too, to {max_context - 1 - prefix:,} tokens)"
    return Traffic(arrivals, prompts, outputs, np.arange(1, n + 1), users, f"{_how(w)}; {lengths}{shared}{cut}",
                   prefix)


def _conversations(w: WorkloadConfig, seed: int, max_context: int) -> Traffic:
    """``w.requests`` turns of conversations of ``w.turns`` turns (sim/serving/traffic.py's docstring).

    Raises:
        RunError: a conversation outgrows the model's context.
    """
    arrivals_ss, prompts_ss, outputs_ss, think_ss = np.random.SeedSequence(seed).spawn(4)
    n, turns = w.requests, w.turns
    starts = _arrivals(w, -(-n // turns), np.random.default_rng(arrivals_ss))
    new, outputs, lengths = draw_lengths(w, n, np.random.default_rng(prompts_ss), np.random.default_rng(outputs_ss))
    conv, turn = np.arange(n) // turns, np.arange(n) % turns
    spent = np.cumsum(new + outputs)  # tokens of each conversation up to and including each turn
    before = spent - (new + outputs)
    context = before - before[conv * turns]  # the conversation's tokens before this turn
    prompts = context + new
    over = np.flatnonzero(prompts + outputs > max_context)
    if over.size:
        i = int(over[0])
        raise RunError(f"conversation {conv[i] + 1} turn {turn[i] + 1}: its earlier turns and its own prompt and "
                       f"output, {prompts[i] + outputs[i]:,} tokens, exceed the model's context of {max_context:,}; "
                       "lower workload.turns or the lengths")
    arrivals = np.full(n, math.nan)
    arrivals[turn == 0] = starts
    think = np.where(turn > 0, np.random.default_rng(think_ss).exponential(w.think_s, n), 0.0)
    convs = -(-n // turns)
    last = "" if not n % turns else f" (the last of {n % turns})" if convs > 1 else f" (its first {n})"  # cut short
    how = (f"{_how(w)}; {convs:,} conversation{'s' if convs != 1 else ''} of {turns} turns{last}, think time mean "
           f"{w.think_s:g} s")
    return Traffic(arrivals, prompts, outputs, np.arange(1, n + 1), 0, f"{how}; {lengths} per turn", 0,
                   turns, context, think)


def _how(w: WorkloadConfig) -> str:
    if w.arrival is ArrivalProcess.closed:
        return f"closed loop, {w.concurrency} users"
    if w.arrival is ArrivalProcess.offline:
        return "offline, every request at t = 0"
    if w.arrival is ArrivalProcess.gamma:
        return f"gamma arrivals, {w.rate_per_s:g}/s, cv {w.cv:g}"
    return f"poisson arrivals, {w.rate_per_s:g}/s"


def replay(trace: TraceRows, limit: int | None, scale: float, max_context: int) -> Traffic:
    """The first ``limit`` rows of ``trace`` (all when None), ``scale`` times as fast, fitted to the context.

    Raises:
        RunError: a row of llmsim's own format longer than the context.
    """
    keep = np.flatnonzero(trace.rows <= limit) if limit is not None else np.arange(len(trace))
    prompts, outputs = trace.prompt_tokens[keep], trace.output_tokens[keep]
    over = np.flatnonzero(prompts + outputs > max_context)
    cut = ""
    if over.size and not trace.azure:
        i = int(over[np.argmin(trace.rows[keep][over])])
        raise RunError(f"trace {trace.name} row {trace.rows[keep][i]}: prompt_tokens + output_tokens = "
                       f"{prompts[i] + outputs[i]} exceeds the model's context of {max_context} tokens")
    if over.size:
        outputs = np.minimum(outputs, max_context - 1)
        prompts = np.minimum(prompts, max_context - outputs)
        cut = f"; {over.size:,} prompts cut to the model's {max_context:,}-token context"
    arrivals = trace.arrival_s[keep] / scale
    speed = f", {scale:g}x as fast" if scale != 1 else ""
    return Traffic(arrivals, prompts, outputs, trace.rows[keep], 0,
                   f"trace {trace.name}, {keep.size:,} rows{speed}{cut}")


def _arrivals(w: WorkloadConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    if w.arrival is ArrivalProcess.closed:
        return np.full(n, math.nan)
    if w.arrival is ArrivalProcess.offline:
        return np.zeros(n)
    mean = 1.0 / w.rate_per_s
    if w.arrival is ArrivalProcess.gamma:
        shape = 1.0 / w.cv**2
        gaps = rng.gamma(shape, mean / shape, n)
    else:
        gaps = rng.exponential(mean, n)
    return np.cumsum(gaps)
