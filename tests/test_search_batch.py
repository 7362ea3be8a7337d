"""Search at batch speed: designs evaluated together give what ``evaluate`` gives each one."""

from __future__ import annotations

import math

from sim.studies.search.asktell import batch_size, evaluate_many
from sim.studies.search.evaluate import Infeasible, evaluate
from sim.studies.search.runner import _plain, _run_part

DESIGNS = [{"hardware.num_cores": 96, "hardware.freq_GHz": 1.5}, {"hardware.num_cores": 132, "hardware.sram_MiB": 64},
           {"parallel.tp": 3}]  # tp=3 does not divide the heads: infeasible


def test_designs_evaluated_together_match_one_by_one():
    base = _run_part(_plain(["model=llama2_7b", "hardware=h100_sxm", "fidelity=analytic", "workload.batch=8",
                             "workload.decode_tokens=3"]))
    assert_as_one_by_one(base, DESIGNS, evaluate_many(base, DESIGNS))


def assert_as_one_by_one(base: dict, designs: list[dict], together: list) -> None:
    """Each design's metrics (or its reason for being infeasible) are what ``evaluate`` gives it alone."""
    for design, got in zip(designs, together, strict=True):
        try:
            want = evaluate(base, design)
        except Infeasible as err:
            assert isinstance(got, Infeasible) and str(got) == str(err)
            continue
        assert set(got) == set(want)
        for key, value in want.items():
            assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-15), key


def test_batch_is_a_generation_of_nsga2_and_one_trial_of_tpe():
    assert batch_size({"sampler": "nsga2"}, 200) == 40
    assert batch_size({"sampler": "tpe"}, 200) == 1
    assert batch_size({"sampler": "tpe", "batch": 16}, 200) == 16
