"""llm-analysis on bench_vector.py's 1,000-point grid, run inside its throw-away venv (no llmsim import).

Reads the grid (JSON, argv[1]) and prints one JSON line: the package version, the points and the
seconds per point of ``LLMAnalysis(...).inference`` (best of three). The model and one GPU config
per (HBM bandwidth, clock) are written as JSON files in a temporary folder and read back through
the package's own loaders; nothing is fetched.
"""

import json
import logging
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from llm_analysis.analysis import LLMAnalysis
from llm_analysis.config import GPUConfig, ParallelismConfig, get_dtype_config_by_name, get_model_config_by_name


def configs(spec: dict, folder: Path):
    m = spec["model"]
    model_file = folder / "llama2_7b.json"
    # llm-analysis needs the MLP width as a whole multiple of the hidden size and has no gated MLP: its own
    # Llama-2-7B config (model_configs/NousResearch_Llama-2-7b-hf.json) gives 16384, the three gated
    # matrices' width 1.5 x 11008 rounded to a multiple of 4096; the same rule here.
    ffn = round(1.5 * m["ffn"] / m["hidden"]) * m["hidden"]
    model_file.write_text(json.dumps({
        "name": "llmsim_llama2_7b", "num_layers": m["layers"], "n_head": m["heads"], "hidden_dim": m["hidden"],
        "vocab_size": m["vocab"], "max_seq_len": m["context"], "num_key_value_heads": m["kv_heads"],
        "ffn_embed_dim": ffn, "model_type": "llama"}))
    model = get_model_config_by_name(str(model_file))
    gpus = {}
    for bw in spec["bw"]:
        for f in spec["freq"]:
            tflops = spec["bf16_TFLOPS"] * f / spec["base_freq"]
            path = folder / f"gpu_{bw:g}_{f:g}.json"
            path.write_text(json.dumps({
                "name": path.stem, "mem_per_GPU_in_GB": spec["memory_GB"], "hbm_bandwidth_in_GB_per_sec": bw,
                "intra_node_bandwidth_in_GB_per_sec": 300, "intra_node_min_message_latency": 8e-06,
                "peak_fp16_TFLOPS": tflops, "peak_i8_TFLOPS": 2 * tflops, "peak_i4_TFLOPS": 4 * tflops,
                "inter_node_bandwidth_in_GB_per_sec": 200}))
            gpus[(bw, f)] = GPUConfig(**json.loads(path.read_text()))
    return model, gpus


def main() -> None:
    spec = json.loads(sys.argv[1])
    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        model, gpus = configs(spec, Path(tmp))
    dtype = get_dtype_config_by_name("w16a16e16")
    points = [(gpus[(bw, f)], b) for bw in spec["bw"] for f in spec["freq"] for b in spec["batch"]]

    def run():
        for gpu, batch in points:
            LLMAnalysis(model, gpu, dtype, ParallelismConfig(tp_size=1)).inference(
                batch_size_per_gpu=batch, seq_len=spec["prompt"], num_tokens_to_generate=1)

    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"version": version("llm-analysis"), "points": len(points), "per_point_s": best / len(points)}))


if __name__ == "__main__":
    main()
