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


def test_a_design_whose_own_figures_break_a_constraint_is_not_simulated(monkeypatch):
    """Area, cost and maximum power are figures of the chip alone: a design over such a limit is ruled out before
    its run (a third of decode_chip_llama2_70b's simulations were such designs), its reason and figures kept."""
    import dataclasses

    from sim.config.schema import WorkloadKind
    from sim.studies.kinds import WORKLOADS
    from sim.studies.search.evaluate import DESIGN_FIGURES, design_metrics
    from sim.studies.search.study import Constraint

    base = _run_part(_plain(["model=llama2_7b", "hardware=h100_sxm", "fidelity=analytic", "workload.batch=8",
                             "workload.decode_tokens=3"]))
    simulated = evaluate(base, {})
    assert set(design_metrics(_build(base))) == DESIGN_FIGURES
    tight = [Constraint("max_power_W", "<=", 100.0), Constraint("ttft_s", "<=", 1.0)]
    loose = [Constraint("max_power_W", "<=", 1e6)]
    entry = WORKLOADS[WorkloadKind.single_batch]

    def never(*_):
        raise AssertionError("a design ruled out by its own figures was simulated")

    monkeypatch.setitem(WORKLOADS, WorkloadKind.single_batch, dataclasses.replace(entry, simulate=never))
    for got in (_raised(lambda: evaluate(base, {}, limits=tight)), evaluate_many(base, [{}], limits=tight)[0]):
        assert isinstance(got, Infeasible)
        assert str(got) == "violates max_power_W <= 100 (a figure of the design itself: not simulated)"
        assert got.figures["max_power_W"] == simulated["max_power_W"] > 100
        assert set(got.figures) == DESIGN_FIGURES
    monkeypatch.setitem(WORKLOADS, WorkloadKind.single_batch, entry)
    assert evaluate(base, {}, limits=loose) == simulated  # within the limit: simulated as without it
    assert_as_one_by_one(base, DESIGNS, evaluate_many(base, DESIGNS, limits=loose))


def _build(base: dict):
    from sim.studies.search.evaluate import build

    return build(base, {})


def _raised(fn) -> Exception | None:
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - the test looks at what was raised
        return err
    return None
