"""``llmsim-validate [PATH.csv]``: predictions against measured rows (default: the shipped A100 set).

Columns (header required; extra columns are kept in the output):
``id, hardware, kind, dtype, m, n, k, bytes, devices, model, batch, seq_len, measured_ms``.

kinds: ``gemm`` (one m x k @ k x n matmul), ``allreduce`` (``bytes`` per device over
``devices``), ``memcpy`` (``bytes`` read plus written), ``prefill`` (the whole batch's prefill of
``seq_len`` prompt tokens per sequence at tensor-parallel degree ``devices``), ``decode`` (one
decode step of the batch at context ``seq_len``). Each prediction is the op or pass time the
simulator would use, with the chip preset's fitted efficiencies and overheads.

An optional column ``runtime`` names the host software stack of prefill/decode rows
(a conf/runtime preset: ``graphs``, the default, or ``vllm_eager`` for eager-mode frameworks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from hwmodels.chip import HardwareConfig, HardwareError
from hwmodels.numerics import DType
from sim.config.presets import PresetError, load_hardware, load_model, load_runtime
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
    return int(number)


def _dtype(row: dict) -> DType:
    name = str(row.get("dtype") or "bf16").strip()
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


def predict_s(row: dict, chip: HardwareConfig, runtimes: Mapping | None = None) -> float:
    """Predicted seconds for one measured row on ``chip`` (``runtimes``: presets replaced by name)."""
    kind = str(row.get("kind", "")).strip()
    if kind == "gemm":
        return Coster(chip)(gemm_op(_int(row, "m"), _int(row, "n"), _int(row, "k"), _dtype(row))).time_s
    if kind == "allreduce":
        return Coster(chip)(allreduce_op(_int(row, "bytes"), _int(row, "devices"))).time_s
    if kind == "memcpy":
        return Coster(chip)(memcpy_op(_int(row, "bytes"))).time_s
    if kind in ("prefill", "decode"):
        model = load_model(str(row.get("model", "")).strip())
        dtype, tp, batch, seq = _dtype(row), _int(row, "devices"), _int(row, "batch"), _int(row, "seq_len")
        if model.num_heads % tp or model.num_kv_heads % tp:
            raise RowError(f"devices={tp} does not divide {model.name}'s heads")
        name = str(row["runtime"]).strip() if _has(row, "runtime") else "graphs"
        runtime = (runtimes or {}).get(name) or load_runtime(name)
        ex = Execution(weights=dtype, activations=dtype, kv_cache=dtype, tp=tp,
                       fused_elementwise=runtime.fused_elementwise)
        weights = weight_bytes_per_chip(model, ex) + kv_bytes_per_chip(model, ex, batch * seq)
        if weights > chip.hbm_capacity_bytes:
            raise RowError(f"{model.name} needs {weights / 1e9:.1f} GB per chip at devices={tp} but {chip.name} has "
                           f"{chip.hbm_capacity_GB:g} GB: it does not fit")
        if kind == "prefill":
            graph = build_pass(model, ex, Phase.prefill, batch, seq, seq)
        else:
            graph = build_pass(model, ex, Phase.decode, batch, 1, seq, step=1)
        host = HostCosts(runtime.host_dispatch_us * 1e-6, runtime.step_overhead_us * 1e-6)
        return simulate_analytic([graph], Coster(chip), host).end_s
    raise RowError(f"unknown kind '{kind}'; known: {', '.join(KINDS)}")


def validate(frame: pd.DataFrame, chip_changes: dict | None = None,
             runtimes: Mapping | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Predict every row; return the rows with ``predicted_ms`` and ``error_pct``, and the problems.

    ``chip_changes`` replace fields of every chip preset; ``runtimes`` maps runtime preset names to
    RuntimeConfigs used instead of the shipped presets (llmsim-calibrate's just-fitted host costs).
    """
    chips: dict[str, HardwareConfig] = {}
    predicted, problems = [], []
    for index, row in enumerate(frame.to_dict("records")):
        label = f"row {index + 2} (id {row.get('id')})"  # +2: the header is line 1
        try:
            name = str(row.get("hardware", "")).strip()
            if name not in chips:
                chips[name] = load_hardware(name, **(chip_changes or {}))
            measured = float(row.get("measured_ms"))
            if not measured > 0:
                raise RowError(f"measured_ms must be > 0 (got {row.get('measured_ms')!r})")
            predicted.append(predict_s(row, chips[name], runtimes) * 1e3)
        except (RowError, PresetError, RunError, HardwareError, ModelError, TypeError, ValueError) as err:
            problems.append(f"{label}: {err}")
            predicted.append(float("nan"))
    out = frame.copy()
    out["predicted_ms"] = predicted
    out["error_pct"] = (out["predicted_ms"] - pd.to_numeric(out["measured_ms"], errors="coerce")) / pd.to_numeric(
        out["measured_ms"], errors="coerce") * 100
    return out, problems


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
    return frame

