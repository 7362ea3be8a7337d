"""Speculative decoding in serving: draft passes and a verify pass per step, drafts accepted at random."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config.schema import RunError
from sim.serving.run import simulate_serving
from sim.serving.schedulers import StepShape
from sim.serving.step_cost import SpeculativeCoster, StepCoster
from tests.conftest import make_config, serve

TARGET = ("workload=serving", "model=llama2_13b", "workload.prompt_tokens=256", "workload.decode_tokens=21",
          "workload.num_requests=12", "workload.rate_per_s=0.2")
DRAFT = ("speculative.draft_model=llama2_7b", "speculative.k=4")


def test_with_every_draft_accepted_a_step_makes_k_plus_1_tokens_at_the_cost_of_draft_and_verify():
    result, cols, s = serve(*TARGET, *DRAFT, "speculative.acceptance=1")
    cfg = result.cfg
    draft = make_config(*TARGET, "model=llama2_7b")
    coster = SpeculativeCoster(StepCoster(cfg, cfg.execution(), 16), StepCoster(draft, cfg.execution(), 16), 4)
    steps = 0.0
    for i in range(4):  # 20 tokens after the first, 5 per step
        kv = 256 + 5 * i
        steps += coster(StepShape(((5, kv + 5),), 0, 0, 0, 0, 5, drafts=1, draft_contexts=kv + 1)).time_s
    alone = cols["arrival_s"] > np.maximum.accumulate(np.concatenate([[-1.0], cols["finish_s"][:-1]]))
    alone[1:] &= cols["arrival_s"][1:] + cols["e2e_s"][1:] < np.append(cols["arrival_s"][2:], np.inf)  # nobody joins
    assert alone.sum() >= 8 and s["completed_requests"] == 12
    assert np.allclose(cols["tpot_s"][alone], steps / 20, rtol=1e-9)
    assert s["steps"] <= 12 * 5  # at most a prefill and four draft-and-verify steps each


@pytest.mark.slow
def test_speculation_pays_when_drafts_are_accepted_and_costs_when_they_are_not():
    big = (*TARGET, "model=llama2_70b", "parallel.tp=4")  # a 7B draft is a tenth of the target
    plain = serve(*big)[2]["tpot_mean_s"]
    good = serve(*big, *DRAFT, "speculative.acceptance=0.8")[2]["tpot_mean_s"]
    bad = serve(*big, *DRAFT, "speculative.acceptance=0")[2]["tpot_mean_s"]
    assert good < 0.8 * plain and plain < bad
    same_size = serve(*TARGET, *DRAFT, "speculative.acceptance=0.8")[2]["tpot_mean_s"]  # 7B drafting for 13B
    assert same_size > 0.8 * serve(*TARGET)[2]["tpot_mean_s"]  # pays little or nothing


@pytest.mark.slow
def test_acceptance_is_drawn_from_the_seed_and_every_request_completes():
    a = serve(*TARGET, *DRAFT, "speculative.acceptance=0.6")
    b = serve(*TARGET, *DRAFT, "speculative.acceptance=0.6")
    c = serve(*TARGET, *DRAFT, "speculative.acceptance=0.6", "seed=3")
    assert np.array_equal(a[1]["tpot_s"], b[1]["tpot_s"]) and not np.array_equal(a[1]["e2e_s"], c[1]["e2e_s"])
    assert all(r.generated == r.output_tokens and r.blocks == 0 for r in a[0].requests)
    assert a[0].cache.blocks < serve(*TARGET)[0].cache.blocks  # the draft's weights and KV take HBM


@pytest.mark.parametrize("args, words", [
    (["scheduler=static"], "speculative.draft_model is simulated with scheduler=continuous"),
    (["speculative.draft_model=llama3_8b"], "the draft must share the target's tokenizer"),
    # it said model=hf needs model.hf_config_path, the target's (independent review)
    (["speculative.draft_model=hf"], "speculative.draft_model=hf is not supported: a draft model is a preset"),
])
def test_speculation_where_it_is_not_modelled_is_one_line(args, words):
    with pytest.raises(RunError, match=words):
        simulate_serving(make_config(*TARGET, *DRAFT, *args))


def test_a_request_whose_drafts_outgrow_the_cache_is_refused_not_left_unfinished():
    """Its last step writes k draft tokens beyond its prompt and output: 1,400 + 88 fill the 93 blocks exactly, so
    with k = 8 the lone request preempted itself, the others were never scheduled and the run ended with 0 of 3
    completed, exit 0 (review)."""
    args = ("workload=serving", "model=llama2_13b", "speculative.draft_model=llama2_7b", "speculative.acceptance=0",
            "workload.num_requests=3", "workload.rate_per_s=1", "workload.decode_tokens=88", "scheduler.kv_cache_GB=2",
            "speculative.k=8")
    with pytest.raises(RunError, match="the 8 draft tokens a speculative step verifies, 1,496 tokens, need more"):
        simulate_serving(make_config(*args, "workload.prompt_tokens=1400"))
    fits = simulate_serving(make_config(*args, "workload.prompt_tokens=1392"))  # 1,392 + 88 + 8: the 93 blocks
    assert all(r.finish_s > 0 for r in fits.requests)


def test_guaranteed_admission_reserves_the_drafts_too_so_nobody_is_preempted():
    """251 + 21 tokens fill 17 blocks exactly; a speculative step's drafts need an 18th, and with only the prompt and
    output reserved 10 requests were preempted in a cache of 34 blocks."""
    result = simulate_serving(make_config(*TARGET, *DRAFT, "speculative.acceptance=0.5", "workload.rate_per_s=50",
                                          "workload.prompt_tokens=251", "scheduler.admission=guaranteed",
                                          "scheduler.kv_cache_GB=0.74"))
    assert result.cache.blocks == 34
    assert result.preemptions == 0 and all(r.finish_s > 0 for r in result.requests)
    steps = result.steps  # verify chunks are decodes in the step table, not prefills
    assert steps["prefill_tokens"].sum() == sum(r.prompt_tokens for r in result.requests)
    assert steps["decode_sequences"].sum() > 0
    assert np.array_equal(steps["batch_size"], steps["prefill_sequences"] + steps["decode_sequences"])


@pytest.mark.parametrize("scheduler", ["continuous", "chunked_prefill"])
def test_a_request_swapped_out_with_its_drafts_room_comes_back_with_every_block_it_holds(scheduler):
    """Swapped out, a request may hold the blocks of its next k + 1 tokens, more than its next token needs; it came
    back only once that one fitted, its copy in then found too few free blocks, and the run failed (independent
    review). Now it waits until all of them fit and takes room for its drafts too: every request completes and
    every block is freed."""
    result = simulate_serving(make_config(
        "workload=serving", "model.num_layers=2", "workload.num_requests=20", "workload.rate_per_s=80",
        "workload.prompt_tokens=64", "workload.decode_tokens=400", "scheduler.preemption=swap",
        f"scheduler={scheduler}", *DRAFT, "scheduler.kv_cache_GB=0.6"))
    assert result.preemptions > 0 and result.swapped_bytes > 0
    assert all(r.finish_s > 0 and r.generated == r.output_tokens for r in result.requests)
    assert result.steps["kv_blocks_used"][-1] == 0
    assert result.steps["kv_blocks_used"].max() <= result.cache.blocks


def test_a_run_that_stalls_with_requests_left_is_an_error_not_a_result(monkeypatch):
    from sim.serving.schedulers import ContinuousScheduler
    plan = ContinuousScheduler.plan
    monkeypatch.setattr(ContinuousScheduler, "plan", lambda self, now: plan(self, now) if now < 20 else None)
    with pytest.raises(RunError, match=r"stalled with \d+ of 12 requests unfinished \(request \d+: "):
        simulate_serving(make_config(*TARGET))


def test_the_activation_workspace_holds_a_step_of_verified_drafts():
    """Every running decode joins a step (the token budget does not cap them) and a speculative step verifies k more
    tokens for each: up to k x max_batch beyond the budget (review)."""
    from sim.serving.run import plan_memory
    plain = plan_memory(make_config(*TARGET))[1].activations
    spec = plan_memory(make_config(*TARGET, *DRAFT))[1].activations
    cfg = make_config(*TARGET)
    tokens = cfg.scheduler.token_budget
    assert spec == pytest.approx(plain * (tokens + 4 * cfg.scheduler.max_batch) / tokens, rel=0.05)
