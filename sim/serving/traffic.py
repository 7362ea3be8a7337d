"""The requests of a serving run: arrival times and lengths, generated from the seed or read from a trace.

Arrival processes (``workload.arrival``):

* ``poisson``: exponential inter-arrival times with mean ``1 / rate_per_s``;
* ``gamma``: gamma inter-arrival times with the same mean and coefficient of variation ``cv``
  (shape ``1 / cv^2``): ``cv > 1`` is bursty, ``cv = 1`` is Poisson;
* ``closed``: ``concurrency`` users; each sends a request, waits for it to complete and sends
  the next one at once (no think time); the first ``concurrency`` arrive at time 0;
* ``trace``: a CSV with ``arrival_s, prompt_tokens, output_tokens`` (seconds, tokens), its first
  ``num_requests`` rows, which also give the lengths.

Lengths (``workload.lengths``) around the means ``prompt_tokens`` and ``decode_tokens``: ``fixed``;
``uniform`` with coefficient of variation ``length_cv`` (half-width ``sqrt(3) x cv x mean``, at
least 1 token); ``lognormal`` with that mean and coefficient of variation. Draws are rounded to
whole tokens, at least 1, and a request's prompt plus output is clipped to the model's context.

Every draw comes from numpy Generators seeded from ``seed`` (one stream each for arrivals,
prompts and outputs), so the same seed gives the same requests, bit for bit.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.config.schema import ArrivalProcess, LengthDistribution, RunError, WorkloadConfig

TRACE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")


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
    """

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    rows: np.ndarray
    users: int
    source: str

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
        return read_trace(Path(w.trace_path), w.num_requests, max_context)
    arrivals_ss, prompts_ss, outputs_ss = np.random.SeedSequence(seed).spawn(3)
    n = w.num_requests
    arrivals = _arrivals(w, n, np.random.default_rng(arrivals_ss))
    prompts = _lengths(w.lengths, w.prompt_tokens, w.length_cv, n, np.random.default_rng(prompts_ss))
    outputs = _lengths(w.lengths, w.decode_tokens, w.length_cv, n, np.random.default_rng(outputs_ss))
    prompts = np.minimum(prompts, max_context - 1)
    outputs = np.minimum(outputs, max_context - prompts)
    users = w.concurrency if w.arrival is ArrivalProcess.closed else 0
    if w.arrival is ArrivalProcess.closed:
        how = f"closed loop, {users} users"
    elif w.arrival is ArrivalProcess.gamma:
        how = f"gamma arrivals, {w.rate_per_s:g}/s, cv {w.cv:g}"
    else:
        how = f"poisson arrivals, {w.rate_per_s:g}/s"
    lengths = "fixed" if w.lengths is LengthDistribution.fixed else f"{w.lengths.value}, cv {w.length_cv:g}"
    source = f"{how}; prompt {w.prompt_tokens}, output {w.decode_tokens} tokens ({lengths})"
    return Traffic(arrivals, prompts, outputs, np.arange(1, n + 1), users, source)


def _arrivals(w: WorkloadConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    if w.arrival is ArrivalProcess.closed:
        return np.full(n, math.nan)
    mean = 1.0 / w.rate_per_s
    if w.arrival is ArrivalProcess.gamma:
        shape = 1.0 / w.cv**2
        gaps = rng.gamma(shape, mean / shape, n)
    else:
        gaps = rng.exponential(mean, n)
    return np.cumsum(gaps)


def _lengths(dist: LengthDistribution, mean: int, cv: float, n: int, rng: np.random.Generator) -> np.ndarray:
    if dist is LengthDistribution.fixed or cv == 0:
        return np.full(n, mean, dtype=np.int64)
    if dist is LengthDistribution.uniform:
        half = math.sqrt(3.0) * cv * mean
        draws = rng.uniform(max(1.0, mean - half), mean + half, n)
    else:
        sigma2 = math.log1p(cv * cv)
        draws = rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), n)
    return np.maximum(1, np.rint(draws)).astype(np.int64)


def read_trace(path: Path, limit: int, max_context: int) -> Traffic:
    """The first ``limit`` rows of a CSV trace with ``arrival_s, prompt_tokens, output_tokens``.

    Raises:
        RunError: a missing file or column, or a row with a bad value (named by its row number,
            the first data row being row 1).
    """
    if not path.is_file():
        raise RunError(f"workload.trace_path: no file at {path}")
    arrivals, prompts, outputs = [], [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in TRACE_COLUMNS if c not in columns]
        if missing:
            raise RunError(f"trace {path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                           f"a trace needs {', '.join(TRACE_COLUMNS)} (got {', '.join(columns) or 'no header'})")
        reader.fieldnames = columns
        for row, record in enumerate(reader, start=1):
            if row > limit:
                break
            arrival = _number(path, row, record, "arrival_s", float)
            prompt = _number(path, row, record, "prompt_tokens", int)
            output = _number(path, row, record, "output_tokens", int)
            if not (math.isfinite(arrival) and arrival >= 0):
                raise RunError(f"trace {path} row {row}: arrival_s is {arrival}; arrival times are seconds >= 0")
            for key, value in (("prompt_tokens", prompt), ("output_tokens", output)):
                if value < 1:
                    raise RunError(f"trace {path} row {row}: {key} is {value}; lengths are whole numbers >= 1")
            if prompt + output > max_context:
                raise RunError(f"trace {path} row {row}: prompt_tokens + output_tokens = {prompt + output} exceeds "
                               f"the model's context of {max_context} tokens")
            arrivals.append(arrival)
            prompts.append(prompt)
            outputs.append(output)
    if not arrivals:
        raise RunError(f"trace {path}: no rows after the header")
    order = np.argsort(np.asarray(arrivals), kind="stable")
    source = f"trace {path.name}, {len(order)} rows"
    return Traffic(np.asarray(arrivals)[order], np.asarray(prompts, dtype=np.int64)[order],
                   np.asarray(outputs, dtype=np.int64)[order], order + 1, 0, source)


def _number(path: Path, row: int, record: dict, key: str, kind: type) -> float | int:
    text = (record.get(key) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise RunError(f"trace {path} row {row}: {key} is '{text}', not a number") from None
    if kind is int:
        if not value.is_integer():
            raise RunError(f"trace {path} row {row}: {key} is {text}; lengths are whole numbers >= 1")
        return int(value)
    return value
