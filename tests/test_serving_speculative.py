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
])
def test_speculation_where_it_is_not_modelled_is_one_line(args, words):
    with pytest.raises(RunError, match=words):
        simulate_serving(make_config(*TARGET, *DRAFT, *args))
