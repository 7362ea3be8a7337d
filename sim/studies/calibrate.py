"""``llmsim-calibrate``: fit the efficiency model on the A100 measurements in data/calibration.

1. Build the validation set (data/validation/a100.csv) from the measured sources: GEMMs at Llama
   shapes and token counts (Vidur, kernel-only timings), a GEMM size sweep (LLMCompass) and
   cuBLASLt shapes (Azure), NCCL all-reduce by size on 2, 4 and 8 GPUs (Vidur DGX-A100) and on 4
   (LLMCompass), streaming bandwidth (gpu-stream, BabelStream), and Splitwise prefill/decode.
2. Fit, with scipy's least squares on log(predicted / measured), the parameters every chip
   shares: ``matmul_efficiency``, ``hbm_latency_us``, ``kernel_overhead_us`` (absolute time),
   ``matmul_overhead_cycles`` (clock cycles), ``link_latency_us``, ``collective_latency_us``,
   ``link_saturation_MB`` and ``link_ramp_exponent`` (kernel-level rows only: gemm, memcpy,
   allreduce, the L2-sized GEMMs included), then the eager runtime's two host costs: ten in all.
   Streaming bandwidth, link efficiency, NVLS, attention kernels and the sustained clock are
   published facts (hwmodels/process.py, chip presets, hwmodels/links.py, kernels.py, power.py).
3. Write them with their provenance to ``<out>/calibration.yaml`` (``--out DIR``, default
   results/calibration/<timestamp>, relative to the working directory), beside the fitted host
   costs of the eager runtime (``vllm_eager.yaml``) and the validation set (``a100.csv``). A run
   uses that fit with ``llmsim calibration=<out>/calibration.yaml``: its values replace the
   shipped ones for every chip field the preset does not set (only the teaching chip and the
   TPUs' overhead do).

The package's own fit (hwmodels/calibration.yaml, conf/runtime/vllm_eager.yaml and
data/validation/a100.csv) is read-only: a maintainer updates it by copying these three files
into the repo and committing them. The fit is deterministic: same data, same numbers.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from hwmodels.calibration import FITTED_KEYS
from sim.config.paths import DATA_DIR
from sim.config.presets import load_host
from sim.config.schema import RuntimeConfig
from sim.output.files import atomic_write
from sim.studies.validate import summary_line, validate
from workloads.attention import AttentionKernel

SOURCE = DATA_DIR / "calibration"
VALIDATION = DATA_DIR / "validation" / "a100.csv"  # the shipped validation set (read-only)
FILES = {"calibration": "calibration.yaml", "runtime": "vllm_eager.yaml", "validation": "a100.csv"}  # in --out

VIDUR_GEMMS = {  # Vidur op -> (n, k) per tensor-parallel shard, from n_head, n_kv_head, n_embd, ffn
    "attn_pre_proj": lambda h, kv, d, f, tp: ((h + 2 * kv) * (d // h) // tp, d),
    "attn_post_proj": lambda h, kv, d, f, tp: (d, h * (d // h) // tp),
    "mlp_up_proj": lambda h, kv, d, f, tp: (2 * f // tp, d),
    "mlp_down_proj": lambda h, kv, d, f, tp: (d, f // tp),
}
VIDUR_TOKENS = (1, 8, 32, 128, 512, 1024, 2048, 4096)
VIDUR_MODELS = {"llama2_7b": "llama2_7b", "llama2_70b": "llama2_70b", "llama3_8b": "llama3_8b"}
SPLITWISE_MODELS = {"llama2-70b": "llama2_70b"}
# The host the Splitwise rows ran on: splitwise-sim's README says its profiles come from DGX-A100
# machines, whose host is two AMD EPYC 7742 (NVIDIA DGX A100 datasheet 2020); the eager runtime's host
# costs are stated for that host's single-thread score and scale to others by it.
SPLITWISE_HOST = "amd_epyc_7742"
BOUNDS = {  # parameter: (lower, upper, start)
    "matmul_efficiency": (0.5, 1.0, 0.9),
    "matmul_overlap_loss": (0.0, 0.9, 0.2),
    "hbm_latency_us": (0.0, 10.0, 0.5),
    "kernel_overhead_us": (0.0, 20.0, 2.0),
    "matmul_overhead_cycles": (0.0, 30000.0, 5000.0),
    "link_latency_us": (0.0, 20.0, 1.5),
    "collective_latency_us": (0.0, 50.0, 5.0),
    "link_saturation_MB": (0.1, 1000.0, 40.0),
    "link_ramp_exponent": (0.0, 1.0, 0.5),
}


def _row(source: str, kind: str, measured_ms: float, **fields) -> dict:
    base = {"id": "", "hardware": "a100_80gb", "kind": kind, "dtype": "fp16", "m": None, "n": None, "k": None,
            "bytes": None, "devices": None, "model": None, "batch": None, "seq_len": None, "runtime": None}
    return {**base, **fields, "measured_ms": measured_ms, "source": source}


def build_validation_set(src: Path = SOURCE) -> pd.DataFrame:
    rows: list[dict] = []
    for name in VIDUR_MODELS:
        frame = pd.read_csv(src / "vidur_a100" / f"{name}_mlp.csv")
        frame = frame[frame["num_tokens"].isin(VIDUR_TOKENS)]
        for record in frame.groupby(["num_tokens", "num_tensor_parallel_workers"]).median(numeric_only=True) \
                .reset_index().to_dict("records"):
            h, kv, d, f = (int(record[c]) for c in ("n_head", "n_kv_head", "n_embd", "n_expanded_embd"))
            tp, m = int(record["num_tensor_parallel_workers"]), int(record["num_tokens"])
            for op, shape in VIDUR_GEMMS.items():
                n, k = shape(h, kv, d, f, tp)
                rows.append(_row(f"vidur:{name}:{op}", "gemm", record[f"time_stats.{op}.median"], m=m, n=n, k=k))
            if tp == 1 and m <= 32:  # small elementwise kernels: their time is the fixed cost of a kernel
                rows.append(_row(f"vidur:{name}:add", "memcpy", record["time_stats.add.median"], bytes=3 * m * d * 2))
    for line in (src / "llmcompass_a100" / "ab__matmul_A100.csv").read_text().splitlines():
        m, n, k, ms, _ = (part.strip() for part in line.split(","))
        rows.append(_row("llmcompass:matmul", "gemm", float(ms.removesuffix("ms")), m=int(m), n=int(n), k=int(k)))
    for m, n, k, tflops in ((1024, 1024, 1024, 119.4), (2048, 2048, 2048, 221.8), (4096, 4096, 4096, 228.0),
                            (8192, 8192, 8192, 253.7), (16384, 16384, 16384, 256.5), (1024, 2145, 1024, 132.8),
                            (6144, 12288, 12288, 250.8)):  # Azure ND A100 v4, cuBLASLt fp16 TFLOP/s
        rows.append(_row("azure:cublaslt", "gemm", 2 * m * n * k / (tflops * 1e12) * 1e3, m=m, n=n, k=k))
    reduce = pd.read_csv(src / "vidur_a100" / "dgx_a100_all_reduce.csv")
    reduce = reduce[reduce["devices_per_node"] == reduce["num_workers"]]
    reduce = reduce.groupby(["num_workers", "size"])["time_stats.all_reduce.median"].median().reset_index()
    wanted = {2 ** e for e in range(11, 27)}
    for record in reduce[reduce["size"].isin(wanted)].to_dict("records"):
        rows.append(_row("vidur:nccl_allreduce", "allreduce", record["time_stats.all_reduce.median"],
                         bytes=int(record["size"]), devices=int(record["num_workers"])))
    ring4 = pd.read_csv(src / "llmcompass_a100" / "allreduce_4xA100.csv")
    for record in ring4[ring4["size_bytes"] >= 2048].to_dict("records"):
        rows.append(_row("llmcompass:allreduce", "allreduce", record["latency_us"] / 1e3,
                         bytes=int(record["size_bytes"]), devices=4))
    for kernel, gbps, moved in (("read", 1769, 1), ("scale", 1732, 2), ("triad", 1759, 3)):
        nbytes = moved * 2**30  # gpu-stream's last row (full occupancy) on 1 GiB arrays
        rows.append(_row(f"gpu-stream:{kernel}", "memcpy", nbytes / (gbps * 1e9) * 1e3, bytes=nbytes))
    for kernel, tbps, moved in (("copy", 1.61, 2), ("triad", 1.70, 3)):
        nbytes = moved * 2**30
        rows.append(_row(f"babelstream:{kernel}", "memcpy", nbytes / (tbps * 1e12) * 1e3, bytes=nbytes))
    split = pd.read_csv(src / "splitwise_a100" / "perf_model_a100.csv")
    split = split[split["model"].isin(SPLITWISE_MODELS)]
    split = split.groupby(["model", "tensor_parallel", "prompt_size", "batch_size"])[
        ["prompt_time", "token_time"]].median().reset_index()
    # Splitwise's README marks the two TP2 batch-64 rows as anomalous (prefill faster than batch 32).
    split = split[~((split["tensor_parallel"] == 2) & (split["batch_size"] == 64))]
    for record in split.to_dict("records"):
        common = dict(model=SPLITWISE_MODELS[record["model"]], devices=int(record["tensor_parallel"]),
                      batch=int(record["batch_size"]))
        prompt = int(record["prompt_size"])
        common["runtime"] = "vllm_eager"
        rows.append(_row("splitwise:vllm", "prefill", record["prompt_time"], seq_len=prompt, **common))
        rows.append(_row("splitwise:vllm", "decode", record["token_time"], seq_len=prompt + 64, **common))
    frame = pd.DataFrame(rows)
    frame["id"] = [f"a100-{i:04d}" for i in range(len(frame))]
    return frame


def fit(frame: pd.DataFrame, start: dict[str, float] | None = None) -> dict[str, float]:
    """Least-squares fit of the shared efficiency parameters on kernel-level rows, from ``BOUNDS``'
    starting values or from ``start`` (a nearby fit: refits of subsets converge in a few steps)."""
    # Every kernel-level row, the GEMMs whose weights would fit in the 40 MB L2 included: the
    # A100 rows show no L2 plateau (a 33.5 MB weight read runs at 1.34 TB/s, HBM speed).
    kernel_rows = frame[frame["kind"].isin(["gemm", "memcpy", "allreduce"])].reset_index(drop=True)
    names = list(BOUNDS)
    measured = kernel_rows["measured_ms"].to_numpy(dtype=float)

    def residuals(x: np.ndarray) -> np.ndarray:
        out, _ = validate(kernel_rows, dict(zip(names, map(float, x), strict=True)))
        return np.log(out["predicted_ms"].to_numpy(dtype=float) / measured)

    lower, upper, first = (np.array([BOUNDS[n][i] for n in names]) for i in range(3))
    if start is not None:
        first = np.clip(np.array([start[n] for n in names], dtype=float), lower, upper)
    solution = least_squares(residuals, first, bounds=(lower, upper), x_scale="jac", method="trf", loss="soft_l1",
                             f_scale=0.1)
    fitted = {n: float(round(v, 4)) for n, v in zip(names, solution.x, strict=True)}
    return fitted


def fit_runtime(frame: pd.DataFrame, fitted: dict[str, float]) -> dict[str, float]:
    """Host costs of the eager framework behind the end-to-end rows (runtime = vllm_eager).

    With the chip parameters fixed, each row's device time and kernel count are known, so
    ``step_overhead + max(device, kernels x host_dispatch)`` is fitted on its own, on the decode
    steps: there the two costs can be told apart (at TP2 the step is device-bound and pins the
    per-step cost; at TP4 and TP8 the host's dispatch of every kernel sets the time). Prefill rows
    are device-bound and only validate the fit.
    """
    rows = frame[(frame["runtime"] == "vllm_eager") & (frame["kind"] == "decode")].reset_index(drop=True)
    device = validate(rows.assign(runtime="graphs"), fitted)[0]["predicted_ms"].to_numpy(dtype=float)
    kernels = np.array([_kernels(r) for r in rows.to_dict("records")], dtype=float)
    measured = rows["measured_ms"].to_numpy(dtype=float)

    def residuals(x: np.ndarray) -> np.ndarray:
        dispatch_ms, step_ms = x[0] / 1e3, x[1] / 1e3
        return np.log((step_ms + np.maximum(device, kernels * dispatch_ms)) / measured)

    solution = least_squares(residuals, np.array([20.0, 1000.0]), bounds=([0.0, 0.0], [500.0, 1e5]),
                             loss="soft_l1", f_scale=0.1)
    return {"host_dispatch_us": float(round(solution.x[0], 2)), "step_overhead_us": float(round(solution.x[1], 1))}


def _kernels(row: dict) -> int:
    from sim.config.presets import load_model
    from workloads.graph import Execution, Phase, build_pass

    model, tp, batch, seq = load_model(row["model"]), int(row["devices"]), int(row["batch"]), int(row["seq_len"])
    phase = Phase.prefill if row["kind"] == "prefill" else Phase.decode
    new_tokens = seq if phase is Phase.prefill else 1
    graph = build_pass(model, Execution(tp=tp, fused_elementwise=False), phase, batch, new_tokens, seq)
    return graph.kernels


def write_runtime(values: dict[str, float], out: pd.DataFrame | None, path: Path) -> None:
    lines = [
        "# An eager-mode serving framework (vLLM as of 2023, as measured by Splitwise on DGX-A100):",
        "# every kernel is dispatched from Python. Fitted by llmsim-calibrate on the Splitwise",
        "# decode rows of data/validation/a100.csv (prefill rows validate) with the chip parameters held at",
        f"# their fitted values; {dt.date.today().isoformat()}. Do not edit by hand: re-run llmsim-calibrate.",
    ]
    if out is not None:
        for kind, part in out[out["runtime"] == "vllm_eager"].groupby("kind"):
            lines.append(f"#   {kind}: {summary_line(part)}")
    score = load_host(SPLITWISE_HOST).single_thread_score
    lines += ["name: vllm_eager", "fused_elementwise: false", f"host_dispatch_us: {values['host_dispatch_us']}",
              f"step_overhead_us: {values['step_overhead_us']}",
              f"host_score: {score:g}  # the DGX A100 host these were fitted on: conf/host/{SPLITWISE_HOST}.yaml",
              "# 2023 vLLM: NCCL 2.14-2.18 through torch.distributed, no in-switch reduction (NVLS came with",
              "# NCCL 2.17 and torch 2.1; vLLM pinned torch 2.0.1 until v0.2.2, Nov 2023); Ampere-era attention.",
              "in_switch_reduction: false", "attention_kernel: flash2", "quantized_gemm_inputs: false"]
    atomic_write(path, lambda p: p.write_text("\n".join(lines) + "\n"))


def errors_by(out: pd.DataFrame, key: str) -> dict[str, str]:
    return {str(group): summary_line(part) for group, part in out.groupby(key)}


def write_calibration(fitted: dict[str, float], out: pd.DataFrame, path: Path) -> None:
    lines = [
        "# Efficiency parameters shared by every chip preset, fitted by llmsim-calibrate (sim/studies/calibrate.py)",
        "# on measured A100 data (data/calibration, see its README for the sources and their commits).",
        f"# Fitted on {dt.date.today().isoformat()} by least squares on log(predicted/measured) over the",
        "# kernel-level rows (gemm, memcpy, allreduce) of data/validation/a100.csv. Everything else a chip",
        "# needs is a published fact in its preset or in hwmodels (HBM streaming fraction by generation,",
        "# NCCL's link and NVLS constants, attention-kernel efficiencies, the board power budget).",
        "# Do not edit by hand: re-run llmsim-calibrate.",
    ]
    for kind, line in errors_by(out, "kind").items():
        lines.append(f"#   {kind}: {line}")
    lines += [f"{key}: {fitted[key]}" for key in FITTED_KEYS]
    atomic_write(path, lambda p: p.write_text("\n".join(lines) + "\n"))


class FitError(ValueError):
    """A fit that did not converge (a parameter came out infinite or NaN)."""


@dataclass(frozen=True)
class Calibration:
    """A fit: the validation set it was made on, the chip parameters and the eager runtime's host costs."""

    frame: pd.DataFrame
    fitted: dict[str, float]
    runtime: dict[str, float]

    @property
    def values(self) -> dict[str, float]:
        return {**self.fitted, **self.runtime}


def calibrate() -> Calibration:
    """Build the validation set from data/calibration, fit the shared parameters, then the runtime's.

    Raises:
        FitError: a file of data/calibration that cannot be read as its source's format, a measured time that is
            not a finite positive number, or a parameter that came out non-finite.
    """
    try:
        frame = build_validation_set()
    except (OSError, ValueError, KeyError, IndexError, pd.errors.ParserError) as err:  # EmptyDataError: ValueError
        raise FitError(f"{SOURCE} could not be read as the shipped measurements ({type(err).__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else err!r}); restore it from the repository") from None
    measured = pd.to_numeric(frame["measured_ms"], errors="coerce")
    bad = frame[~(np.isfinite(measured) & (measured > 0))]
    if len(bad):
        first = bad.iloc[0]
        raise FitError(f"{len(bad)} measured time(s) in {SOURCE} are not finite positive numbers (the first: "
                       f"{first['source']}, {first['measured_ms']!r} ms); restore the files from the repository")
    fitted = fit(frame)
    runtime = fit_runtime(frame, fitted)
    if not all(math.isfinite(v) for v in {**fitted, **runtime}.values()):
        raise FitError("the fit did not converge")
    return Calibration(frame, fitted, runtime)


def eager_runtime(host_costs: dict[str, float]) -> RuntimeConfig:
    """The ``vllm_eager`` runtime with the given fitted host costs (as write_runtime writes it)."""
    return RuntimeConfig(name="vllm_eager", fused_elementwise=False, in_switch_reduction=False,
                         attention_kernel=AttentionKernel.flash2,
                         host_score=load_host(SPLITWISE_HOST).single_thread_score, **host_costs)


def validate_calibration(cal: Calibration) -> pd.DataFrame:
    """Every row of the validation set predicted with the fit (end-to-end rows with its runtime)."""
    out, _ = validate(cal.frame, cal.fitted, {"vllm_eager": eager_runtime(cal.runtime)})
    return out


def write_fit(cal: Calibration, out: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write the fit's files (``FILES``) under ``out_dir``; their paths by role."""
    paths = {what: out_dir / name for what, name in FILES.items()}
    atomic_write(paths["validation"], lambda p: cal.frame.to_csv(p, index=False))
    write_runtime(cal.runtime, out, paths["runtime"])
    write_calibration(cal.fitted, out, paths["calibration"])
    return paths
