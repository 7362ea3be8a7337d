"""Traffic of serving runs: the shipped Azure traces, trace files in either format, length presets."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sim.config.schema import RunError
from sim.serving.traces import trace_path
from sim.serving.traffic import make_traffic
from tests.conftest import make_config

SERVING = ("workload=serving",)


def traffic(*overrides: str, context: int | None = None):
    cfg = make_config(*SERVING, *overrides)
    return make_traffic(cfg.workload, cfg.seed, context or cfg.model.max_context)


def _rows(name: str) -> list[dict]:
    with trace_path(name).open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("name", ["azure_code", "azure_conv"])
def test_a_shipped_trace_replays_every_row_in_its_own_time(name):
    rows = _rows(name)
    t = traffic("workload.arrival=trace", f"workload.trace={name}", context=1 << 20)
    assert len(t) == len(rows) and t.users == 0
    assert t.arrival_s[0] == 0 and np.all(np.diff(t.arrival_s) >= 0)
    assert 3000 < t.arrival_s[-1] < 3600  # the traces cover one hour
    assert t.prompt_tokens.sum() == sum(int(r["ContextTokens"]) for r in rows)
    assert t.output_tokens.sum() == sum(int(r["GeneratedTokens"]) for r in rows)
    fast = traffic("workload.arrival=trace", f"workload.trace={name}", "workload.trace_scale=2", context=1 << 20)
    assert np.array_equal(fast.arrival_s, t.arrival_s / 2)
    first = traffic("workload.arrival=trace", f"workload.trace={name}", "workload.num_requests=50", context=1 << 20)
    assert len(first) == 50 and np.array_equal(first.prompt_tokens, t.prompt_tokens[:50])


def test_prompts_of_an_azure_trace_are_cut_to_the_context_and_counted():
    t = traffic("workload.arrival=trace", "workload.trace=azure_conv")  # llama2_7b: 4,096 tokens
    assert (t.prompt_tokens + t.output_tokens).max() <= 4096 and t.prompt_tokens.min() >= 1
    over = sum(int(r["ContextTokens"]) + int(r["GeneratedTokens"]) > 4096 for r in _rows("azure_conv"))
    assert over > 0 and f"{over:,} prompts cut to the model's 4,096-token context" in t.source


@pytest.mark.parametrize("prefix", [0, 100])
def test_drawn_azure_rows_too_long_keep_their_output_and_cut_their_prompt_as_a_replay_does(prefix):
    """workload.lengths=azure_code draws whole rows; one longer than the context keeps its output and has its prompt
    cut, as the trace replay does, and the run says how many (it cut the output to 1 token, silently: the request
    then left the TPOT percentiles and the output tokens; independent review)."""
    n = 2000
    long = traffic("workload.lengths=azure_code", "workload.rate_per_s=5", f"workload.num_requests={n}",
                   f"workload.shared_prefix_tokens={prefix}", context=1 << 20)
    cut = traffic("workload.lengths=azure_code", "workload.rate_per_s=5", f"workload.num_requests={n}",
                  f"workload.shared_prefix_tokens={prefix}", context=4096)
    over = long.prompt_tokens + long.output_tokens > 4096
    assert over.sum() > 0 and f"{over.sum():,} prompts cut to the model's 4,096-token context" in cut.source
    assert np.array_equal(cut.output_tokens, np.minimum(long.output_tokens, 4095 - prefix))
    assert np.array_equal(cut.prompt_tokens[~over], long.prompt_tokens[~over])
    assert np.all(cut.prompt_tokens[over] + cut.output_tokens[over] == 4096)
    assert cut.prompt_tokens.min() > prefix
    assert "cut" not in long.source


def test_a_file_in_azure_format_reads_like_the_shipped_one(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\r\n2023-11-16 18:00:01.5000000,100,10\r\n"
                    "2023-11-16 18:00:00.2500000,50,5\r\n2023-11-16 18:00:03.0000000,70,7")
    t = traffic("workload.arrival=trace", f"workload.trace_path={path}")
    assert list(t.arrival_s) == [0.0, 1.25, 2.75] and list(t.prompt_tokens) == [50, 100, 70]
    assert list(t.rows) == [2, 1, 3]


@pytest.mark.parametrize("text, words", [
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:01.5,100,0\n", "row 1: GeneratedTokens is '0'"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:01.5,1,1\nyesterday,100,3\n",
     "row 2: TIMESTAMP is 'yesterday'"),
    ("time,tokens\n1,2\n", "or Azure's TIMESTAMP, ContextTokens, GeneratedTokens"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:01.5,1e20,1\n", "ContextTokens is '1e20'"),
    # an epoch time printed "1 requests in 0.001 ns"; a count past int64 was a traceback (independent review)
    ("arrival_s,prompt_tokens,output_tokens\n1e15,100,20\n", "arrival_s is 1000000000000000.0; arrival times"),
    ("arrival_s,prompt_tokens,output_tokens\n0,100000000000000000000,20\n", "lengths are whole numbers from 1 to"),
])
def test_a_bad_azure_file_names_its_row(tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(RunError, match=words):
        traffic("workload.arrival=trace", f"workload.trace_path={path}")


def test_chat_outputs_have_the_published_statistics():
    t = traffic("workload.lengths=lognormal", "workload.length_cv=0.6", "workload.output_lengths=chat",
                "workload.num_requests=50000", context=1 << 20)
    out = t.output_tokens
    assert out.max() == 1024 and np.mean(out) == pytest.approx(290, rel=0.05)
    assert np.median(out) == pytest.approx(260, rel=0.03) and np.percentile(out, 99) == pytest.approx(860, rel=0.03)
    assert t.prompt_tokens.mean() == pytest.approx(512, rel=0.03)
    assert np.std(t.prompt_tokens) / t.prompt_tokens.mean() == pytest.approx(0.6, rel=0.1)


@pytest.mark.parametrize("name, prompt, output", [("sharegpt", 161.31, 337.99), ("alpaca", 19.31, 58.45)])
def test_dataset_presets_have_the_vllm_paper_means(name, prompt, output):
    t = traffic(f"workload.lengths={name}", "workload.num_requests=50000", context=1 << 20)
    assert t.prompt_tokens.mean() == pytest.approx(prompt, rel=0.05)
    assert t.output_tokens.mean() == pytest.approx(output, rel=0.05)


def test_trace_lengths_drive_poisson_arrivals_at_any_rate():
    rows = _rows("azure_code")
    t = traffic("workload.lengths=azure_code", "workload.rate_per_s=40", "workload.num_requests=20000",
                context=1 << 20)
    assert np.diff(t.arrival_s).mean() == pytest.approx(1 / 40, rel=0.05)
    assert t.prompt_tokens.mean() == pytest.approx(np.mean([int(r["ContextTokens"]) for r in rows]), rel=0.05)
    assert t.output_tokens.mean() == pytest.approx(np.mean([int(r["GeneratedTokens"]) for r in rows]), rel=0.05)
    pairs = {(int(r["ContextTokens"]), int(r["GeneratedTokens"])) for r in rows}
    assert all((p, o) in pairs for p, o in zip(t.prompt_tokens[:200], t.output_tokens[:200], strict=True))


@pytest.mark.parametrize("cv", [0.2, 0.5, 0.572])  # 0.572: about the widest for outputs of mean 128
def test_uniform_lengths_have_the_mean_and_cv_asked_for(cv):
    t = traffic("workload.lengths=uniform", f"workload.length_cv={cv}", "workload.num_requests=20000")
    for drawn, mean in ((t.prompt_tokens, 512), (t.output_tokens, 128)):
        assert drawn.min() >= 1 and abs(drawn.mean() / mean - 1) < 0.01 and abs(drawn.std() / drawn.mean() - cv) < 0.01


def test_offline_sends_everything_at_once():
    t = traffic("workload.arrival=offline", "workload.num_requests=30")
    assert len(t) == 30 and not t.arrival_s.any()


def test_an_offline_run_does_not_call_its_load_stable():
    """Every request at t = 0: the queue only drains, so 'stable (queueing delay grows 0 s per second of arrivals)'
    beside a 17 s median queueing delay misled (independent review)."""
    from sim.metrics.serving_summary import summarize_serving
    from sim.output.serving_console import render_serving
    from sim.serving.run import simulate_serving
    text = render_serving(summarize_serving(simulate_serving(make_config(
        "workload=serving", "workload.arrival=offline", "workload.num_requests=40", "workload.decode_tokens=16"))))
    assert "offline: every request arrives at t = 0" in text and "stable (queueing delay" not in text


@pytest.mark.parametrize("args, words", [
    (["workload.lengths=chat"], "gives output lengths only"),
    (["workload.arrival=trace", "workload.trace=azure_code", "workload.trace_path=x.csv"], "both name a trace"),
    (["workload.trace_scale=0"], "workload.trace_scale must be > 0"),
    # a trace named without arrival=trace was silently not replayed: Poisson arrivals reported instead (review)
    (["workload.trace_path=x.csv"], "add workload.arrival=trace to replay it"),
    (["workload.trace=azure_code", "workload.arrival=gamma"], "workload.arrival=gamma draws the requests"),
    (["workload.num_requests=0"], "workload.num_requests must be >= 1"),
    # clipped at 1 token, cv 5 drew prompts of mean 2,509 and cv 0.51 under a header saying mean 512, cv 5 (review)
    (["workload.lengths=uniform", "workload.length_cv=5"], r"uniform prompt lengths of mean 512 .* cv 0\.576"),
    (["workload.output_lengths=uniform", "workload.length_cv=0.6"], r"uniform output lengths of mean 128 .*decode_tok"),
])
def test_bad_traffic_settings_are_one_line(args, words):
    with pytest.raises(RunError, match=words):
        traffic(*args)


def test_a_shipped_trace_is_served_to_the_end():
    from sim.metrics.serving_summary import summarize_serving
    from sim.serving.run import simulate_serving
    s = summarize_serving(simulate_serving(make_config(*SERVING, "workload.arrival=trace", "workload.trace=azure_conv",
                                                       "workload.num_requests=60")))
    assert s["completed_requests"] == 60 and "azure_llm_2023_conv.csv, 60 rows" in s["run"]["traffic"]


def test_the_prefix_cache_line_counts_hits_rather_than_rounding_199_of_200_up_to_100_percent():
    """199 hits of 200 lookups read "100% of 200 admissions hit" beside a mean TTFT "on a miss" (independent review)."""
    from sim.output.serving_console import _prefix

    pc = {"enabled": True, "lookups": 200, "hits": 199, "hit_rate": 199 / 200, "saved_prefill_tokens": 199_000,
          "evictions": 0, "ttft_mean_hit_s": 0.02, "ttft_mean_miss_s": 0.05}
    line = _prefix({"prefix_cache": pc})[0]
    assert "199 of 200 admissions hit (99.5%)" in line and "100%" not in line


@pytest.mark.parametrize("n, words", [(20, "7 conversations of 3 turns (the last of 2)"),
                                      (21, "7 conversations of 3 turns,"),
                                      (2, "1 conversation of 3 turns (its first 2)")])
def test_the_header_says_when_the_requests_end_mid_conversation(n, words):
    """20 requests of 3-turn conversations are 7 conversations, the last of 2 turns; the header said '7 conversations
    of 3 turns', 21 turns (independent review)."""
    t = traffic("workload.turns=3", f"workload.num_requests={n}")
    assert len(t) == n and words in t.source


def test_drawn_outputs_longer_than_the_context_are_counted_too():
    """An output alone past the context (after the shared prefix and a token of prompt) is shortened: the header
    counts those beside the prompts cut (second-opinion review: 43 of 300 shortened silently)."""
    args = ("workload.lengths=lognormal", "workload.prompt_tokens=3000", "workload.decode_tokens=2000",
            "workload.length_cv=1.0", "workload.num_requests=300", "workload.shared_prefix_tokens=500")
    long, cut = traffic(*args, context=1 << 20), traffic(*args)
    shortened = int((long.output_tokens > 4096 - 1 - 500).sum())
    assert shortened > 0 and int((cut.output_tokens < long.output_tokens).sum()) == shortened
    assert f"({shortened:,} outputs shortened too, to 3,595 tokens)" in cut.source
