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

    sim: Callable[[list], float | str]
    hand: float | str
    unit: str


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


def main() -> None:
    from tests.test_lessons import lesson_runs

    for name, checks in LESSONS.items():
        runs = lesson_runs(name)
        print(name)
        for key, check in checks.items():
            sim = check.sim(runs)
            diff = "" if isinstance(sim, str) else f"{(sim - check.hand) / check.hand:+.2%}"
            print(f"  | {key} | | {check.hand:.6g} {check.unit} | {sim:.6g} {check.unit} | {diff} |")


if __name__ == "__main__":
    main()
