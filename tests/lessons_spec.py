"""What each lesson under docs/lessons/ quotes, and how a test re-derives it (tests/test_lessons.py).

A lesson runs the ``llmsim`` commands of its ```bash blocks (in order: run 0, 1, ...) and has a
table whose rows are ``| id | hand calculation | hand | simulator | note |``. For every row id the
spec below gives the simulator's figure (from the runs) and the hand calculation (from the
teaching NPU's round numbers and the model's shape, never from the simulator), in the unit the
lesson quotes. The test holds the quoted figures to both, and the two to each other within 2 %.
Only ``teaching_npu`` figures are used: its numbers are chosen, not fitted, so they do not move
when the calibration does.

    .venv/bin/python -m tests.lessons_spec     # prints each lesson's rows, for writing the tables
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# The teaching NPU (conf/hardware/teaching_npu.yaml) and Llama-2-7B (conf/model/llama2_7b.yaml).
PEAK = 4 * 4 * 64 * 64 * 2 * 1e9  # bf16 FLOP/s: cores x arrays x MACs x 2 x clock = 131.072e12
PEAK8 = 2 * PEAK  # fp8 / int8 arrays
HBM = 1000e9  # bytes/s
VECTOR = 10e12  # FLOP/s
LAUNCH = 1e-6  # s per kernel
HIDDEN, FFN, LAYERS, HEADS, VOCAB = 4096, 11008, 32, 32, 32000
LAYER_WEIGHTS = 4 * HIDDEN * HIDDEN + 3 * HIDDEN * FFN  # q, k, v, o and gate, up, down
KV_PER_TOKEN = 2 * LAYERS * HIDDEN * 2  # K and V, every layer, bf16 bytes
KERNELS_PER_STEP = 6 * LAYERS + (2 * LAYERS + 1) + 3  # 6 per layer, norms, embedding+LM head+sampling
FILL = (HIDDEN + 64 + 64) / HIDDEN  # a 64x64 array fills and drains once per tile: (k + R + C) / k
WAVES_UP = 88 / 86  # mlp_up: 22016 columns = 86 tiles of 256 over 4 cores -> 22 waves of 4


@dataclass(frozen=True)
class Check:
    """One quoted row: the simulator's figure from the runs, the hand figure, the unit quoted."""

    sim: Callable[[list], float]
    hand: float | Callable[[list], float]  # a callable adds an overhead the lesson names, read from the runs
    unit: str

    def hand_value(self, runs: list) -> float:
        return self.hand(runs) if callable(self.hand) else self.hand


def op(run, phase: str, kind: str, column: str = "duration_s") -> float:
    """One instance of op type ``kind`` in the first step of ``phase`` (decode: step 1)."""
    ops = run.ops
    step = 1 if phase == "decode" else 0
    rows = ops[(ops["phase"] == phase) & (ops["step"] == step) & (ops["kind"] == kind)]
    return float(rows[column].iloc[0])


def gemv_rows(rows: int, n: int, k: int = HIDDEN) -> float:
    """Seconds on the arrays for ``rows`` (padded) x k @ k x n at bf16, fill and drain included."""
    return 2 * rows * k * n / PEAK * FILL


MS, US = 1e3, 1e6
UP_N = 2 * FFN  # mlp_up: gate and up projections side by side
KN_UP = HIDDEN * UP_N


def ridge_batch() -> float:
    """Batch at which decode mlp_up's array time (fill included) equals its HBM time (weights + activations)."""
    return (KN_UP / HBM) / (KN_UP * FILL / PEAK - (HIDDEN + UP_N) / HBM)


def simulated_ridge(one, many, batch: int = 128) -> float:
    """The same crossing from two runs' decode mlp_up: array time per sequence at ``batch`` (below a tile's
    worth of padding it grows in proportion) against HBM time, weights plus a per-sequence part."""
    mem1, mem_b = op(one, "decode", "mlp_up", "memory_s"), op(many, "decode", "mlp_up", "memory_s")
    per_seq_bytes = (mem_b - mem1) / (batch - 1)
    weights = mem1 - per_seq_bytes
    return weights / (op(many, "decode", "mlp_up", "compute_s") / batch - per_seq_bytes)


def allreduce(tp: int, nbytes: float = HIDDEN * 2, link: float = 100e9) -> float:
    """Ring all-reduce: 2(p-1) steps of 1 us, 2(p-1)/p of the payload over the link, plus the launch."""
    return 2 * (tp - 1) * 1e-6 + 2 * (tp - 1) / tp * nbytes / link + LAUNCH


def scores(prompt: int) -> float:
    """Bytes of one layer's bf16 score matrix (every head, every query-key pair)."""
    return HEADS * prompt * prompt * 2


def tpot_tp(tp: int) -> float:
    """Decode step at tensor parallelism ``tp``: a 1/tp share of weights and KV, 260 kernels, 65 all-reduces."""
    reduces = 65 * allreduce(tp) if tp > 1 else 0.0  # two per layer and one after the embedding
    return (STEP_WEIGHTS / tp + (512 + 64) * KV_PER_TOKEN / tp) / HBM + KERNELS_PER_STEP * LAUNCH + reduces
STEP_WEIGHTS = LAYERS * LAYER_WEIGHTS * 2 + VOCAB * HIDDEN * 2  # bf16 bytes a decode step reads (LM head too)

LESSONS: dict[str, dict[str, Check]] = {
    "01_memory_bound_decode.md": {
        "ridge": Check(lambda r: r[0].summary["peaks"]["ridge_flop_per_byte"], PEAK / HBM, "FLOP/B"),
        "decode_ai": Check(lambda r: op(r[0], "decode", "mlp_up", "flops") / op(r[0], "decode", "mlp_up", "hbm_bytes"),
                           1.0, "FLOP/B"),
        "mlp_up": Check(lambda r: op(r[0], "decode", "mlp_up") * US, (HIDDEN * 2 * FFN * 2 / HBM + LAUNCH) * US,
                        "µs"),
        "weights": Check(lambda r: r[0].summary["hbm_GB_per_chip"]["weights"],
                         (LAYERS * LAYER_WEIGHTS + 2 * VOCAB * HIDDEN + (2 * LAYERS + 1) * HIDDEN) * 2 / 1e9, "GB"),
        "tpot": Check(lambda r: r[0].summary["tpot_s"] * MS,
                      (STEP_WEIGHTS / HBM + (512 + 64) * KV_PER_TOKEN / HBM + KERNELS_PER_STEP * LAUNCH) * MS, "ms"),
    },
}


B, P, D = "workload.batch", "workload.prompt_tokens", "workload.decode_tokens"
LINK = "hardware.link_efficiency=1 hardware.collective_latency_us=0 hardware.link_ramp_exponent=0"

LESSONS["02_batching_and_the_ridge.md"] = {
    "ai_128": Check(lambda r: op(r[2], "decode", "mlp_up", "flops") / op(r[2], "decode", "mlp_up", "hbm_bytes"),
                    128 * KN_UP / (KN_UP + 128 * (HIDDEN + UP_N)), "FLOP/B"),
    "ridge_batch": Check(lambda r: simulated_ridge(r[0], r[2]), ridge_batch(), "sequences"),
    "mlp_up_1": Check(lambda r: op(r[0], "decode", "mlp_up") * US,
                      ((KN_UP + 1 * (HIDDEN + UP_N)) * 2 / HBM + LAUNCH) * US, "µs"),
    "mlp_up_128": Check(lambda r: op(r[2], "decode", "mlp_up") * US,
                        ((KN_UP + 128 * (HIDDEN + UP_N)) * 2 / HBM + LAUNCH) * US, "µs"),
    "mlp_up_129": Check(lambda r: op(r[3], "decode", "mlp_up") * US, (gemv_rows(192, UP_N) + LAUNCH) * US, "µs"),
    # decode attention: a 64x64 tile per (sequence, head, scores or values), k = head_dim 128 deep, one per core at once
    "attention_128": Check(lambda r: op(r[2], "decode", "attention") * US,
                           (2 * 128 * HEADS / 4 * (128 + 64 + 64) / 1e9 + LAUNCH) * US, "µs"),
    "weights_per_token_128": Check(lambda r: r[2].summary["hbm_GB_per_chip"]["weights"] * 1e3 / 128,
                                   (LAYERS * LAYER_WEIGHTS + 2 * VOCAB * HIDDEN + (2 * LAYERS + 1) * HIDDEN) * 2
                                   / 128 / 1e6, "MB"),
}
LESSONS["03_quantization.md"] = {
    "int8_bytes": Check(lambda r: op(r[1], "decode", "mlp_up", "memory_s") * US,
                        KN_UP * (1 + 2 / 128) / HBM * US, "µs"),
    "int8_up": Check(lambda r: op(r[1], "decode", "mlp_up") * US,
                     (gemv_rows(64, UP_N) * WAVES_UP + 2 * KN_UP / VECTOR + LAUNCH) * US, "µs"),
    "int4_up": Check(lambda r: op(r[2], "decode", "mlp_up") * US,
                     (gemv_rows(64, UP_N) * WAVES_UP + 2 * KN_UP / VECTOR + LAUNCH) * US, "µs"),
    "int8_tpot": Check(lambda r: r[1].summary["tpot_s"] * MS,
                       lambda r: (LAYERS * (2 * 64 * LAYER_WEIGHTS / PEAK * FILL + 2 * LAYER_WEIGHTS / VECTOR)
                                  + VOCAB * HIDDEN * 2 / HBM + KERNELS_PER_STEP * LAUNCH
                                  + LAYERS * (op(r[1], "decode", "attention") - LAUNCH)) * MS, "ms"),
    "int4_tpot": Check(lambda r: r[2].summary["tpot_s"] * MS, lambda r: r[1].summary["tpot_s"] * MS, "ms"),
    "fp8_tpot": Check(lambda r: r[3].summary["tpot_s"] * MS,
                      (LAYERS * LAYER_WEIGHTS / HBM + VOCAB * HIDDEN * 2 / HBM + (512 + 64) * KV_PER_TOKEN / HBM
                       + KERNELS_PER_STEP * LAUNCH) * MS, "ms"),
    "kv_bf16": Check(lambda r: r[4].summary["hbm_GB_per_chip"]["kv_cache"], 16 * (2048 + 128) * KV_PER_TOKEN / 1e9,
                     "GB"),
    "kv_fp8": Check(lambda r: r[5].summary["hbm_GB_per_chip"]["kv_cache"], 16 * (2048 + 128) * KV_PER_TOKEN / 2 / 1e9,
                    "GB"),
    "kv_fp8_tpot": Check(lambda r: r[5].summary["tpot_s"] * MS, lambda r: r[4].summary["tpot_s"] * MS, "ms"),
}
LESSONS["04_flash_attention.md"] = {
    "softmax_512": Check(lambda r: op(r[1], "prefill", "softmax", "hbm_bytes") / 1e6, 2 * scores(512) / 1e6, "MB"),
    "softmax_4000": Check(lambda r: op(r[3], "prefill", "softmax", "hbm_bytes") / 1e9, 2 * scores(4000) / 1e9, "GB"),
    "softmax_time": Check(lambda r: op(r[3], "prefill", "softmax") * MS, (2 * scores(4000) / HBM + LAUNCH) * MS, "ms"),
    "fused_bytes": Check(lambda r: op(r[2], "prefill", "attention", "hbm_bytes") / 1e6, 6 * 4000 * HIDDEN * 2 / 1e6,
                         "MB"),
    "ttft_gap_4000": Check(lambda r: (r[3].summary["ttft_s"] - r[2].summary["ttft_s"]) * MS,
                           LAYERS * ((3 * scores(4000) + 4000 * HIDDEN * 2) / HBM + 2 * LAUNCH) * MS, "ms"),
}
LESSONS["05_tensor_parallelism.md"] = {
    "allreduce_8": Check(lambda r: op(r[2], "decode", "allreduce") * US, allreduce(8) * US, "µs"),
    "allreduce_8_fast": Check(lambda r: op(r[3], "decode", "allreduce") * US, allreduce(8, link=1000e9) * US, "µs"),
    "tpot_1": Check(lambda r: r[0].summary["tpot_s"] * MS, tpot_tp(1) * MS, "ms"),
    "tpot_2": Check(lambda r: r[1].summary["tpot_s"] * MS, tpot_tp(2) * MS, "ms"),
    "tpot_8": Check(lambda r: r[2].summary["tpot_s"] * MS, tpot_tp(8) * MS, "ms"),
    "allreduce_share_8": Check(lambda r: 65 * op(r[2], "decode", "allreduce") / r[2].summary["tpot_s"] * 100,
                               65 * allreduce(8) / tpot_tp(8) * 100, "%"),
}



def area_part(run, *parts: str) -> float:
    """The area the simulator gives ``parts`` of a run's chip (summary ``area.by_part_mm2``)."""
    return sum(run.summary["area"]["by_part_mm2"][p] for p in parts)


OTHER_LOGIC = 1.25  # hwmodels/area.py: uncore, I/O and spacing add a quarter to the named parts
GEMV_LAYER = 2 * 64 * LAYER_WEIGHTS / PEAK * FILL  # a layer's four projections, batch 1 padded to 64 rows
LESSONS["06_spending_die_area.md"] = {
    "area_cores": Check(lambda r: r[1].summary["chip_area_mm2"],
                        lambda r: r[0].summary["chip_area_mm2"] + OTHER_LOGIC * area_part(r[0], "matrix", "cores"),
                        "mm²"),
    "area_sram": Check(lambda r: r[3].summary["chip_area_mm2"],
                       lambda r: r[0].summary["chip_area_mm2"] + OTHER_LOGIC * area_part(r[0], "sram"), "mm²"),
    "area_hbm": Check(lambda r: r[2].summary["chip_area_mm2"],  # shoreline: 8 PHYs x 6 mm on two long edges
                      lambda r: max(r[0].summary["chip_area_mm2"] + OTHER_LOGIC * area_part(r[0], "hbm_phy"),
                                    (8 * 6.0 / 2) ** 2 * 26 / 33), "mm²"),
    "tpot_cores": Check(lambda r: r[1].summary["tpot_s"] * MS,
                        (STEP_WEIGHTS / HBM + (512 + 64) * KV_PER_TOKEN / HBM + KERNELS_PER_STEP * LAUNCH) * MS, "ms"),
    "tpot_sram": Check(lambda r: r[3].summary["tpot_s"] * MS, lambda r: r[0].summary["tpot_s"] * MS, "ms"),
    "tpot_hbm": Check(lambda r: r[2].summary["tpot_s"] * MS,
                      lambda r: (LAYERS * GEMV_LAYER + VOCAB * HIDDEN * 2 / (2 * HBM) + KERNELS_PER_STEP * LAUNCH
                                 + LAYERS * (op(r[2], "decode", "attention") - LAUNCH)) * MS, "ms"),
    "ttft_cores": Check(lambda r: r[5].summary["ttft_s"] * MS,
                        lambda r: (r[4].summary["ttft_s"] - (2 * 4000 * LAYERS * LAYER_WEIGHTS / PEAK * FILL
                                                              + LAYERS * op(r[4], "prefill", "attention")) / 2) * MS,
                        "ms"),
}
LESSONS["07_serving.md"] = {
    "one_user": Check(lambda r: r[1].summary["output_tokens_per_s"],
                      lambda r: 128 / (r[0].summary["ttft_s"] + 127 * r[0].summary["tpot_s"]), "tokens/s"),
    "ttft_16": Check(lambda r: r[3].summary["ttft_p50_s"] * MS, lambda r: 16 * r[0].summary["ttft_s"] * MS, "ms"),
    "tpot_16": Check(lambda r: r[3].summary["tpot_p50_s"] * MS,
                     lambda r: (STEP_WEIGHTS / HBM + KERNELS_PER_STEP * LAUNCH
                                + LAYERS * (op(r[2], "decode", "attention") - LAUNCH)) * MS, "ms"),
    "sixteen_users": Check(lambda r: r[3].summary["output_tokens_per_s"],
                           lambda r: 16 * 128 / (r[2].summary["ttft_s"] + 127 * r[2].summary["tpot_s"]), "tokens/s"),
    "static_16": Check(lambda r: r[4].summary["output_tokens_per_s"], lambda r: r[3].summary["output_tokens_per_s"],
                       "tokens/s"),
}


def main() -> None:
    from tests.test_lessons import lesson_runs

    for name, checks in LESSONS.items():
        runs = lesson_runs(name)
        print(name)
        for key, check in checks.items():
            sim = check.sim(runs)
            hand = check.hand_value(runs)
            print(f"  | {key} | | {hand:.6g} {check.unit} | {sim:.6g} {check.unit} | {(sim - hand) / hand:+.2%} |")


if __name__ == "__main__":
    main()
