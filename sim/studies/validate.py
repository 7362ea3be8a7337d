"""``llmsim-validate [PATH.csv]``: predictions against measured rows (default: the shipped A100 set).

Columns (header required; extra columns are kept in the output):
``id, hardware, kind, dtype, m, n, k, bytes, devices, model, batch, seq_len, measured_ms``.

kinds: ``gemm`` (one m x k @ k x n matmul), ``allreduce`` (``bytes`` per device over
``devices``), ``memcpy`` (``bytes`` read plus written), ``prefill`` (the whole batch's prefill of
``seq_len`` prompt tokens per sequence at tensor-parallel degree ``devices``), ``decode`` (one
decode step of the batch at context ``seq_len``). Each prediction is the op or pass time the
simulator would use, with the chip preset's fitted efficiencies and overheads.

Optional columns:

* ``runtime``: the software stack (a conf/runtime preset: ``graphs``, the default; ``vllm_eager``
  for 2023 eager-mode vLLM; ``trtllm``): host costs, fused elementwise ops, the attention family,
  in-switch reduction, and what an 8-bit ``dtype`` means (``trtllm``: 8-bit GEMM inputs, 16-bit
  activations and KV; otherwise every tensor in that format);
* ``host``: the host CPU (a conf/host preset) whose single-thread score scales the runtime's
  host costs; default: the host of the system preset built around the row's chip;
* ``layers``: a measurement of that many layers of the model (per-layer measurements are common);
  memory is checked for that many.

A row whose ``seq_len`` exceeds the model's published maximum context is predicted all the
same (kernel studies use synthetic lengths) and says so in the ``prediction_note`` column.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from hwmodels.chip import HardwareConfig, HardwareError
from hwmodels.numerics import DType
from sim.config.presets import PresetError, load_hardware, load_host, load_model, load_runtime, usual_host
from sim.config.schema import RunError
from sim.engine.analytic import simulate_analytic
from sim.engine.costing import Coster
from sim.engine.records import HostCosts
from workloads.footprint import kv_bytes_per_chip, weight_bytes_per_chip
from workloads.graph import Execution, Phase, build_pass
from workloads.model import ModelError
from workloads.ops import Op, OpKind, Role, Tensor, Unit, matmul

COLUMNS = ("id", "hardware", "kind", "dtype", "m", "n", "k", "bytes", "devices", "model", "batch", "seq_len",
           "measured_ms")
OPTIONAL = ("runtime", "host", "layers")
# The largest value a row may hold, far beyond any kernel measured (a unit slip, not a what-if).
ROW_LIMITS = {"m": 1e7, "n": 1e7, "k": 1e7, "bytes": 1e13, "devices": 1e5, "batch": 1e5, "seq_len": 1e8,
              "layers": 1e5}
KINDS = ("gemm", "allreduce", "memcpy", "prefill", "decode")


class RowError(ValueError):
    """A row that cannot be predicted, with the reason."""


def _int(row: dict, key: str) -> int:
    value = row.get(key)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RowError(f"'{key}' must be a number (got {value!r})") from None
    if math.isnan(number) or number < 1 or not number.is_integer():
        raise RowError(f"'{key}' must be a whole number >= 1 (got {value!r})")
    if number > ROW_LIMITS.get(key, 1e9):
        raise RowError(f"'{key}' = {value!r} is out of range: at most {ROW_LIMITS.get(key, 1e9):g}")
    return int(number)


def _dtype(row: dict) -> DType:
    value = row.get("dtype")
    if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
        raise RowError(f"dtype is empty; give the format it ran in: {', '.join(d.value for d in DType)}")
    name = str(value).strip()
    try:
        return DType(name)
    except ValueError:
        raise RowError(f"unknown dtype '{name}'; known: {', '.join(d.value for d in DType)}") from None


def gemm_op(m: int, n: int, k: int, dtype: DType) -> Op:
    e = dtype.bytes
    return matmul("gemm", OpKind.mlp_up, m, n, k, dtype,
                  [Tensor("a", m * k * e, Role.activation), Tensor("b", k * n * e, Role.weight)],
                  [Tensor("c", m * n * e, Role.activation)])


def allreduce_op(nbytes: float, chips: int) -> Op:
    return Op("allreduce", OpKind.allreduce, Unit.link, 0.0, (Tensor("in", nbytes, Role.activation),),
              (Tensor("out", nbytes, Role.activation),), comm_bytes=nbytes, comm_chips=chips)


def memcpy_op(nbytes: float) -> Op:
    return Op("memcpy", OpKind.residual, Unit.vector, 0.0, (Tensor("src", nbytes / 2, Role.activation),),
              (Tensor("dst", nbytes / 2, Role.activation),))


def _has(row: dict, key: str) -> bool:
    value = row.get(key)
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and str(value).strip() != ""


def _runtime(row: dict, runtimes: Mapping | None):
    name = str(row["runtime"]).strip() if _has(row, "runtime") else "graphs"
    return (runtimes or {}).get(name) or load_runtime(name)


def _host(row: dict, chip: HardwareConfig):
    return load_host(str(row["host"]).strip()) if _has(row, "host") else usual_host(chip.name)


def predict(row: dict, chip: HardwareConfig, runtimes: Mapping | None = None,
            costers: dict | None = None) -> tuple[float, str]:
    """Predicted seconds for one measured row on ``chip``, and a note ("" or why the row is unusual).

    ``costers``: a cache of Costers by (chip, in-switch) that the caller keeps across rows.
    """
    kind = str(row.get("kind", "")).strip()
    if _has(row, "layers") and kind not in ("prefill", "decode"):
        raise RowError(f"'layers' applies to prefill and decode rows, not to a {kind} row")
    runtime = _runtime(row, runtimes)
    costers = {} if costers is None else costers
    key = (id(chip), runtime.in_switch_reduction)
    coster = costers.get(key) or costers.setdefault(key, Coster(chip, in_switch=runtime.in_switch_reduction))
    if kind == "gemm":
        return coster(gemm_op(_int(row, "m"), _int(row, "n"), _int(row, "k"), _dtype(row))).time_s, ""
    if kind == "allreduce":
        return coster(allreduce_op(_int(row, "bytes"), _int(row, "devices"))).time_s, ""
    if kind == "memcpy":
        return coster(memcpy_op(_int(row, "bytes"))).time_s, ""
    if kind in ("prefill", "decode"):
        return _predict_pass(row, kind, chip, runtime, coster)
    raise RowError(f"unknown kind '{kind}'; known: {', '.join(KINDS)}")


def predict_s(row: dict, chip: HardwareConfig, runtimes: Mapping | None = None) -> float:
    """Predicted seconds for one measured row on ``chip`` (``runtimes``: presets replaced by name)."""
    return predict(row, chip, runtimes)[0]


def _predict_pass(row: dict, kind: str, chip: HardwareConfig, runtime, coster: Coster) -> tuple[float, str]:
    model = load_model(str(row.get("model", "")).strip())
    note = ""
    if _has(row, "layers"):
        layers = _int(row, "layers")
        if layers > model.num_layers:
            raise RowError(f"layers={layers} exceeds {model.name}'s {model.num_layers} layers")
        model = dataclasses.replace(model, num_layers=layers)
    dtype, tp, batch, seq = _dtype(row), _int(row, "devices"), _int(row, "batch"), _int(row, "seq_len")
    if seq > model.max_context:
        note = f"seq_len {seq} exceeds {model.name}'s maximum context {model.max_context}; predicted anyway"
        model = dataclasses.replace(model, max_context=seq)
    if model.num_heads % tp or model.num_kv_heads % tp:
        raise RowError(f"devices={tp} does not divide {model.name}'s heads")
    wide = DType.fp16 if dtype.bits <= 8 and runtime.quantized_gemm_inputs else dtype
    ex = Execution(weights=dtype, activations=wide, kv_cache=wide, tp=tp, attention=runtime.attention_kernel,
                   fused_elementwise=runtime.fused_elementwise, quantized_gemm_inputs=runtime.quantized_gemm_inputs)
    need = weight_bytes_per_chip(model, ex) + kv_bytes_per_chip(model, ex, batch * seq)
    if need > chip.hbm_capacity_bytes:
        raise RowError(f"{model.name} needs {need / 1e9:.1f} GB per chip at devices={tp} but {chip.name} has "
                       f"{chip.hbm_capacity_GB:g} GB: it does not fit")
    if kind == "prefill":
        graph = build_pass(model, ex, Phase.prefill, batch, seq, seq)
    else:
        graph = build_pass(model, ex, Phase.decode, batch, 1, seq, step=1)
    host = HostCosts.of(runtime, _host(row, chip))
    return simulate_analytic([graph], coster, host).end_s, note


def validate(frame: pd.DataFrame, chip_changes: dict | None = None,
             runtimes: Mapping | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Predict every row; return the rows with ``predicted_ms`` and ``error_pct``, and the problems.

    ``chip_changes`` replace fields of every chip preset; ``runtimes`` maps runtime preset names to
    RuntimeConfigs used instead of the shipped presets (llmsim-calibrate's just-fitted host costs).
    """
    chips: dict[str, HardwareConfig] = {}
    predicted, problems, notes = [], [], []
    costers: dict = {}
    for index, row in enumerate(frame.to_dict("records")):
        label = f"row {index + 2} (id {row.get('id')})"  # +2: the header is line 1
        try:
            name = str(row.get("hardware", "")).strip()
            if name not in chips:
                chips[name] = load_hardware(name, **(chip_changes or {}))
            try:
                measured = float(row.get("measured_ms"))
            except (TypeError, ValueError):
                raise RowError(f"measured_ms must be a number (got {row.get('measured_ms')!r})") from None
            if not measured > 0 or not math.isfinite(measured):
                raise RowError(f"measured_ms must be > 0 (got {row.get('measured_ms')!r})")
            seconds, note = predict(row, chips[name], runtimes, costers)
            predicted.append(seconds * 1e3)
            notes.append(note)
        except (RowError, PresetError, RunError, HardwareError, ModelError, TypeError, ValueError) as err:
            problems.append(f"{label}: {err}")
            predicted.append(float("nan"))
            notes.append(f"skipped: {err}")
    out = frame.copy()
    out["predicted_ms"] = predicted
    out["prediction_note"] = notes
    out["error_pct"] = (out["predicted_ms"] - pd.to_numeric(out["measured_ms"], errors="coerce")) / pd.to_numeric(
        out["measured_ms"], errors="coerce") * 100
    return out, problems


def error_table(out: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows, median, mean and max |error| (%) per value of column ``by`` (kind, hardware)."""
    err = out.assign(abs_err=out["error_pct"].abs()).dropna(subset=["abs_err"])
    table = err.groupby(by)["abs_err"].agg(rows="count", median="median", mean="mean", max="max")
    return table.round(1)


def summary_line(out: pd.DataFrame) -> str:
    err = out["error_pct"].dropna().abs()
    if err.empty:
        return "validated 0 rows: median |err| n/a, mean |err| n/a, max |err| n/a"
    return (f"validated {len(err)} rows: median |err| {err.median():.1f}%, mean |err| {err.mean():.1f}%, "
            f"max |err| {err.max():.1f}%")


class ValidationInputError(ValueError):
    """A measurements file that cannot be read as validation rows: one line for the user."""


def read_measurements(path: Path | None) -> pd.DataFrame:
    """The measured rows of the CSV at ``path`` (None: the shipped A100 set), header checked.

    Raises:
        ValidationInputError: no such file, not a CSV, or a required column missing.
    """
    if path is None:
        from sim.config.paths import DATA_DIR

        path = DATA_DIR / "validation" / "a100.csv"
    try:
        frame = pd.read_csv(path, comment="#")
    except FileNotFoundError:
        raise ValidationInputError(f"no file at '{path}'") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, IsADirectoryError) as err:
        raise ValidationInputError(f"'{path}' is not a readable CSV ({str(err).strip()})") from None
    missing = [c for c in ("id", "hardware", "kind", "measured_ms") if c not in frame.columns]
    if missing:
        raise ValidationInputError(f"'{path}' lacks the column(s) {', '.join(missing)}; the header must name: "
                                   f"{', '.join(COLUMNS)}")
    if frame.empty:
        raise ValidationInputError(f"'{path}' has a header but no rows to validate")
    if "dtype" not in frame.columns and frame["kind"].isin(("gemm", "prefill", "decode")).any():
        raise ValidationInputError(f"'{path}' lacks the column dtype, which its gemm, prefill and decode rows need "
                                   f"(the format they ran in: {', '.join(d.value for d in DType)})")
    return frame

