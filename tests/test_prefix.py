"""Prefix caching: a shared system prompt's KV blocks reused by later requests (sim/serving/kv_cache.py)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config.schema import RunError
from sim.serving.kv_cache import KvCache
from sim.serving.request import Request
from sim.serving.run import simulate_serving
from sim.serving.schedulers import StepShape
from sim.serving.step_cost import StepCoster
from tests.conftest import make_config, serve

SYSTEM_PROMPT = ("workload=serving", "workload.shared_prefix_tokens=1000", "workload.prompt_tokens=200",
                 "workload.decode_tokens=16", "workload.lengths=uniform", "workload.num_requests=40")


@pytest.mark.parametrize("scheduler", ["continuous", "chunked_prefill"])
def test_at_low_load_a_hit_costs_the_prefill_of_its_suffix_alone(scheduler):
    result, cols, s = serve(*SYSTEM_PROMPT, "workload.rate_per_s=0.2", "scheduler.prefix_caching=true",
                            f"scheduler={scheduler}")
    coster = StepCoster(result.cfg, result.cfg.execution(), 16)
    whole_blocks = 1000 // 16 * 16  # the prefix's partial last block is not shared
    idle = cols["arrival_s"] > np.maximum.accumulate(np.concatenate([[-1.0], cols["finish_s"][:-1]]))
    checked = 0
    for i in np.flatnonzero(idle)[1:]:  # the first request fills the cache
        prompt = int(cols["prompt_tokens"][i])
        assert cols["cached_prompt_tokens"][i] == whole_blocks
        suffix_only = coster(StepShape(((prompt - whole_blocks, prompt),), 0, 0, 0, 0, 1)).time_s
        assert cols["ttft_s"][i] == pytest.approx(suffix_only, rel=0.01)
        checked += 1
    assert checked >= 20 and cols["cached_prompt_tokens"][0] == 0
    pc = s["prefix_cache"]
    assert pc["hits"] == 39 and pc["hit_rate"] == pytest.approx(39 / 40) and pc["evictions"] == 0
    assert pc["saved_prefill_tokens"] == 39 * whole_blocks and pc["ttft_mean_hit_s"] < pc["ttft_mean_miss_s"]


@pytest.mark.slow
def test_prefix_caching_lowers_ttft_and_never_changes_what_is_generated():
    _, off, s_off = serve(*SYSTEM_PROMPT, "workload.rate_per_s=4")
    _, on, s_on = serve(*SYSTEM_PROMPT, "workload.rate_per_s=4", "scheduler.prefix_caching=true")
    assert s_on["ttft_mean_s"] < 0.6 * s_off["ttft_mean_s"]
    assert np.array_equal(off["output_tokens"], on["output_tokens"]) and s_on["completed_requests"] == 40
    assert s_off["prefix_cache"]["hits"] == 0 and not s_off["prefix_cache"]["enabled"]


def test_the_cache_evicts_an_unread_prefix_before_it_refuses_blocks():
    kv = KvCache(blocks=10, block_tokens=16, bytes_per_block=1.0, host_link_Bps=1.0)
    first = Request(0, 0.0, 100, 5, 1, shared=64)
    assert kv.lookup(first) == 0 and kv.grow(first, 100) and kv.used == 7
    first.prefilled = 100
    kv.insert(first)  # the prefix's 4 whole blocks are now the cache's, read by the first request
    assert (kv.prefix_blocks, first.blocks, first.shared_blocks, kv.used) == (4, 3, 4, 7)
    second = Request(1, 0.0, 80, 5, 2, shared=64)
    assert kv.lookup(second) == 64 and kv.needed(second, 80) == 1 and kv.grow(second, 80) and kv.used == 8
    kv.release(first)
    kv.release(second)
    assert kv.used == 4 and kv.prefix_refs == 0  # still cached, read by nobody
    big = Request(2, 0.0, 150, 5, 3)
    assert kv.grow(big, 150) and kv.evictions == 1 and kv.prefix_blocks == 0 and kv.used == 10
    assert kv.lookups == 2 and kv.hits == 1


@pytest.mark.slow
def test_under_memory_pressure_every_request_completes_and_blocks_balance():
    result, cols, s = serve("workload=serving", "workload.shared_prefix_tokens=512", "workload.prompt_tokens=64",
                            "workload.decode_tokens=300", "workload.num_requests=150", "workload.rate_per_s=200",
                            "workload.lengths=uniform", "scheduler.kv_cache_GB=2", "scheduler.prefix_caching=true")
    assert s["completed_requests"] == 150 and s["preemptions"] > 0 and s["prefix_cache"]["hits"] > 100
    assert all(r.generated == r.output_tokens and r.blocks == 0 and r.shared_blocks == 0 for r in result.requests)
    assert s["kv_cache_use_max"] <= 1.0


@pytest.mark.parametrize("args, words", [
    (["scheduler=static"], "scheduler.prefix_caching is simulated with"),
    (["scheduler.preemption=swap"], "preemption by recompute"),
])
def test_prefix_caching_where_it_is_not_modelled_is_one_line(args, words):
    with pytest.raises(RunError, match=words):
        simulate_serving(make_config(*SYSTEM_PROMPT, "scheduler.prefix_caching=true", *args))


def test_a_shared_prefix_is_for_drawn_prompts():
    with pytest.raises(RunError, match="replayed as they are"):
        make_config("workload=serving", "workload.arrival=trace", "workload.trace=azure_code",
                    "workload.shared_prefix_tokens=100")
