"""llmsim-search (sim/studies/search/): the search finds the enumerated Pareto set, keeps constraints,
reports infeasible designs, is reproducible from its seed, and rejects bad input in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sim.studies.search import SearchError
from sim.studies.search.report import pareto_mask, pareto_set, write_report
from sim.studies.search.runner import _plain, _run_part
from sim.studies.search.space import grid
from sim.studies.search.study import Search, run_study, trial_rows

REPO = Path(__file__).resolve().parent.parent
TINY = ["hardware=teaching_npu", "model=llama2_7b", "fidelity=analytic", "workload.batch=1",
        "workload.prompt_tokens=64", "workload.decode_tokens=4", "output.write_files=false"]
OBJECTIVES = ["output_tokens_per_s", "max_power_W"]


def make_search(space: dict, constraints: dict | None = None, seed: int = 0) -> Search:
    tree = _plain(TINY)
    node = tree.pop("search")
    node.update(space=space, objectives=OBJECTIVES, constraints=constraints or {}, derived={}, seed=seed)
    return Search(_run_part(tree), node, seed)


SPACE = {"hardware.hbm_bandwidth_GBps": {"choices": [500, 1000, 2000]}, "hardware.num_cores": {"choices": [2, 4, 8]}}


def _keys(df: pd.DataFrame) -> set:
    return {(row["hardware.hbm_bandwidth_GBps"], row["hardware.num_cores"]) for _, row in df.iterrows()}


@pytest.mark.slow
def test_search_finds_the_enumerated_pareto_set(tmp_path):
    search = make_search(SPACE)
    rows = []
    for point in grid(search.params):  # every design of the 3 x 3 grid
        metrics, reason = search.design(point)
        assert reason is None
        rows.append({"status": "feasible", **point, **metrics})
    truth = pareto_set(pd.DataFrame(rows), search.objectives)
    assert 1 < len(truth) < 9  # a real trade-off: more bandwidth and cores cost power
    study = run_study(search, tmp_path / "s", trials=40)
    found = pareto_set(pd.DataFrame(trial_rows(search, study)), search.objectives)
    assert _keys(found) == _keys(truth)  # tolerance: none missed on this space


@pytest.mark.slow
def test_constraints_hold_and_infeasible_designs_are_reported(tmp_path):
    space = {**SPACE, "hardware.hbm_capacity_GB": {"choices": [8, 32]}}  # 8 GB: Llama-2-7B does not fit
    search = make_search(space, {"max_power_W": "<= 120"})
    study = run_study(search, tmp_path / "s", trials=30)
    df = pd.DataFrame(trial_rows(search, study))
    summary = write_report(tmp_path / "s", df, search, None, None, "test")
    pareto = pd.read_csv(tmp_path / "s" / "pareto.csv")
    assert len(pareto) == summary["pareto"] > 0
    assert (pareto["max_power_W"] <= 120).all()
    trials = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert len(trials) == 30  # nothing dropped
    bad = trials[trials["status"] == "infeasible"]
    assert bad["reason"].str.contains("does not fit").any()
    assert bad["reason"].str.contains("violates max_power_W <= 120").any()
    assert (trials.loc[trials["status"] == "feasible", "max_power_W"] <= 120).all()
    assert (tmp_path / "s" / "pareto.png").exists()


@pytest.mark.slow
def test_same_seed_same_result_and_resume(tmp_path):
    space = {"hardware.num_cores": {"low": 1, "high": 16}, "hardware.freq_GHz": {"low": 0.5, "high": 2.0}}
    tables = []
    for run in ("a", "b"):
        search = make_search(space, seed=7)
        tables.append(pd.DataFrame(trial_rows(search, run_study(search, tmp_path / run, trials=12))))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    search = make_search(space, seed=7)  # resumed: 12 more trials on top of the 12 stored
    assert len(trial_rows(search, run_study(search, tmp_path / "a", trials=24))) == 24


def test_a_search_resumed_at_a_batch_asks_what_the_run_straight_through_asked(tmp_path):
    """A search stopped after some batches and run again drew from a sampler seeded as at its start, so its later
    trials differed from the run straight through (independent review: 19 and 22 feasible of 60 against 18)."""
    space = {"hardware.num_cores": {"low": 1, "high": 16}, "hardware.freq_GHz": {"low": 0.5, "high": 2.0}}
    straight = make_search(space, seed=7)
    whole = pd.DataFrame(trial_rows(straight, run_study(straight, tmp_path / "straight", trials=24)))
    for stop in (8, 16):  # batches of 8 (NSGA-II's generation): stopped after one or two of them
        first = make_search(space, seed=7)
        run_study(first, tmp_path / f"stop{stop}", trials=stop)
        resumed = make_search(space, seed=7)
        rows = pd.DataFrame(trial_rows(resumed, run_study(resumed, tmp_path / f"stop{stop}", trials=24)))
        pd.testing.assert_frame_equal(rows, whole)


def test_pareto_mask_in_three_dimensions():
    values = [[1, 1, 1], [2, 0, 1], [0, 0, 0], [1, 1, 1], [3, 3, 3]]
    assert pareto_mask(values, [True, True, False]).tolist() == [True, True, True, True, True]
    assert pareto_mask(values, [True, True, True]).tolist() == [False, False, False, False, True]


def _cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "llmsim-search"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "HYDRA_FULL_ERROR": "0"})


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    ((), "search.space is empty"),
    (("+search=area_compute_vs_sram", "search.objectives=[tokens_per_banana]"), "is not a metric"),
    (("+search=nope",), "unknown search recipe 'nope'"),
    (("+search=area_compute_vs_sram", "search.jobs=-1"), "search.jobs must be >= 0"),
    (("+search=area_compute_vs_sram", "search.batch=-5"), "search.batch must be >= 0"),  # was the default (review)
])
def test_bad_input_is_one_line(args, message, tmp_path):
    done = _cli(*args, f"search.out={tmp_path}/s")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.slow
def test_nothing_feasible_names_the_constraint(tmp_path):
    done = _cli("+search=area_compute_vs_sram", "search.trials=6", "search.constraints.chip_area_mm2='<=100'",
                f"search.out={tmp_path}/s")
    assert done.returncode == 2, done.stderr
    assert "no feasible design: chip_area_mm2 <= 100 rules out all" in done.stderr
    assert "vs limit 100" in done.stderr
    assert (tmp_path / "s" / "trials.csv").exists()  # the infeasible trials are still written


@pytest.mark.parametrize("spec, message", [
    ({"low": 1.0, "high": float("inf")}, "search.space.hardware.freq_GHz.high must be a finite number (got inf)"),
    ({"low": float("nan"), "high": 2.0}, "search.space.hardware.freq_GHz.low must be a finite number (got nan)"),
    ({"low": 1.0, "high": 2.0, "step": float("inf")}, ".step must be a finite number"),
])
def test_a_range_end_that_is_not_finite_is_refused_in_words(spec, message):
    """{low: 1, high: inf} ended in an Optuna traceback; {low: nan} read as 'the range is empty' (review)."""
    from sim.studies.search.space import parse_space

    with pytest.raises(SearchError, match=re.escape(message)):
        parse_space({"hardware.freq_GHz": spec})


@pytest.mark.parametrize("entry, message", [
    ({"hardware.freq_GHz": {"choices": ["abc", 2]}}, "search.space.hardware.freq_GHz: Value 'abc'"),
    ({"hardware.num_corez": {"low": 8, "high": 64, "step": 8}}, "(did you mean 'hardware.num_cores'?)"),
])
def test_a_space_key_or_value_the_config_refuses_stops_the_search_before_any_trial(entry, message):
    base = {"hardware": {"num_cores": 132, "freq_GHz": 1.83}}
    with pytest.raises(SearchError, match=re.escape(message)):
        Search(base, {"space": entry, "objectives": ["output_tokens_per_s"]})


@pytest.mark.parametrize("key, value", [
    ("hardware.freq_GHz", "abc"), ("hardware.num_corez", 8), ("hardware.num_cores", 2.5), ("nosection.x", 1),
    ("parallel.tp", 2), ("parallel.tpp", 2), ("precision.weights", "int3"), ("hardware.topology", "blob"),
    ("hardware", 3), ("seed", "a"), ("power.cap", "maybe"), ("slo.ttft_p99_s", None),
])
def test_a_value_checked_in_its_section_is_refused_or_taken_as_in_the_whole_schema(key, value):
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from sim.config.schema import AppConfig
    from sim.studies.search.evaluate import _section, set_key

    schema = OmegaConf.structured(AppConfig)
    said = []
    for node, k in ((schema, key), _section(schema, key)):
        tree: dict = {}
        set_key(tree, k, value)
        try:
            OmegaConf.merge(node, tree)
            said.append("taken")
        except OmegaConfBaseException as err:
            said.append(str(err).splitlines()[0])
    assert said[0] == said[1]


@pytest.mark.parametrize("seed", [-1, 2**31])
def test_a_seed_the_sampler_cannot_take_is_refused_before_the_study(seed):
    """search.seed=-1 surfaced as 'study.journal could not be read as this search's study' and left a journal in
    a new folder (review)."""
    base = {"hardware": {"num_cores": 132, "freq_GHz": 1.83}}
    with pytest.raises(SearchError, match=re.escape(f"search.seed must be a whole number from 0 to 2^31 - 1 "
                                                    f"(got {seed})")):
        Search(base, {"space": {"hardware.num_cores": {"low": 8, "high": 64}}, "objectives": ["output_tokens_per_s"]},
               seed)
