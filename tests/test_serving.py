"""Serving simulation: requests, schedulers, the paged KV cache, latency and cost per request.

Small loads (a few hundred requests of Llama-2-7B on h100_sxm, short prompts) keep the file fast.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sim.batch.run import simulate
from sim.config.schema import RunError
from sim.engine.analytic import simulate_analytic
from sim.engine.costing import Coster
from sim.metrics.serving_summary import summarize_serving
from sim.metrics.summary import summarize
from sim.serving.run import simulate_serving
from sim.serving.step_cost import StepCoster
from sim.serving.traffic import make_traffic
from tests.conftest import make_config, run_cli, serve
from workloads.attention import attention_pairs
from workloads.graph import AttentionKernel, Execution, Phase, build_pass
from workloads.step import build_step, chunk_pairs

SHORT = ("workload=serving", "workload.prompt_tokens=256", "workload.decode_tokens=32", "workload.num_requests=200")
REQUIRED = ("completed_requests", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p99_s",
            "output_tokens_per_s", "goodput_requests_per_s", "preemptions", "joules_per_output_token",
            "usd_per_million_output_tokens")


# A step's cost is the cost model's -----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("model", ["llama2_7b", "mistral_7b"])
@pytest.mark.parametrize("kernel", list(AttentionKernel))
@pytest.mark.parametrize("block", [0, 16])
def test_a_step_of_one_sequence_is_the_single_batch_pass(model, kernel, block):
    m = make_config(f"model={model}").model
    ex = Execution(attention=kernel, kv_block_tokens=block)
    for context in (1, 17, 600, 5000):
        step = build_step(m, ex, [], [context])
        assert list(step.ops()) == list(build_pass(m, ex, Phase.decode, 1, 1, context).ops())
        assert list(build_step(m, ex, [], [context] * 5).ops()) == list(
            build_pass(m, ex, Phase.decode, 5, 1, context).ops())
    for prompt in (1, 300, 5000):
        assert list(build_step(m, ex, [(prompt, prompt)], []).ops()) == list(
            build_pass(m, ex, Phase.prefill, 1, prompt, prompt).ops())


def test_step_coster_prices_a_step_as_the_analytic_pass():
    cfg = make_config("workload=serving")
    ex = cfg.execution()
    coster = StepCoster(cfg, ex, 16)
    for context in (512, 2048):
        step = coster.cost_graph(coster.graph(coster.signature(_shape(coster, decodes=[context]))))
        alone = simulate_analytic([build_pass(cfg.model, ex, Phase.decode, 1, 1, context)], Coster(cfg.hardware))
        assert step.time_s == pytest.approx(alone.end_s, rel=1e-12)
    prefill = coster(_shape(coster, chunks=((300, 300),)))
    alone = simulate_analytic([build_pass(cfg.model, ex, Phase.prefill, 1, 300, 300)], Coster(cfg.hardware))
    assert prefill.time_s == pytest.approx(alone.end_s, rel=1e-12) and prefill.dynamic_J > 0


def _shape(coster, chunks=(), decodes=()):
    from sim.serving.schedulers import StepShape
    total = sum(decodes)
    return StepShape(tuple(chunks), len(decodes), total, total, total, len(chunks) + len(decodes))


def test_mixed_step_has_two_attention_kernels_and_a_fixed_size():
    m, ex = make_config().model, Execution()
    small = build_step(m, ex, [(100, 300)], [50])
    big = build_step(m, ex, [(100, 300), (64, 64)], [50] * 200)
    assert small.kernels == big.kernels
    names = [op.name for op, _ in big.ops()]
    assert "prefill_attention" in names and "decode_attention" in names
    decode = next(op for op, _ in big.ops() if op.name == "decode_attention")
    assert decode.flops == 4.0 * m.head_dim * 50 * 200 * m.num_heads
    tokens = next(op for op, _ in big.ops() if op.name == "qkv_proj").m
    assert tokens == 100 + 64 + 200


@pytest.mark.parametrize("window", [0, 100])
def test_chunks_add_up_to_the_whole_prompt(window):
    for kernel in AttentionKernel:
        whole = attention_pairs(Phase.prefill, 256, 256, window, kernel)
        chunks = chunk_pairs(100, 100, window, kernel) + chunk_pairs(100, 200, window, kernel) + \
            chunk_pairs(56, 256, window, kernel)
        if kernel is not AttentionKernel.unfused:
            assert chunks == whole
        else:  # an unfused kernel computes each chunk's whole rectangle
            assert chunks == 100 * 100 + 100 * 200 + 56 * 256


# Correctness the issue asks for ----------------------------------------------------------------
@pytest.mark.parametrize("scheduler", ["continuous", "chunked_prefill", "static"])
def test_at_low_load_ttft_is_one_prefill_and_tpot_one_batch1_decode(scheduler):
    alone = summarize(simulate(make_config("workload.prompt_tokens=256", "workload.decode_tokens=32",
                                           "fidelity=analytic")))
    _, _, s = serve(*SHORT[:-1], "workload.num_requests=60", "workload.rate_per_s=0.5", f"scheduler={scheduler}")
    assert s["ttft_p50_s"] == pytest.approx(alone["ttft_s"], rel=1e-6)
    assert s["tpot_p50_s"] == pytest.approx(alone["tpot_s"], rel=1e-3)
    assert not s["overloaded"] and s["preemptions"] == 0


@pytest.mark.slow
def test_throughput_rises_with_load_then_saturates_and_the_queue_grows_without_bound():
    runs = {rate: serve(*SHORT, f"workload.rate_per_s={rate}")[2] for rate in (4, 16, 64, 256, 1024)}
    thr = [runs[r]["output_tokens_per_s"] for r in sorted(runs)]
    assert thr[0] < thr[1] < thr[2] < thr[3]
    assert thr[1] == pytest.approx(4 * thr[0], rel=0.1)  # below saturation it follows the load
    assert thr[4] == pytest.approx(thr[3], rel=0.05)  # past it, more load adds nothing
    assert not runs[4]["overloaded"] and not runs[64]["overloaded"] and runs[1024]["overloaded"]
    # Past saturation the queueing delay grows with the length of the run, and within it.
    _, short, s_short = serve(*SHORT, "workload.rate_per_s=2000")
    _, long, s_long = serve(*SHORT[:-1], "workload.num_requests=400", "workload.rate_per_s=2000")
    assert s_long["queueing_delay_mean_s"] > 1.8 * s_short["queueing_delay_mean_s"]
    delay = long["queueing_delay_s"]
    assert delay[-40:].mean() > 5 * delay[:40].mean()


@pytest.mark.slow
@pytest.mark.parametrize("rate", [8, 400])
def test_littles_law_holds(rate):
    _, _, s = serve(*SHORT, "workload.lengths=lognormal", f"workload.rate_per_s={rate}")
    for queue in ("queue", "system"):
        law = s["littles_law"][queue]
        assert law["L_time_average"] == pytest.approx(law["lambda_W"], rel=0.02)


def test_littles_law_is_taken_over_the_busy_span_of_a_trace_that_starts_late(tmp_path):
    """Averaged from t = 0, a trace whose first request comes at 1,000 s showed L = 1.26 in the system where the busy
    span holds about 54, and an arrival rate unlike requests_per_s (review)."""
    trace = tmp_path / "late.csv"
    rows = "".join(f"{1000 + i / 50},200,40\n" for i in range(60))
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n" + rows)
    _, cols, s = serve("workload=serving", "workload.arrival=trace", f"workload.trace_path={trace}",
                       "workload.num_requests=null")
    law = s["littles_law"]
    assert law["horizon_s"] == pytest.approx(cols["finish_s"].max() - 1000)
    assert law["arrival_rate_per_s"] == pytest.approx(s["requests_per_s"])
    assert law["system"]["L_time_average"] == pytest.approx(law["system"]["lambda_W"], rel=1e-9)
    assert law["system"]["L_time_average"] > 5


@pytest.mark.slow
def test_continuous_batching_beats_static_at_the_same_latency_target():
    best = {}
    for scheduler in ("static", "continuous"):
        best[scheduler] = max(
            s["output_tokens_per_s"] for rate in (8, 16, 32, 64, 128)
            if (s := serve(*SHORT, "workload.lengths=lognormal", f"scheduler={scheduler}",
                           f"workload.rate_per_s={rate}")[2])["slo_attainment"] >= 0.9)
    assert best["continuous"] > 2 * best["static"]


@pytest.mark.slow
@pytest.mark.parametrize("preemption", ["recompute", "swap"])
@pytest.mark.parametrize("scheduler", ["continuous", "chunked_prefill"])
def test_a_small_kv_cache_preempts_but_every_request_completes(preemption, scheduler):
    result, cols, s = serve("workload=serving", "workload.prompt_tokens=64", "workload.decode_tokens=256",
                            "workload.num_requests=150", "workload.rate_per_s=200", "workload.lengths=uniform",
                            "scheduler.kv_cache_GB=0.5", f"scheduler={scheduler}", f"scheduler.preemption={preemption}")
    assert s["preemptions"] > 0 and s["completed_requests"] == 150
    assert all(r.generated == r.output_tokens and r.blocks == 0 for r in result.requests)
    assert s["kv_cache_use_max"] <= 1.0 and cols["preemptions"].sum() == s["preemptions"]
    assert (s["swapped_GB_per_chip"] > 0) == (preemption == "swap")


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["continuous", "disaggregated"])
def test_same_seed_same_numbers_bit_for_bit(scheduler):
    args = (*SHORT, "workload.arrival=gamma", "workload.lengths=lognormal", "workload.rate_per_s=300",
            "scheduler.kv_cache_GB=1", f"scheduler={scheduler}")
    (_, a, sa), (_, b, sb) = serve(*args), serve(*args)
    assert all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)
    drop = ("run",)
    assert {k: v for k, v in sa.items() if k not in drop} == {k: v for k, v in sb.items() if k not in drop}
    _, c, _ = serve(*args, "seed=1")
    assert not np.array_equal(a["arrival_s"], c["arrival_s"])


# Schedulers and traffic ------------------------------------------------------------------------
@pytest.mark.slow
def test_chunked_prefill_keeps_steps_within_the_token_budget_and_decodes_steady():
    args = ("workload=serving", "workload.prompt_tokens=2048", "workload.decode_tokens=64",
            "workload.num_requests=100", "workload.rate_per_s=8")
    chunked, _, sc = serve(*args, "scheduler=chunked_prefill")
    steps = pd.DataFrame(chunked.steps)
    assert (steps["prefill_tokens"] + steps["decode_sequences"]).max() <= 512
    _, _, cont = serve(*args, "scheduler=continuous")
    assert sc["tpot_p99_s"] < 0.85 * cont["tpot_p99_s"]  # no decode waits for a whole 2048-token prefill (0.79 now)


def test_static_batches_are_bounded_and_never_preempted():
    result, _, s = serve(*SHORT, "scheduler=static", "scheduler.max_batch=8", "workload.rate_per_s=100")
    assert s["batch_size_max"] == 8 and s["preemptions"] == 0 and s["completed_requests"] == 200


def test_closed_loop_keeps_its_users_busy():
    result, _, s = serve(*SHORT, "workload.arrival=closed", "workload.concurrency=4")
    steps = pd.DataFrame(result.steps)
    assert (steps["running"] + steps["waiting"]).max() <= 4 and s["completed_requests"] == 200
    assert s["batch_size_max"] == 4


def test_arrival_processes_and_lengths_have_their_moments():
    cfg = make_config("workload=serving", "workload.num_requests=20000", "workload.arrival=gamma", "workload.cv=3",
                      "workload.rate_per_s=50", "workload.lengths=lognormal", "workload.length_cv=0.8")
    t = make_traffic(cfg.workload, 0, 1 << 20)
    gaps = np.diff(np.concatenate([[0.0], t.arrival_s]))
    assert gaps.mean() == pytest.approx(1 / 50, rel=0.05) and gaps.std() / gaps.mean() == pytest.approx(3, rel=0.1)
    assert t.prompt_tokens.mean() == pytest.approx(512, rel=0.05)
    assert t.output_tokens.std() / t.output_tokens.mean() == pytest.approx(0.8, rel=0.1)


def test_a_trace_gives_arrivals_and_lengths(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s, prompt_tokens, output_tokens\n0.0, 100, 10\n0.5, 200, 1\n0.25, 50, 20\n")
    result, cols, s = serve("workload=serving", "workload.arrival=trace", f"workload.trace_path={trace}")
    assert list(cols["arrival_s"]) == [0.0, 0.25, 0.5] and list(cols["prompt_tokens"]) == [100, 50, 200]
    assert list(cols["source_row"]) == [1, 3, 2] and s["completed_requests"] == 3
    assert math.isnan(cols["tpot_s"][2])  # one output token: no time per output token


@pytest.mark.slow
def test_events_grow_with_steps_not_with_ops():
    result, _, s = serve(*SHORT, "workload.rate_per_s=50")
    assert result.events <= s["steps"] + 2 * s["requests"] + 5


# Disaggregated prefill and decode ----------------------------------------------------------------
def test_disaggregated_moves_every_cache_and_matches_the_single_batch_at_low_load():
    alone = summarize(simulate(make_config("workload.prompt_tokens=256", "workload.decode_tokens=32",
                                           "fidelity=analytic")))
    result, cols, s = serve(*SHORT[:-1], "workload.num_requests=60", "workload.rate_per_s=0.5",
                            "scheduler=disaggregated")
    assert s["completed_requests"] == 60 and s["kv_moves"]["count"] == 60 and result.chips == 2
    assert s["ttft_p50_s"] == pytest.approx(alone["ttft_s"], rel=1e-6)  # the first token comes from the prefill
    move = s["kv_moves"]["mean_s"]
    assert 0 < move < 0.1 * alone["ttft_s"]
    assert s["tpot_p50_s"] == pytest.approx(alone["tpot_s"] + move / 31, rel=1e-3)  # the move delays token 2


@pytest.mark.slow
def test_disaggregated_decodes_never_wait_for_prefills():
    args = ("workload=serving", "workload.prompt_tokens=2048", "workload.decode_tokens=64",
            "workload.num_requests=100", "workload.rate_per_s=8")
    _, _, split = serve(*args, "scheduler=disaggregated")
    _, _, mixed = serve(*args, "scheduler=continuous")
    assert split["tpot_p99_s"] < 0.75 * mixed["tpot_p99_s"]


@pytest.mark.slow
def test_disaggregated_decode_pool_preempts_and_completes():
    result, _, s = serve("workload=serving", "workload.prompt_tokens=64", "workload.decode_tokens=256",
                         "workload.num_requests=120", "workload.rate_per_s=200", "scheduler=disaggregated",
                         "scheduler.decode_instances=2", "scheduler.kv_cache_GB=0.5")
    assert s["preemptions"] > 0 and s["completed_requests"] == 120
    assert set(result.steps["instance"]) == {"prefill0", "decode0", "decode1"}
    assert all(r.generated == r.output_tokens for r in result.requests)


# Bad input: one line each ----------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["workload.rate_per_s=0"], "workload.rate_per_s must be > 0"),
    (["workload.rate_per_s=-3"], "workload.rate_per_s must be > 0"),
    (["slo.ttft_s=0"], "slo.ttft_s must be > 0"),
    (["slo.tpot_s=0"], "slo.tpot_s must be > 0"),
    (["workload.arrival=trace"], "needs workload.trace=azure_code|azure_conv or workload.trace_path"),
    (["workload.prompt_tokens=5000"], "exceeds llama2_7b's context of 4096"),
    (["workload.prompt_tokens=1000", "scheduler.kv_cache_GB=0.1"], "request 1: its prompt of 1,000 tokens is longer "
                                                                    "than the whole KV cache"),
    (["scheduler.kv_cache_GB=500"], "scheduler.kv_cache_GB=500 does not fit"),
    (["parallel.overlap_comm=true"], "set parallel.overlap_comm=false"),
    (["scheduler=disaggregated", "scheduler.prefill_instances=5", "scheduler.decode_instances=4"],
     "needs 9 chips, but one h100_sxm fabric joins 8"),
])
def test_bad_serving_input_is_one_clear_line(args, words):
    with pytest.raises(RunError) as err:
        simulate_serving(make_config("workload=serving", *args))
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text, words", [
    ("arrival_s,prompt_tokens\n0,10\n", "missing column output_tokens"),
    ("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,20,-5\n", "row 2: output_tokens is -5"),
    ("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,20,5\n2,4000,200\n", "row 3: prompt_tokens + output_tokens "
                                                                             "= 4200 exceeds"),
    ("arrival_s,prompt_tokens,output_tokens\n0,ten,5\n", "row 1: prompt_tokens is 'ten', not a number"),
    ("arrival_s,prompt_tokens,output_tokens\n-1,10,5\n", "row 1: arrival_s is -1.0"),
    # these were tracebacks (independent review): bytes that are not text, a row longer than the header, a quote
    # left open; a longer row of the own format was read without a word
    (b"\xff\xfe\x00garbage", "not a text CSV file (byte 0 is not UTF-8)"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"
     "2023-11-16 18:15:50.9951690,396,109,7,8\n", "not a readable CSV file: Error tokenizing data. C error: Expected 3 "
                                                 "fields in line 3, saw 5"),
    ('TIMESTAMP,ContextTokens,GeneratedTokens\n"2023-11-16 18:15:46.6805900,374,44\n', "EOF inside string"),
    ("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,10,5,9\n", "row 2: 4 fields, but the header names 3"),
])
def test_a_bad_trace_names_the_row(tmp_path, text, words):
    trace = tmp_path / "t.csv"
    trace.write_bytes(text) if isinstance(text, bytes) else trace.write_text(text)
    with pytest.raises(RunError) as err:
        simulate_serving(make_config("workload=serving", "workload.arrival=trace", f"workload.trace_path={trace}"))
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("budget", [600, 400])
def test_a_continuous_step_stays_within_the_token_budget_but_for_a_prompt_longer_than_it(budget):
    """A 512-token prompt joined 89-127 decodes in a 600-token budget (independent review): the first prompt of a
    step was admitted whatever the decodes had left. Now only a prompt longer than the whole budget, which no step
    could fit, exceeds it, as its step's only prompt; every request still completes."""
    result, _, s = serve("workload=serving", "model.num_layers=2", "workload.num_requests=300",
                         "workload.rate_per_s=3000", f"scheduler.token_budget={budget}")
    steps = result.steps
    tokens = steps["prefill_tokens"] + steps["decode_sequences"]
    over = tokens > budget
    assert s["completed_requests"] == 300
    assert np.all(steps["prefill_sequences"][over] == 1) and np.all(steps["prefill_tokens"][over] > budget)
    assert over.any() == (budget < 512)


# The command ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_serving_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(f"hydra.run.dir={out}", "workload=serving", "workload.num_requests=60", "workload.rate_per_s=5",
                   "workload.decode_tokens=32", "cost.usd_per_chip_hour=2.5")
    assert proc.returncode == 0, proc.stderr
    for words in ("time to first token", "goodput", "KV cache", "per million output tokens", "$0.03 per 1K",
                  "$0.06 per 1K", "Little's law"):
        assert words in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert all(summary[k] is not None for k in REQUIRED) and summary["completed_requests"] == 60
    assert summary["usd_per_chip_hour"] == 2.5 and summary["provenance"]["seed"] == 0
    requests = pd.read_parquet(out / "requests.parquet")
    assert len(requests) == 60 and len(pd.read_csv(out / "requests.csv")) == 60
    assert (out / "serving.png").stat().st_size > 10_000 and (out / "steps.parquet").exists()
    assert "scheduler:" in (out / "config.yaml").read_text()


@pytest.mark.slow
def test_bad_serving_input_from_the_command_line(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,-20,5\n")
    for args, words in ((["workload.rate_per_s=0"], "workload.rate_per_s must be > 0"),
                        (["workload.arrival=trace", f"workload.trace_path={trace}"], "row 2: prompt_tokens is -20"),
                        (["scheduler=fifo"], "unknown scheduler preset 'fifo'")):
        proc = run_cli(f"hydra.run.dir={tmp_path / 'run'}", "workload=serving", *args)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr


@pytest.mark.parametrize("overrides", [(), ("model=mistral_7b", "attention.kernel=unfused"),
                                       ("model=mixtral_8x7b", "parallel.tp=2", "runtime=vllm_eager")])
def test_a_step_costed_from_its_frame_is_the_built_pass_bit_for_bit(overrides):
    import random
    cfg = make_config("workload=serving", *overrides)
    coster = StepCoster(cfg, cfg.execution(), 16)
    rng, unfused = random.Random(7), cfg.attention.kernel is AttentionKernel.unfused
    for _ in range(60):
        chunks = tuple((new, new + rng.choice([0, 16, 300])) for new in
                       [rng.choice([1, 17, 300]) for _ in range(rng.choice([0, 0, 1, 2]))])
        decodes = rng.choice([0, 1, 3]) if chunks else rng.choice([1, 3])
        pairs = decodes * rng.choice([20, 64, 500]) // 16
        samples = rng.choice([len(chunks) + decodes, 1])  # a chunk short of its prompt's end samples nothing
        key = (chunks, decodes, pairs, pairs, pairs if unfused else 0, samples)
        assert coster.cost_key(key) == coster.cost_graph(coster.graph(key))
    assert 0 < len(coster._frames) < 60  # most keys were costed from a frame
    assert len(coster._layers) < len(coster._frames)  # frames of one token count share a layer (other samples)


@pytest.mark.parametrize("scheduler", ["continuous", "chunked_prefill"])
def test_guaranteed_admission_never_preempts_where_max_utilization_does(scheduler):
    args = ("workload=serving", "workload.prompt_tokens=64", "workload.decode_tokens=256", "workload.num_requests=50",
            "workload.rate_per_s=200", "workload.lengths=uniform", "scheduler.kv_cache_GB=0.5",
            f"scheduler={scheduler}")
    _, _, greedy = serve(*args)
    result, _, safe = serve(*args, "scheduler.admission=guaranteed")
    assert greedy["preemptions"] > 0 and safe["preemptions"] == 0 and safe["completed_requests"] == 50
    assert safe["batch_size_mean"] < greedy["batch_size_mean"]  # room kept for outputs runs fewer at once
    fits = safe["kv_cache"]["sequences_fit_at_mean_lengths"]
    assert fits == result.cache.blocks // -(-round(np.mean(result.traffic.prompt_tokens +
                                                           result.traffic.output_tokens)) // 16)


def test_a_run_after_another_of_the_same_model_gives_the_same_numbers_and_counts():
    """Step costers of one model and execution share their segments' ops (SegmentShapes): a run's numbers and
    counts do not depend on which runs came before it in the process (a search simulates many chips in one)."""
    from sim.serving.step_cost import SegmentShapes

    args = ("workload=serving", "workload.num_requests=60", "workload.rate_per_s=40", "workload.lengths=lognormal")
    SegmentShapes._shared.clear()
    alone = summarize_serving(simulate_serving(make_config(*args, "hardware=h100_sxm")))
    shapes = len(SegmentShapes._shared)
    simulate_serving(make_config(*args, "hardware=h100_sxm", "hardware.hbm_bandwidth_GBps=2000", "seed=3"))  # another
    after = summarize_serving(simulate_serving(make_config(*args, "hardware=h100_sxm")))
    assert len(SegmentShapes._shared) == shapes == 1  # one model and execution: one set of shapes, shared
    for summary in (alone, after):
        summary["run"].pop("sim_wall_s", None)
    assert after == alone


def test_a_serving_run_restores_the_garbage_collector_thresholds():
    import gc

    before = gc.get_threshold()
    simulate_serving(make_config("workload=serving", "workload.num_requests=20"))
    assert gc.get_threshold() == before


def test_the_summary_without_intervals_differs_only_in_its_steady_state_block():
    result = simulate_serving(make_config("workload=serving", "workload.num_requests=40"))
    full, quick = summarize_serving(result), summarize_serving(result, intervals=False)
    assert full["steady_state"]["ttft_p99_ci_s"] and quick["steady_state"] == {}
    full.pop("steady_state"), quick.pop("steady_state")
    for summary in (full, quick):
        summary["run"].pop("sim_wall_s", None)
    assert quick == full
