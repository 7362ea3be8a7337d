"""Capacity under p99 latency targets (sim/studies/capacity.py) and the steady-state p99 (sim/metrics/slo.py)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config.schema import RunError
from sim.metrics.slo import (
    CI_LEVEL,
    PERCENTILE,
    RESAMPLES,
    bootstrap_interval,
    meets_p99,
    p99_with_interval,
    resampled_percentiles,
    steady_state,
)
from sim.studies.capacity import Prober, find_capacity
from tests.conftest import make_config

TINY = ("workload=serving", "workload.prompt_tokens=256", "workload.decode_tokens=32", "workload.lengths=lognormal",
        "slo.ttft_p99_s=0.1", "slo.tpot_p99_s=0.01")
DONE_WHEN = {  # issue 15: Llama-2-70B, fp8 weights and KV cache, MLPerf-style chat traffic and targets
    "h100_4xtp2": ("hardware=h100_sxm", "parallel.tp=2", "parallel.dp=4"),
    "h200_8xtp1": ("hardware=h200", "parallel.tp=1", "parallel.dp=8"),
}
CHAT_70B = ("workload=serving", "model=llama2_70b", "precision.weights=fp8", "precision.kv_cache=fp8",
            "workload.lengths=lognormal", "workload.prompt_tokens=512", "workload.length_cv=0.6",
            "workload.output_lengths=chat", "slo.ttft_p99_s=2", "slo.tpot_p99_s=0.2")


# The steady-state p99 ------------------------------------------------------------------------------
def test_warm_up_and_drain_are_left_out():
    arrivals = np.linspace(10.0, 110.0, 101)  # a span of 100 s: keep [20, 100]
    keep = steady_state(arrivals)
    assert arrivals[keep].min() == 20.0 and arrivals[keep].max() == 100.0 and keep.sum() == 81
    assert steady_state(np.zeros(5)).all()  # offline: every request counts


def test_a_p99_is_precise_only_with_enough_requests():
    rng = np.random.default_rng(3)
    assert p99_with_interval(np.full(50, 0.2)) == {"p99_s": 0.2, "ci_s": [0.2, 0.2], "samples": 50, "precise": True}
    small, large = (p99_with_interval(rng.lognormal(0.0, 0.5, n)) for n in (30, 20000))
    assert not small["precise"] and large["precise"]
    low, high = large["ci_s"]
    assert low <= large["p99_s"] <= high and high - low < small["ci_s"][1] - small["ci_s"][0]
    with_nan = p99_with_interval(np.array([np.nan, 1.0, 2.0, 3.0]))
    assert with_nan["samples"] == 3


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 3000), st.floats(0.05, 2.0), st.integers(0, 2**32 - 1), st.booleans())
def test_the_bootstrap_interval_is_scipys_percentile_bootstrap(n, sigma, seed, ties):
    """The interval without importing scipy.stats (a second at every run's end) is scipy.stats.bootstrap's
    percentile method with the same resamples and seed, bit for bit (scipy 1.17 on), ties included."""
    import scipy
    from packaging.version import Version
    from scipy.stats import bootstrap

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 5, n).astype(float) if ties else rng.lognormal(0.0, sigma, n)
    ci = bootstrap((values,), lambda x, axis: np.percentile(x, PERCENTILE, axis=axis), vectorized=True,
                   n_resamples=RESAMPLES, confidence_level=CI_LEVEL, method="percentile",
                   random_state=np.random.default_rng(0)).confidence_interval
    ours, theirs = bootstrap_interval(values), (float(ci.low), float(ci.high))
    if Version(scipy.__version__) >= Version("1.17"):  # its interval's ends: type-7 quantiles (stats.quantile)
        assert ours == theirs
    else:  # np.percentile's interpolation: the last bits may differ
        assert np.allclose(ours, theirs, rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 40), st.integers(0, 2**32 - 1),
       st.sampled_from(["lognormal", "ties", "low"]))
def test_resampled_p99s_are_numpys(n, resamples, seed, kind):
    """Each resample's p99 from the order statistics near its top is ``np.percentile``'s, bit for bit: with ties,
    and with resamples drawn from the lowest values (too few picks above the cut: the partition fallback)."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 5, n).astype(float) if kind == "ties" else rng.lognormal(0.0, 1.0, n)
    picks = rng.integers(0, n, (resamples, n))
    if kind == "low":
        picks[::2] = np.argsort(values)[rng.integers(0, max(1, n // 3), (len(picks[::2]), n))]
    assert np.array_equal(resampled_percentiles(values, picks), np.percentile(values[picks], PERCENTILE, axis=-1))


def test_meeting_p99_targets():
    slo = make_config(*TINY).slo
    assert meets_p99(0.1, 0.01, slo) and not meets_p99(0.1001, 0.01, slo) and not meets_p99(0.05, 0.02, slo)
    assert meets_p99(5.0, 0.01, replace(slo, ttft_p99_s=None)) and meets_p99(0.05, None, slo)
    assert meets_p99(None, None, slo) is None, "nothing measured: not judged (it was 'met' against any target)"


def test_a_run_with_no_steady_state_request_is_not_judged_met():
    """Two requests leave none between the first and last 10 % of arrivals: the p99s are n/a, and the verdict was
    'met' against a 1 ns target (independent review)."""
    from sim.output.serving_console import render_serving
    from tests.conftest import serve
    result, _, s = serve("workload=serving", "model.num_layers=2", "workload.num_requests=2",
                         "slo.ttft_p99_s=1e-9", "slo.tpot_p99_s=1e-9")
    st = s["steady_state"]
    assert st["measured_requests"] == 0 and st["meets_p99_slo"] is None
    assert "p99 SLO                 not judged" in render_serving(s)
    assert not Prober(make_config(*TINY, "workload.num_requests=2"), 2, 2)(1.0).passes


# The search -----------------------------------------------------------------------------------------
def _check_bracket(cfg, found, width=0.05):
    assert found.low is not None and found.high is not None and found.width <= width
    assert found.low.passes and not found.high.passes
    fresh = Prober(cfg, found.low.requests, found.low.requests)  # the same rates again, from scratch
    assert fresh(found.low.rate).passes
    again = Prober(cfg, found.high.requests, found.high.requests)(found.high.rate)
    assert not again.passes


def _check_loosening(cfg, found, prober, factors=(1.5, 4.0)):
    for key in ("ttft_p99_s", "tpot_p99_s"):
        for factor in factors:
            looser = replace(cfg, slo=replace(cfg.slo, **{key: getattr(cfg.slo, key) * factor}))
            assert find_capacity(looser, prober=prober).capacity >= found.capacity, (key, factor)


@pytest.mark.slow
def test_the_capacity_bracket_is_narrow_and_loosening_a_target_never_lowers_it():
    cfg = make_config(*TINY)
    prober = Prober(cfg, 300, 300)
    found = find_capacity(cfg, prober=prober)
    _check_bracket(cfg, found)
    _check_loosening(cfg, found, prober, factors=(1.1, 1.5, 3.0))
    relaxed = replace(cfg, slo=replace(cfg.slo, ttft_p99_s=None))  # a target dropped is the loosest
    assert find_capacity(relaxed, prober=prober).capacity >= found.capacity


@pytest.mark.slow
@pytest.mark.parametrize("system", list(DONE_WHEN))
def test_llama2_70b_capacity_on_an_8_chip_box(system):
    cfg = make_config(*CHAT_70B, *DONE_WHEN[system])
    prober = Prober(cfg, 500, 1000)
    found = find_capacity(cfg, prober=prober)
    _check_bracket(cfg, found)
    _check_loosening(cfg, found, prober, factors=(1.5,))


@pytest.mark.parametrize("args, words", [
    (["slo.ttft_p99_s=null", "slo.tpot_p99_s=null"], "needs a p99 target"),
    (["workload.arrival=closed"], "has no rate"),
    (["workload=single_batch"], "searches serving runs"),
    (["workload.turns=2"], "rate is of conversations"),
])
def test_bad_capacity_input_is_one_line(args, words):
    with pytest.raises(RunError, match=words):
        find_capacity(make_config(*TINY, *args))


@pytest.mark.parametrize("args, words", [
    (["hardware.hbm_bandwidth_GBps=-1"], "hbm_bandwidth_GBps must be a finite number > 0"),
    (["--offline", "hardware.hbm_bandwidth_GBps=-1"], "hbm_bandwidth_GBps must be a finite number > 0"),
    (["model.num_layers=0", "slo.ttft_p99_s=2"], "num_layers must be a whole number >= 1"),
    (["model=hf", "model.hf_config_path=/nonexistent", "slo.ttft_p99_s=2"], "no file at"),
    (["workload.batch"], "missing EQUAL.*an override is key=value"),
    # the offline probe kept the trace while drawing its requests: "add workload.arrival=trace", already there
    (["--offline", "workload.arrival=trace", "workload.trace=azure_code"], "a trace's arrival times would be dropped"),
    # named as given, not as the probes' workload.num_requests, which the user never set (independent review)
    (["--max-requests", "20000000", "slo.ttft_p99_s=2"], "--max-requests=20,000,000 is out of range: at most "
                                                          "10,000,000"),
])
def test_a_bad_chip_model_or_override_is_one_line_and_exit_2_from_the_command(args, words, capsys):
    """The chip's and the model's own errors, raised while the config is built, were a traceback (review)."""
    from sim.cli.capacity import main
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and re.search(words, err), err


@pytest.mark.slow
def test_the_command_prints_the_capacity_and_writes_its_files(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    exe = Path(sys.executable).parent / "llmsim-capacity"
    out = tmp_path / "cap"
    proc = subprocess.run([str(exe), *TINY[1:], "--requests", "150", "--max-requests", "150", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for words in ("offline throughput", "capacity ", "bracket", "per million output tokens", "J per output token",
                  "probes (plus the offline run), 150 requests per probe"):
        assert words in proc.stdout
    body = json.loads((out / "capacity.json").read_text())
    assert body["bracket_width"] <= 0.05 and body["capacity_requests_per_s"] > 0
    assert (out / "latency_vs_load.png").stat().st_size > 10_000 and (out / "probes.csv").exists()
    offline = subprocess.run([str(exe), *TINY[1:], "--offline", "--requests", "100"], capture_output=True,
                             text=True, timeout=600)
    assert offline.returncode == 0 and "offline throughput" in offline.stdout
    bad = subprocess.run([str(exe), "workload.arrival=trace", "workload.trace=azure_code"], capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "p99 target" in bad.stderr


# Deployments of a box -------------------------------------------------------------------------------
def test_the_layouts_of_a_box_are_its_tensor_and_pipeline_splits():
    from sim.studies.capacity_search import layouts
    cfg = make_config(*TINY, "parallel.tp=2", "parallel.dp=4", "scheduler.max_batch=64")
    assert layouts(cfg) == [(tp, pp, 8 // (tp * pp)) for pp in (1, 2, 4, 8) for tp in (1, 2, 4, 8) if tp * pp <= 8]
    odd = make_config(*TINY, "model=mistral_7b", "parallel.dp=6")  # 8 KV heads: TP3 and TP6 do not divide
    assert [tp for tp, pp, _ in layouts(odd) if pp == 1] == [1, 2]
    static = make_config(*TINY, "parallel.dp=2", "scheduler=static")  # no pipeline stages in static batching
    assert layouts(static) == [(1, 1, 2), (2, 1, 1)]


def test_fp8_is_tried_only_where_the_chip_runs_it():
    from sim.studies.capacity_search import formats
    assert [(w.value, k.value) for w, k in formats(make_config(*TINY, "hardware=h100_sxm"))] == [
        ("bf16", "bf16"), ("fp8", "fp8")]
    assert len(formats(make_config(*TINY, "hardware=h100_sxm", "precision.weights=fp8",
                                   "precision.kv_cache=fp8"))) == 1
    assert len(formats(make_config(*TINY, "hardware=a100_80gb"))) == 1  # Ampere: no fp8 matrices


def test_the_search_prunes_what_does_not_fit_before_probing_and_caps_the_probes(monkeypatch):
    from types import SimpleNamespace

    from sim.studies import capacity_search as cs
    asked = []

    def fake(trial, base, most):  # capacity grows with chips per replica and sequences: a fixed ranking
        asked.append(trial)
        p = trial.parallel
        return SimpleNamespace(capacity=p.tp * 10 + p.pp + trial.scheduler.max_batch / 1000, probes=[], low=None,
                               high=None, wall_s=0.0, lower_bound=False)
    monkeypatch.setattr(cs, "find_capacity", fake)
    cfg = make_config(*CHAT_70B[:2], "hardware=h100_sxm", "parallel.tp=2", "parallel.dp=2", "scheduler.max_batch=64",
                      "workload.num_requests=50")
    cands = cs.search_layouts(cfg, 50, 50, max_layouts=3)
    pruned = [c for c in cands if c.failure.startswith("pruned before probing")]
    assert {(c.tp, c.pp, c.cfg.precision.weights.value) for c in pruned} >= {(1, 1, "bf16")}  # 140 GB > 80 GB
    assert all(c.found is None for c in pruned) and all(t.parallel.tp * t.parallel.pp > 1 or
                                                        t.precision.weights.value == "fp8" for t in asked)
    probed_layouts = {(t.parallel.tp, t.parallel.pp, t.precision.weights) for t in asked}
    assert len(probed_layouts) == 3 and len(asked) == 5  # 3 layouts, then a quarter of the best's sequences and tokens
    knobs = [(t.scheduler.max_batch, t.scheduler.token_budget) for t in asked[3:]]
    assert knobs == [(16, cfg.scheduler.token_budget), (64, cfg.scheduler.token_budget // 4)]
    assert cands[0].capacity == max(c.capacity for c in cands) and cands[0].found is not None
    assert any(c.failure.startswith("not probed: over --max-layouts=3") for c in cands)
    text = cs.render_search(cands)
    assert "pruned before probing" in text
    unrun = next(line for line in text.splitlines() if "not probed" in line)  # no capacity, not a capacity of 0
    assert re.search(r"\s-\s+-\s+-\s", unrun) and " 0 " not in unrun
    with pytest.raises(RunError, match="max-layouts"):
        cs.search_layouts(cfg, 50, 50, max_layouts=0)


def test_the_search_sizes_a_layout_for_the_requests_its_probes_draw(monkeypatch):
    """Pruning sized the cache for ``workload.num_requests`` (1,000 drawn: the longest 1,234 tokens, 78 blocks),
    which the probes do not read: with --max-requests 50 (the longest 610 tokens, 39 blocks) a 50-block cache was
    pruned though every probe fits in it (second opinion, model version 14). It sizes for the most a probe may
    draw: with --requests 20 and --max-requests 1000 the layout is pruned before probing, not failed part-way
    through its search when a probe grows (second opinion)."""
    from types import SimpleNamespace

    from sim.serving.run import plan_memory
    from sim.studies import capacity_search as cs
    asked = []

    def fake(trial, base, most):
        asked.append(trial)
        return SimpleNamespace(capacity=1.0, probes=[], low=None, high=None, wall_s=0.0, lower_bound=False)
    monkeypatch.setattr(cs, "find_capacity", fake)
    cfg = make_config(*TINY, "hardware=h100_sxm", "scheduler.kv_cache_GB=0.42", "workload.num_requests=1000")
    assert plan_memory(replace(cfg, workload=replace(cfg.workload, num_requests=50)))[1].blocks == 50
    with pytest.raises(RunError, match="longer than the whole KV cache"):  # the premise: 1,000 requests do not fit
        plan_memory(cfg)
    cands = cs.search_layouts(cfg, 50, 50)
    assert not [c.failure for c in cands if c.failure.startswith("pruned")]
    assert {(t.parallel.tp, t.precision.weights.value) for t in asked} >= {(1, "bf16"), (1, "fp8")}
    asked.clear()  # bf16 KV: 800 tokens; fp8 KV: 1,600, which holds the longest of 1,000 requests
    cands = cs.search_layouts(replace(cfg, workload=replace(cfg.workload, num_requests=50)), 20, 1000)
    bf16 = next(c for c in cands if c.cfg.precision.kv_cache.value == "bf16")
    assert bf16.failure.startswith("pruned before probing: request") and "longer than the whole KV cache" in \
        bf16.failure, bf16.failure
    assert {t.precision.kv_cache.value for t in asked} == {"fp8"}  # the layout, then its knobs


@pytest.mark.slow
def test_the_search_ranks_layouts_by_capacity_and_says_why_the_others_lose():
    from sim.studies.capacity_search import render_search, search_layouts
    cfg = make_config(*TINY, "parallel.tp=2", "scheduler.max_batch=32")
    cands = search_layouts(cfg, 150, 150)
    assert [c.capacity for c in cands] == sorted((c.capacity for c in cands), reverse=True)
    assert {(c.tp, c.pp, c.dp) for c in cands} == {(1, 1, 2), (2, 1, 1), (1, 2, 1)}
    text = render_search(cands)
    assert "best" in text and all(word in text for word in ("KV cache holds", "requests/s"))
    assert all(c.per_usd_hour() > 0 and c.per_watt() > 0 for c in cands)


def test_a_search_with_no_layouts_to_probe_is_one_line(capsys):
    from sim.cli.capacity import main
    with pytest.raises(SystemExit) as exit_:
        main([*TINY[1:], "--search", "--max-layouts", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "--max-layouts must be >= 1" in err[0]


@pytest.mark.parametrize("args, words", [
    (["workload.decode_tokens=5000"], "no split of the 1 chip can serve this config: .* exceeds llama2_7b's context"),
    (["attention.kv_block_tokens=0"], "no split of the 1 chip can serve this config: attention.kv_block_tokens=0"),
])
def test_a_search_where_no_layout_can_serve_says_why_in_one_line(args, words, capsys):
    """Every layout refused by the serving checks left nothing to rank, and the table's first row was an IndexError
    (independent review)."""
    from sim.cli.capacity import main
    with pytest.raises(SystemExit) as exit_:
        main(["model.num_layers=2", "slo.ttft_p99_s=0.05", "--search", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and re.search(words, err[0]), err


def test_a_search_where_no_layout_fits_in_memory_is_one_line_and_exit_2(capsys):
    """Every layout pruned before probing (DeepSeek-V3 on one H100) printed a table of refusals and exited 0, where
    the same config without --search is one line and exit 2 (independent review)."""
    from sim.cli.capacity import main
    with pytest.raises(SystemExit) as exit_:
        main(["--search", "model=deepseek_v3", "slo.ttft_p99_s=1", "--requests", "50", "--max-requests", "50",
              "--max-layouts", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    assert re.search(r"no layout of the 1 chip serves deepseek_v3 on h100_sxm: 1 x TP1.*leave no room for a KV cache",
                     err[0]), err


def test_a_search_whose_probed_layouts_all_fail_names_the_ones_left_unprobed(capsys, monkeypatch):
    """--max-layouts 1 and the one layout probed cannot be served: others fit in memory, so the line says they were
    not probed and to raise --max-layouts, not that no layout serves (second-opinion review)."""
    from sim.cli.capacity import main
    from sim.studies import capacity_search as cs

    def fails(trial, base, most):
        raise RunError("request 7: its prompt and output need more than the whole KV cache")
    monkeypatch.setattr(cs, "find_capacity", fails)
    with pytest.raises(SystemExit) as exit_:
        main(["--search", "model=llama2_13b", "parallel.tp=2", "slo.ttft_p99_s=1", "--requests", "50",
              "--max-requests", "50", "--max-layouts", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    assert re.search(r"no probed layout of the 2 chips serves llama2_13b .*need more than the whole KV cache.*; "
                     r"\d+ more fit in memory but were not probed \(--max-layouts=1\): raise it", err[0]), err


@pytest.mark.parametrize("arrival", ["offline", "closed", "poisson"])
def test_the_offline_probe_runs_whatever_arrivals_the_config_names(arrival, capsys):
    """It sends every request at t = 0; the rate search's checks refused offline and closed configs (review)."""
    from sim.cli.capacity import main
    main(["--offline", "--requests", "20", *TINY[1:5], f"workload.arrival={arrival}"])
    assert "offline throughput" in capsys.readouterr().out


def test_the_offline_probe_does_not_check_the_out_it_does_not_use(tmp_path, capsys):
    """It said '--out is not used' and then refused that --out as a file, exit 2 (independent review)."""
    from sim.cli.capacity import main
    a_file = tmp_path / "afile"
    a_file.write_text("")
    main(["--offline", "--requests", "20", *TINY[1:5], "--out", str(a_file)])
    out, err = capsys.readouterr()
    assert "offline throughput" in out and "--out" in err and "error" not in err


def test_what_the_command_does_not_read_is_named():
    """--offline and --search write no files and the probes set their own request counts: --out and
    workload.num_requests went unused without a word (review)."""
    from argparse import Namespace

    from sim.cli.capacity import _unused

    notes = _unused(Namespace(out="x", offline=True, search=False), ["workload.num_requests=20"])
    assert notes[0].startswith("--out is not used: --offline prints") and "workload.num_requests" in notes[1]
    assert _unused(Namespace(out="x", offline=False, search=False), []) == []  # a capacity search writes there


def _probe(rate: float, requests: int, passes: bool, lifetime_s: float = 10.0):
    from sim.studies.capacity import Probe
    summary = {"overloaded": False, "e2e_mean_s": lifetime_s, "requests_per_s": rate * 0.9,
               "output_tokens_per_s": rate * 0.9 * 128, "usd_per_million_output_tokens": 0.01,
               "usd_per_chip_hour": 0.11, "joules_per_output_token": 0.1, "run": {},
               "steady_state": {"meets_p99_slo": True, "precise": True, "ttft_p50_s": 0.05, "ttft_p99_s": 0.1,
                                "ttft_p99_ci_s": (0.09, 0.11), "tpot_p50_s": 0.01, "tpot_p99_s": 0.02,
                                "tpot_p99_ci_s": (0.018, 0.022)}}
    return Probe(rate, requests, summary, passes, 0.1)


def test_a_capacity_stopped_by_the_probe_length_says_it_is_a_lower_bound():
    """The bracket's high end met the targets but was too short to pass: the capacity printed as the system's was
    the probe length's (a review found 82 requests/s at --max-requests 800 and 111 at 2,000, both printed plain)."""
    from sim.studies.capacity import Capacity
    from sim.studies.capacity_report import capacity_body, render_capacity
    cfg = make_config(*TINY)
    short = Capacity(cfg, _probe(0.0, 100, True), low=_probe(40.0, 2000, True), high=_probe(42.0, 200, False))
    short.probes = [short.low, short.high]
    judged = Capacity(cfg, short.offline, low=short.low, high=_probe(42.0, 4000, False))  # long enough: it missed
    assert short.lower_bound and not judged.lower_bound
    text = render_capacity(short)
    assert "capacity                 at least 40 requests/s" in text and "lower bound " in text
    # the throughput at that rate is the rate times the mean output, not the probe's (its start and drain included)
    assert "5,120 output tokens/s at that rate (4,608 over the probe" in text and "cost to make" in text
    body = capacity_body(short)
    assert body["capacity_is_lower_bound"] and body["output_tokens_per_s_at_capacity"] == pytest.approx(40 * 128)


def test_the_latency_chart_is_drawn_when_a_panel_has_nothing_measured(tmp_path):
    """A prefill-only workload has no TPOT at any load, and a probe of two requests measures none: the chart's log
    axis found no positive value and the command failed before writing capacity.json (independent review)."""
    from sim.plots.latency_load import plot_latency_load
    rows = [{"offered_rate_per_s": rate, "ttft_p50_s": ttft, "ttft_p99_s": ttft, "tpot_p50_s": None,
             "tpot_p99_s": None, "passes": True} for rate, ttft in ((1.0, 0.01), (2.0, None))]
    path = plot_latency_load(rows, 1.0, 2.0, {"ttft_p99_s": 0.05, "tpot_p99_s": None}, "t", tmp_path / "c.png")
    assert path.stat().st_size > 0
    none = [{**r, "ttft_p50_s": None, "ttft_p99_s": None} for r in rows]
    assert plot_latency_load(none, 0.0, 2.0, {}, "t", tmp_path / "d.png").stat().st_size > 0
