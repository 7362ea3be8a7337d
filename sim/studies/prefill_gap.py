"""The A100 prefill rows against the sum of their own kernels, each measured alone.

Splitwise's end-to-end prefill rows (2023 vLLM, Llama-2-70B on DGX-A100) are the only end-to-end
prefill measurements in data/calibration; Vidur measured the same model's kernels on A100 one by
one (norms, QKV, rotary, output projection, MLP, activation, residual adds at every token count up
to 4096 and TP 1-8) and NCCL's all-reduce on DGX-A100 up to 64 MB. ``prefill_gap`` puts each
Splitwise row with at most 4096 tokens next to that *kernel sum*: per layer the measured kernels
plus two measured all-reduces, times the layers, plus the model's attention (no measurement of
it is in data/calibration) and embedding, through the eager runtime's host costs like a
prediction (``HostCosts.pass_time``). It is what a cost model whose every kernel were exact would
predict.

What it shows (README, "Calibration"): the model stays within a few per cent of the kernel sum
on every row, while batched prompts (4 or more sequences of 512) and 4096-token prompts at
TP 4 and 8 measure up to 1.6x their kernel sum. That gap is outside the kernels: no per-kernel
mechanism can close it, and fitting it away would tune the model to one source.
"""

from __future__ import annotations

import pandas as pd

from sim.config.presets import load_hardware, load_model, load_runtime, usual_host
from sim.engine.costing import Coster
from sim.engine.records import HostCosts
from sim.studies.calibrate import SOURCE, VALIDATION
from sim.studies.validate import validate
from workloads.graph import Execution, Phase, build_pass
from workloads.ops import OpKind

MODEL = "llama2_70b"
# Vidur's per-layer kernels of a Llama layer in order; the residual add runs twice per layer.
LAYER_OPS = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj", "post_attention_layernorm",
             "mlp_up_proj", "mlp_act", "mlp_down_proj", "add", "add")
MAX_TOKENS = 4096  # the largest token count Vidur measured (and 4096 x 8192 x 2 B = 64 MB, its largest all-reduce)
COLUMNS = ("devices", "batch", "seq_len", "measured_ms", "predicted_ms", "kernel_sum_ms", "measured_over_kernels",
           "predicted_over_kernels")


def _vidur_kernels() -> tuple[pd.DataFrame, pd.Series]:
    """Median ms per (TP, tokens) of each Vidur op of ``MODEL``, and of NCCL all-reduce per (GPUs, bytes)."""
    frame = pd.read_csv(SOURCE / "vidur_a100" / f"{MODEL}_mlp.csv")
    wanted = [f"time_stats.{op}.median" for op in {*LAYER_OPS, "emb"}]
    kernels = frame.groupby(["num_tensor_parallel_workers", "num_tokens"])[wanted].median()
    reduce = pd.read_csv(SOURCE / "vidur_a100" / "dgx_a100_all_reduce.csv")
    reduce = reduce[reduce["devices_per_node"] == reduce["num_workers"]]
    return kernels, reduce.groupby(["num_workers", "size"])["time_stats.all_reduce.median"].median()


def prefill_gap(frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each prefill row of ``MODEL`` with at most ``MAX_TOKENS`` tokens (default: the shipped A100 set):
    measured, predicted (``validate``) and the kernel sum, in ms, and the two ratios to the kernel sum."""
    rows = pd.read_csv(VALIDATION) if frame is None else frame
    rows = rows[(rows["kind"] == "prefill") & (rows["model"] == MODEL)
                & (rows["batch"] * rows["seq_len"] <= MAX_TOKENS)].reset_index(drop=True)
    predicted = validate(rows)[0]["predicted_ms"]
    kernels, reduce = _vidur_kernels()
    runtime, chip = load_runtime("vllm_eager"), load_hardware("a100_80gb")
    coster, host = Coster(chip, in_switch=runtime.in_switch_reduction), HostCosts.of(runtime, usual_host(chip.name))
    model, hidden = load_model(MODEL), load_model(MODEL).hidden_size
    sums = []
    for row in rows.to_dict("records"):
        tp, batch, seq = int(row["devices"]), int(row["batch"]), int(row["seq_len"])
        tokens = batch * seq
        measured = kernels.loc[(tp, tokens)]
        layer_ms = sum(measured[f"time_stats.{op}.median"] for op in LAYER_OPS)
        if tp > 1:
            layer_ms += 2 * reduce.loc[(tp, tokens * hidden * 2)]  # fp16 hidden states, after attention and MLP
        ex = Execution(tp=tp, attention=runtime.attention_kernel, fused_elementwise=runtime.fused_elementwise)
        graph = build_pass(model, ex, Phase.prefill, batch, seq, seq)
        attention_ms = sum(coster(op).time_s * n for op, n in graph.ops() if op.kind is OpKind.attention) * 1e3
        device_ms = model.num_layers * layer_ms + attention_ms + measured["time_stats.emb.median"]
        sums.append(host.pass_time(graph.kernels, device_ms / 1e3) * 1e3)
    out = rows[["devices", "batch", "seq_len", "measured_ms"]].assign(predicted_ms=predicted.to_numpy(),
                                                                     kernel_sum_ms=sums)
    out["measured_over_kernels"] = out["measured_ms"] / out["kernel_sum_ms"]
    out["predicted_over_kernels"] = out["predicted_ms"] / out["kernel_sum_ms"]
    return out[list(COLUMNS)]
