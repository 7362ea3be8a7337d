"""Request traces: the shipped Azure LLM inference traces and CSV files of the user's own.

Two formats, told apart by their header:

* llmsim's own: ``arrival_s, prompt_tokens, output_tokens`` (seconds, tokens);
* Azure's (the Azure LLM inference traces 2023, Patel et al. ISCA 2024 "Splitwise"; data/traces/
  README.md has their source and licence): ``TIMESTAMP, ContextTokens, GeneratedTokens``, the
  timestamp a wall-clock time; arrivals are seconds after the first one.

``workload.trace=azure_code|azure_conv`` names a shipped trace, ``workload.trace_path`` a file.
Rows are replayed in arrival order (stable: ties keep the file's order); ``rows`` keeps each
request's row in the file (1-based, the first data row being row 1) for error messages.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from sim.config.paths import DATA_DIR
from sim.config.schema import LengthDistribution, RunError, TraceName

TRACE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
MAX_ARRIVAL_S = 1e8  # three years of trace: times keep a resolution of 15 ns (an epoch time, 1.7e9 s, keeps 240 ns)
MAX_TOKENS = 10**9  # far beyond any context; a larger count would not fit the step arithmetic's integers
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
TRACE_FILES = {TraceName.azure_code: "azure_llm_2023_code.csv", TraceName.azure_conv: "azure_llm_2023_conv.csv"}
TRACE_OF = {LengthDistribution.azure_code: TraceName.azure_code, LengthDistribution.azure_conv: TraceName.azure_conv}


@dataclass(frozen=True)
class TraceRows:
    """A trace's requests in arrival order: seconds after the first, tokens, rows in the file."""

    name: str
    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    rows: np.ndarray
    azure: bool  # Azure's format (prompts too long for a model are cut, not refused)

    def __len__(self) -> int:
        return len(self.arrival_s)


def trace_path(name: TraceName) -> Path:
    """Where a shipped trace lives."""
    return DATA_DIR / "traces" / TRACE_FILES[TraceName(name)]


@lru_cache(maxsize=4)
def shipped_trace(name: TraceName) -> TraceRows:
    """A shipped trace, read once per process."""
    return read_trace_file(trace_path(name))


def read_trace_file(path: Path) -> TraceRows:
    """Every row of a trace file in either format, sorted by arrival.

    Raises:
        RunError: a missing file or column, or a row with a bad value (named by its row number).
    """
    if not path.is_file():
        raise RunError(f"workload.trace_path: no file at {path}")
    try:
        return _read(path)
    except UnicodeDecodeError as err:
        raise RunError(f"trace {path}: not a text CSV file (byte {err.start} is not UTF-8)") from None
    except (pd.errors.ParserError, csv.Error) as err:  # a malformed row (too many fields, an unclosed quote)
        raise RunError(f"trace {path}: not a readable CSV file: {str(err).strip().splitlines()[-1]}") from None
    except OSError as err:
        raise RunError(f"trace {path}: cannot be read: {err.strerror}") from None


def _read(path: Path) -> TraceRows:
    with path.open(newline="") as handle:
        header = [c.strip() for c in next(csv.reader(handle), [])]
    if all(c in header for c in AZURE_COLUMNS):
        arrivals, prompts, outputs = _read_azure(path)
        azure = True
    else:
        missing = [c for c in TRACE_COLUMNS if c not in header]
        if missing:
            raise RunError(f"trace {path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                           f"a trace needs {', '.join(TRACE_COLUMNS)} or Azure's {', '.join(AZURE_COLUMNS)} "
                           f"(got {', '.join(header) or 'no header'})")
        arrivals, prompts, outputs = _read_own(path)
        azure = False
    if not len(arrivals):
        raise RunError(f"trace {path}: no rows after the header")
    order = np.argsort(arrivals, kind="stable")
    return TraceRows(path.name, arrivals[order], prompts[order], outputs[order], order + 1, azure)


def _read_azure(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(path, skipinitialspace=True, dtype=str)
    frame.columns = [c.strip() for c in frame.columns]
    stamps = pd.to_datetime(frame["TIMESTAMP"].str.strip(), format="%Y-%m-%d %H:%M:%S.%f", errors="coerce")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        raise RunError(f"trace {path} row {bad[0] + 1}: TIMESTAMP is '{frame['TIMESTAMP'][bad[0]]}', not "
                       "YYYY-MM-DD HH:MM:SS.fffffff")
    arrivals = ((stamps - stamps.min()).dt.total_seconds()).to_numpy(dtype=float)
    lengths = []
    for key in AZURE_COLUMNS[1:]:
        values = pd.to_numeric(frame[key].str.strip(), errors="coerce").to_numpy(dtype=float)
        wrong = np.flatnonzero(~(np.isfinite(values) & (values >= 1) & (values <= MAX_TOKENS)
                                 & (values == np.round(values))))
        if wrong.size:
            raise RunError(f"trace {path} row {wrong[0] + 1}: {key} is '{frame[key][wrong[0]]}'; lengths are whole "
                           f"numbers from 1 to {MAX_TOKENS:,}")
        lengths.append(values.astype(np.int64))
    return arrivals, lengths[0], lengths[1]


def _read_own(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrivals, prompts, outputs = [], [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
        for row, record in enumerate(reader, start=1):
            if None in record:  # more fields than the header names (as the Azure reader refuses)
                raise RunError(f"trace {path} row {row}: {len(reader.fieldnames) + len(record[None])} fields, but the "
                               f"header names {len(reader.fieldnames)}")
            arrival = _number(path, row, record, "arrival_s", float)
            prompt = _number(path, row, record, "prompt_tokens", int)
            output = _number(path, row, record, "output_tokens", int)
            if not (math.isfinite(arrival) and 0 <= arrival <= MAX_ARRIVAL_S):
                raise RunError(f"trace {path} row {row}: arrival_s is {arrival}; arrival times are seconds from the "
                               f"trace's start, 0 to {MAX_ARRIVAL_S:g} (a clock's epoch time would leave no precision "
                               "for the steps: subtract the first arrival)")
            for key, value in (("prompt_tokens", prompt), ("output_tokens", output)):
                if not 1 <= value <= MAX_TOKENS:
                    raise RunError(f"trace {path} row {row}: {key} is {value}; lengths are whole numbers from 1 to "
                                   f"{MAX_TOKENS:,}")
            arrivals.append(arrival)
            prompts.append(prompt)
            outputs.append(output)
    return np.asarray(arrivals, dtype=float), np.asarray(prompts, dtype=np.int64), np.asarray(outputs, dtype=np.int64)


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
