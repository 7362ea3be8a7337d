"""Decode-only signatures priced over arrays (sim/serving/decode_prices.py) equal the step coster's
one-at-a-time prices bit for bit, and serving runs use them."""

from __future__ import annotations

import numpy as np
import pytest

from sim.serving.decode_prices import price_decodes
from sim.serving.run import make_coster
from tests.conftest import make_config, serve

CASES = {
    "7b_h100": ["workload=serving"],
    "70b_h200_fp8_tp2": ["workload=serving", "model=llama2_70b", "hardware=h200", "parallel.tp=2",
                         "precision.weights=fp8", "precision.kv_cache=fp8"],
    "13b_a100": ["workload=serving", "model=llama2_13b", "hardware=a100_80gb"],
    "8b_gqa_h100_flash2": ["workload=serving", "model=llama3_8b", "attention.kernel=flash2"],
    "7b_h100_power_capped": ["workload=serving", "hardware.board_power_W=150"],
}


def _fields(cost) -> tuple:
    return (cost.time_s, cost.dynamic_J, cost.matrix_flops, cost.flops, cost.hbm_bytes, *cost.spans)


@pytest.mark.parametrize("name", sorted(CASES))
def test_array_prices_equal_scalar_prices(name):
    cfg = make_config(*CASES[name])
    rng = np.random.default_rng(7)
    for decodes in (1, 3, 17, 64):
        ahead, alone = make_coster(cfg), make_coster(cfg)
        start = int(rng.integers(decodes, 4000))
        pairs = np.sort(rng.integers(start, start + 3000, size=40))  # in blocks, growing as in a run
        cached = pairs + rng.integers(0, 3, size=40)
        prices = price_decodes(ahead, decodes, pairs, cached)
        if prices is None:
            assert name == "7b_h100_power_capped", "covered presets are priced over arrays"
            continue
        for i, (p, c) in enumerate(zip(pairs.tolist(), cached.tolist(), strict=True)):
            expected = _fields(alone.cost_key(((), decodes, p, c, 0, decodes)))
            assert tuple(float(x[i]) for x in prices) == expected, (name, decodes, p, c)


def test_unfused_attention_is_priced_one_at_a_time():
    coster = make_coster(make_config("workload=serving", "attention.kernel=unfused"))
    assert price_decodes(coster, 4, np.array([100, 101]), np.array([100, 101])) is None


def test_runs_price_ahead_and_count_each_signature_once():
    result, _, summary = serve("workload=serving", "workload.num_requests=60", "workload.rate_per_s=20")
    assert summary["completed_requests"] == 60
    assert 0 < result.distinct_steps <= summary["steps"]
    coster = make_coster(result.cfg)
    from sim.serving.run import simulate_serving
    again = simulate_serving(result.cfg, coster)
    assert coster.array_ops > 0  # decode runs took their signatures from the array prices
    assert again.distinct_steps == result.distinct_steps


def test_replica_runs_spanning_arrivals_are_the_step_by_step_simulation(monkeypatch):
    """Two replicas: runs span arrivals routed to the other replica, and are cut after an arrival to their own;
    every row, total and request time is still the step-by-step simulation's, bit for bit."""
    from tests.test_decode_runs import assert_same, both

    slow, fast = both(monkeypatch, "parallel.dp=2", "workload.num_requests=60", "workload.rate_per_s=30")
    assert_same(slow, fast)


@pytest.mark.parametrize("name", sorted(CASES))
def test_steps_priced_from_the_closed_form_equal_steps_built_op_by_op(name):
    """A step's decode attention from its closed form (and its prefill's stored by chunks) prices prefill, mixed and
    decode-only signatures to the bits of building the step's attention ops."""
    import random

    cfg = make_config(*CASES[name])
    closed, built = make_coster(cfg), make_coster(cfg)
    built._closed = False
    rng = random.Random(11)
    for _ in range(80):
        chunks = tuple((new, new + rng.choice([0, 16, 300])) for new in
                       [rng.choice([1, 17, 512]) for _ in range(rng.choice([0, 1, 1, 3]))])
        decodes = rng.choice([1, 2, 9, 64, 200])
        pairs = decodes * rng.randint(20, 3000) // 16
        key = (chunks, decodes, pairs, pairs + rng.randint(0, decodes), 0, decodes + len(chunks))
        assert closed.cost_key(key) == built.cost_key(key), (name, key)
    forms = [form for form in closed._forms.values() if form is not None]
    assert bool(forms) == (name != "7b_h100_power_capped")  # covered presets take the closed form
