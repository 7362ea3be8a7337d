"""Pipeline parallelism in serving: virtual engines whose steps pass through the stages in turn."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config.schema import RunError
from sim.engine.costing import Coster, send_op
from sim.serving.run import simulate_serving
from tests.conftest import make_config, serve

LOW = ("workload=serving", "workload.prompt_tokens=256", "workload.decode_tokens=16", "workload.num_requests=20",
       "workload.rate_per_s=0.2")


def test_at_low_load_a_step_through_the_stages_is_the_whole_pass_plus_the_sends():
    _, one, _ = serve(*LOW)
    result, two, s = serve(*LOW, "parallel.pp=2")
    cfg = result.cfg
    hidden = cfg.model.hidden_size * cfg.precision.activations.bytes
    send = Coster(cfg.hardware)
    def idle(cols):  # arrived to an empty server, and nobody arrived before it finished
        after = cols["arrival_s"] > np.maximum.accumulate(np.concatenate([[-1.0], cols["finish_s"][:-1]]))
        return after & (cols["finish_s"] < np.append(cols["arrival_s"][1:], np.inf))

    alone = idle(one) & idle(two)
    prompt = send(send_op(256 * hidden)).time_s
    decode = send(send_op(hidden)).time_s
    assert alone.sum() >= 15 and result.chips == 2 and s["instances"] == 2
    assert np.allclose(two["ttft_s"][alone], one["ttft_s"][alone] + prompt, rtol=1e-9)
    assert np.allclose(two["tpot_s"][alone], one["tpot_s"][alone] + decode, rtol=1e-9)


@pytest.mark.slow
def test_two_stages_carry_more_than_one_chip_and_every_request_completes():
    busy = ("workload=serving", "workload.prompt_tokens=256", "workload.decode_tokens=64", "workload.num_requests=300",
            "workload.rate_per_s=400", "workload.lengths=lognormal")
    _, _, one = serve(*busy)
    result, _, two = serve(*busy, "parallel.pp=2")
    assert two["completed_requests"] == 300 and all(r.generated == r.output_tokens for r in result.requests)
    assert two["output_tokens_per_s"] > 1.3 * one["output_tokens_per_s"]  # the stages work on two steps at once


@pytest.mark.parametrize("args, words", [
    (["scheduler=static"], "parallel.pp=2 in serving is simulated with scheduler=continuous"),
    (["speculative.draft_model=llama2_7b", "model=llama2_13b"], "without speculative decoding"),
])
def test_pipelines_where_they_are_not_modelled_are_one_line(args, words):
    with pytest.raises(RunError, match=words):
        simulate_serving(make_config(*LOW, "parallel.pp=2", *args))


@pytest.mark.parametrize("pp", [1, 2, 4])
def test_the_kv_cache_per_chip_is_what_each_chip_holds_beside_its_weights(pp):
    """A chip of a stage holds the caches of the stage's pp virtual engines: reported as one engine's, the cache took
    half the HBM at pp = 2 (review)."""
    kv = serve(*LOW, f"parallel.pp={pp}")[2]["kv_cache"]
    used = kv["GB_per_chip"] + kv["weights_GB_per_chip"] + kv["activations_GB_per_chip"]
    assert kv["engines_per_chip"] == pp
    assert kv["hbm_GB_per_chip"] - 0.1 < used <= kv["hbm_GB_per_chip"]
