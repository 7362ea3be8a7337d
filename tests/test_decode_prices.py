"""A step's decode attention in closed form (sim/serving/decode_prices.py) prices steps to the bits of building
their attention ops and replaying the pass, and serving runs use it."""

from __future__ import annotations

import pytest

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


def test_unfused_attention_is_priced_by_building_its_ops():
    coster = make_coster(make_config("workload=serving", "attention.kernel=unfused"))
    key = ((), 4, 100, 100, 100, 4)
    assert coster.cost_key(key) == coster.cost_graph(coster.graph(key))
    assert coster.closed_ops == 0 and not coster._forms


def test_runs_price_decode_attention_in_closed_form_and_count_each_signature_once():
    result, _, summary = serve("workload=serving", "workload.num_requests=60", "workload.rate_per_s=20")
    assert summary["completed_requests"] == 60
    assert 0 < result.distinct_steps <= summary["steps"]
    coster = make_coster(result.cfg)
    from sim.serving.run import simulate_serving
    again = simulate_serving(result.cfg, coster)
    assert coster.closed_ops > 0  # decode attention priced in closed form
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
        if rng.random() < 0.1:  # and both are the pass built whole and replayed by the analytic engine
            assert built.cost_key(key) == built.cost_graph(built.graph(key)), (name, key)
    forms = [form for form in closed._forms.values() if form is not None]
    assert bool(forms) == (name != "7b_h100_power_capped")  # covered presets take the closed form
