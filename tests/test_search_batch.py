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
    its run (one in four of decode_chip_llama2_70b's simulations were such designs), its reason and figures kept."""
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


def test_nothing_feasible_names_a_run_metric_that_rules_out_every_simulated_design():
    """Designs ruled out by their own figures have no run metrics: a TPOT limit that every simulated design broke
    was reported as "each constraint alone is met by some design" (independent review)."""
    import pandas as pd

    from sim.studies.search.report import no_feasible_reason
    from sim.studies.search.study import Constraint

    area, tpot = Constraint("chip_area_mm2", "<=", 800.0), Constraint("tpot_p99_s", "<=", 0.001)
    df = pd.DataFrame([
        {"reason": "violates chip_area_mm2 <= 800 (a figure of the design itself: not simulated)",
         "chip_area_mm2": 900.0, "tpot_p99_s": float("nan")},
        {"reason": "violates tpot_p99_s <= 0.001", "chip_area_mm2": 600.0, "tpot_p99_s": 0.012},
        {"reason": "violates tpot_p99_s <= 0.001", "chip_area_mm2": 700.0, "tpot_p99_s": 0.020},
        {"reason": "weights do not fit", "chip_area_mm2": float("nan"), "tpot_p99_s": float("nan")},
    ])
    assert no_feasible_reason(df, [area, tpot]) == (
        "no feasible design: tpot_p99_s <= 0.001 rules out all 2 trials measured against it (and 2 more were "
        "rejected before it was measured) (best reached 0.012 vs limit 0.001)")


def test_screened_trials_keep_their_figures_and_tpe_simulates_every_design(tmp_path):
    import pandas as pd

    from sim.studies.search.study import Search, run_study, trial_rows
    from tests.test_search import SPACE, make_search

    search = make_search(SPACE, {"max_power_W": "<= 120"})
    assert [str(c) for c in search.limits] == ["max_power_W <= 120"]
    rows = pd.DataFrame(trial_rows(search, run_study(search, tmp_path / "s", trials=9)))
    screened = rows[rows["reason"].str.endswith("(a figure of the design itself: not simulated)")]
    assert len(screened) and (screened["status"] == "infeasible").all() and (screened["max_power_W"] > 120).all()
    assert screened["output_tokens_per_s"].isna().all()  # not simulated: no run metric
    simulated = rows[rows["output_tokens_per_s"].notna()]
    assert len(simulated) and (simulated["max_power_W"] <= 120).all()
    node = {**search.search, "sampler": "tpe"}
    assert Search(search.base, node, search.seed).limits == []
