"""Multi-turn conversations (workload.turns): later turns carry the earlier ones, and a prefix cache keeps
their KV for the next turn (sim/serving/traffic.py, sim/serving/kv_cache.py)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config.schema import RunError
from sim.serving.kv_cache import KvCache
from sim.serving.request import Request
from sim.serving.run import simulate_serving
from sim.serving.schedulers import StepShape
from sim.serving.step_cost import StepCoster
from sim.serving.traffic import make_traffic
from tests.conftest import make_config, serve

CHAT = ("workload=serving", "workload.prompt_tokens=200", "workload.decode_tokens=16", "workload.lengths=uniform",
        "workload.num_requests=20", "workload.rate_per_s=0.1", "workload.think_s=5")


def test_one_turn_is_the_run_there_was_bit_for_bit():
    _, plain, s_plain = serve(*CHAT)
    _, one, s_one = serve(*CHAT, "workload.turns=1", "workload.think_s=99")
    for key in ("arrival_s", "ttft_s", "e2e_s", "prompt_tokens"):
        assert np.array_equal(plain[key], one[key])
    assert s_plain["ttft_p99_s"] == s_one["ttft_p99_s"]


def test_a_turn_carries_its_conversation_and_arrives_after_the_turn_before_it():
    cfg = make_config(*CHAT, "workload.turns=3")
    t = make_traffic(cfg.workload, cfg.seed, 4096)
    solo = make_traffic(make_config(*CHAT).workload, cfg.seed, 4096)  # the same draws of new tokens
    new = solo.prompt_tokens
    assert np.array_equal(t.prompt_tokens[0::3], new[0::3])
    assert np.array_equal(t.prompt_tokens[1::3], new[0::3] + t.output_tokens[0::3] + new[1::3])
    assert np.array_equal(t.context[2::3], (t.prompt_tokens[1::3] + t.output_tokens[1::3])[:6])  # 7th: 2 turns
    result, cols, _ = serve(*CHAT, "workload.turns=3")
    by_rid = {r.rid: r for r in result.requests}
    for i in range(1, 20):
        if i % 3:
            assert by_rid[i].arrival_s == pytest.approx(by_rid[i - 1].finish_s + t.think_s[i], abs=1e-9)


@pytest.mark.parametrize("scheduler", ["continuous", "chunked_prefill"])
def test_with_prefix_caching_a_second_turn_prefills_only_its_new_tokens(scheduler):
    result, cols, s = serve(*CHAT, "workload.turns=2", "scheduler.prefix_caching=true", f"scheduler={scheduler}")
    coster = StepCoster(result.cfg, result.cfg.execution(), 16)
    reqs = sorted(result.requests, key=lambda r: r.rid)
    idle = cols["arrival_s"] > np.maximum.accumulate(np.concatenate([[-1.0], cols["finish_s"][:-1]]))
    assert idle.all()  # low load: each request finds the server empty
    saved = 0
    for first, second in zip(reqs[0::2], reqs[1::2], strict=True):
        cached = (first.prompt_tokens + first.output_tokens - 1) // 16 * 16  # whole blocks of its KV
        assert first.cached_prompt == 0 and second.cached_prompt == cached
        prompt = second.prompt_tokens
        alone = coster(StepShape(((prompt - cached, prompt),), 0, 0, 0, 0, 1)).time_s
        assert second.first_token_s - second.arrival_s == pytest.approx(alone, rel=0.01)
        saved += cached
    pc = s["prefix_cache"]
    assert pc["hits"] == 10 and pc["lookups"] == 10 and pc["saved_prefill_tokens"] == saved
    assert pc["evictions"] == 0 and pc["hit_rate"] == 1.0


def test_without_prefix_caching_a_second_turn_prefills_its_whole_context():
    result, cols, s = serve(*CHAT, "workload.turns=2")
    coster = StepCoster(result.cfg, result.cfg.execution(), 16)
    for second in sorted(result.requests, key=lambda r: r.rid)[1::2]:
        prompt = second.prompt_tokens
        whole = coster(StepShape(((prompt, prompt),), 0, 0, 0, 0, 1)).time_s
        assert second.cached_prompt == 0
        assert second.first_token_s - second.arrival_s == pytest.approx(whole, rel=0.01)
    assert s["prefix_cache"]["hits"] == 0


def test_an_unread_conversation_entry_is_evicted_before_blocks_are_refused():
    kv = KvCache(blocks=10, block_tokens=16, bytes_per_block=1.0, host_link_Bps=1.0)
    turn1 = Request(0, 0.0, 40, 9, 1, conv=0, last_turn=False)
    assert kv.grow(turn1, 49)
    turn1.kv_tokens = 48
    kv.end_turn(turn1)
    assert kv.convs == {0: [3, False]} and kv.used == 3
    turn2 = Request(1, 0.0, 60, 5, 2, conv=0, context=49, last_turn=True)
    assert kv.lookup(turn2) == 48 and kv.needed(turn2, 65) == 2
    kv.unlookup(turn2)
    big = Request(2, 0.0, 150, 5, 3)
    assert kv.grow(big, 150) and kv.evictions == 1 and kv.convs == {} and kv.used == 10
    assert kv.lookup(turn2) == 0 and (kv.lookups, kv.hits) == (1, 0)


@pytest.mark.parametrize("args, words", [
    (["workload.turns=0"], "workload.turns must be"),
    (["workload.think_s=-1"], "workload.think_s must be"),
    (["workload.turns=2", "workload.arrival=closed"], "arrival=closed brings its own"),
    (["workload.turns=2", "workload.shared_prefix_tokens=64"], "not modelled"),
])
def test_bad_turns_are_one_line(args, words):
    with pytest.raises(RunError, match=words):
        make_config(*CHAT, *args)


def test_a_conversation_longer_than_the_context_is_named():
    with pytest.raises(RunError, match="conversation 1 turn"):
        simulate_serving(make_config(*CHAT, "workload.turns=40", "workload.prompt_tokens=200"))


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["continuous", "chunked_prefill"])
def test_under_memory_pressure_every_turn_completes_and_every_block_comes_back(monkeypatch, scheduler):
    caches = []
    made = KvCache.__init__

    def keep(self, *args):
        made(self, *args)
        caches.append(self)
    monkeypatch.setattr(KvCache, "__init__", keep)
    result, cols, s = serve("workload=serving", "workload.prompt_tokens=300", "workload.decode_tokens=200",
                            "workload.lengths=lognormal", "workload.num_requests=300", "workload.rate_per_s=5",
                            "workload.turns=4", "workload.think_s=0.5", "scheduler.kv_cache_GB=16",
                            "scheduler.prefix_caching=true", f"scheduler={scheduler}")
    pc = s["prefix_cache"]
    assert s["completed_requests"] == 300 and s["preemptions"] > 0 and pc["hits"] > 0 and pc["evictions"] > 0
    assert all(r.generated == r.output_tokens and r.blocks == 0 and r.shared_blocks == 0 for r in result.requests)
    assert all(kv.used == 0 and not kv.convs for kv in caches)


def test_the_same_seed_gives_the_same_conversations_bit_for_bit():
    (_, a, _), (_, b, _) = (serve(*CHAT, "workload.turns=3", "scheduler.prefix_caching=true") for _ in range(2))
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in ("arrival_s", "ttft_s", "e2e_s"))
