"""The search's fast path (sim/config/template.py, batched ask/tell on a journal file, designs on
worker processes) gives what the plain path gives: the same configs, metrics, trials and resume."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config.template import Template
from sim.studies.search.asktell import evaluate_many, worker_pool
from sim.studies.search.evaluate import Infeasible, build
from sim.studies.search.runner import _plain, _run_part, flat_derived, flat_space
from sim.studies.search.space import config_overrides, resolve
from sim.studies.search.study import JOURNAL, LEGACY, Search, run_study, trial_rows
from tests.test_search_batch import assert_as_one_by_one

RECIPE = ["+search=decode_chip_llama2_70b", "workload.num_requests=12", "workload.decode_tokens=16"]


def recipe_search(*extra: str, trials: int = 8) -> Search:
    tree = _plain([*RECIPE, *extra])
    node = tree.pop("search")
    node["space"], node["derived"] = flat_space(node["space"]), flat_derived(node["derived"])
    node.update(trials=trials, reference=None)
    return Search(_run_part(tree), node, int(node["seed"]))


SEARCH = recipe_search()


def _plain_or_error(base: dict, overrides: dict, template=None):
    try:
        return build(base, overrides, template)
    except Infeasible as err:
        return f"Infeasible: {err}"


def _same_config(a, b) -> None:
    assert a == b
    if not isinstance(a, str):
        assert vars(a.hardware) == vars(b.hardware)  # attributes set in __post_init__ too (hbm_stacks_note)


@settings(max_examples=8, deadline=None)
@given(st.data())
def test_template_builds_what_the_plain_merge_builds(data):
    values = {p.key: data.draw(st.sampled_from(p.values()), label=p.key) for p in SEARCH.params}
    overrides = config_overrides(resolve(values, SEARCH.derived))
    _same_config(_plain_or_error(SEARCH.base, overrides), _plain_or_error(SEARCH.base, overrides, SEARCH.template))


@pytest.mark.parametrize("overrides", [
    {"hardware.link_bandwidth_GBps": 200.0, "system.scale_up.link_bandwidth_GBps": 300},  # explicit: onto the chip
    {"system.scale_up.chips": 4, "hardware.max_chips": 16},
    {"hardware.topology": "ring"},  # a name for an enum: declined, built the plain way
    {"hardware.no_such_field": 1},  # the plain path's error
    {"hardware.num_cores": 1.5},  # not a whole number: the plain path's error
    {"hardware.freq_GHz": 9, "parallel.tp": 4},  # int for a float field; the chip's limit
])
def test_template_edge_cases_match_the_plain_merge(overrides):
    _same_config(_plain_or_error(SEARCH.base, overrides), _plain_or_error(SEARCH.base, overrides, SEARCH.template))


def _outcome(base: dict, overrides: dict, template=None):
    try:
        return build(base, overrides, template)
    except Exception as err:  # whatever the plain path raises, the template path raises alike
        return f"{type(err).__name__}: {err}"


ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-4, 300), st.floats(-2.0, 5000.0),
                      st.sampled_from(["ring", "switch", "x", "${parallel.pp}"]))


@settings(max_examples=15, deadline=None)
@given(st.dictionaries(st.sampled_from(["hardware.num_cores", "hardware.freq_GHz", "hardware.topology",
                                        "hardware.hbm_stacks", "hardware.link_bandwidth_GBps", "parallel.tp",
                                        "system.scale_up.chips", "workload.rate_per_s", "precision.weights"]),
                       ANY_VALUE, max_size=3))
def test_any_values_give_what_the_plain_merge_gives(overrides):
    _same_config(_outcome(SEARCH.base, overrides), _outcome(SEARCH.base, overrides, SEARCH.template))


def test_template_declines_what_it_cannot_follow():
    tpl = Template(SEARCH.base)
    assert tpl.build({"hardware.topology": "ring"}) is None
    assert tpl.build({"hardware.matmul_dtype_rate": {"bf16": 1.0}}) is None
    assert tpl.build({"parallel.tp": "${parallel.pp}"}) is None
    assert tpl.build({"parallel.tp": 4}).parallel.tp == 4


DESIGNS = [{"hardware.num_cores": 96, "hardware.freq_GHz": 1.5, "parallel.tp": 8},
           {"hardware.num_cores": 160, "hardware.hbm_bandwidth_GBps": 4800, "hardware.hbm_stacks": 6,
            "hardware.hbm_capacity_GB": 96, "parallel.tp": 4},
           {"parallel.tp": 2}]  # 70B in bf16 on two 80 GB chips: does not fit


def test_fast_path_metrics_equal_the_plain_path():
    pool = worker_pool(SEARCH.base, 2)
    try:
        together = evaluate_many(SEARCH.base, DESIGNS, SEARCH.template, pool)
    finally:
        pool.shutdown()
    assert_as_one_by_one(SEARCH.base, DESIGNS, together)


@pytest.mark.slow
def test_jobs_give_the_same_trials_and_a_journal_resumes(tmp_path):
    tables = {}
    for jobs in (1, 2, 0):  # 0: one process per core
        search = recipe_search("search.batch=4")
        study = run_study(search, tmp_path / f"j{jobs}", trials=8, jobs=jobs)
        tables[jobs] = pd.DataFrame(trial_rows(search, study))
    pd.testing.assert_frame_equal(tables[1], tables[2])
    pd.testing.assert_frame_equal(tables[1], tables[0])
    assert (tmp_path / "j1" / JOURNAL).exists() and not (tmp_path / "j1" / LEGACY).exists()
    search = recipe_search("search.batch=4")
    resumed = pd.DataFrame(trial_rows(search, run_study(search, tmp_path / "j1", trials=12)))
    assert len(resumed) == 12
    pd.testing.assert_frame_equal(resumed.iloc[:8][tables[1].columns], tables[1])


@pytest.mark.slow
def test_tpe_on_two_processes_runs_exactly_the_trials_asked_for(tmp_path):
    """Each worker runs its share of the trials left; a stop rule counting finished trials let two workers that
    finished at once both go on, one trial too many (five asked, six run)."""
    search = recipe_search("search.sampler=tpe")
    assert len(trial_rows(search, run_study(search, tmp_path / "t", trials=5, jobs=2))) == 5
    assert len(trial_rows(search, run_study(search, tmp_path / "t", trials=8, jobs=2))) == 8  # resumed: 3 more
    assert len(trial_rows(search, run_study(search, tmp_path / "t", trials=8, jobs=2))) == 8  # nothing left


@pytest.mark.slow
def test_a_journal_cut_mid_line_resumes_and_one_that_is_not_a_journal_is_one_error(tmp_path):
    """A write killed mid-line leaves the journal's last line unfinished; Optuna appended the next record to it and
    the journal could not be read again (independent review). The unfinished record is dropped on resume."""
    from sim.studies.search import SearchError
    search = recipe_search("search.batch=4")
    first = pd.DataFrame(trial_rows(search, run_study(search, tmp_path / "j", trials=4, jobs=1)))
    journal = tmp_path / "j" / JOURNAL
    journal.write_bytes(journal.read_bytes()[:-20])  # the last record, cut
    resumed = pd.DataFrame(trial_rows(search, run_study(search, tmp_path / "j", trials=6, jobs=1)))
    assert len(resumed) == 6 and len(pd.DataFrame(trial_rows(search, run_study(search, tmp_path / "j", trials=6,
                                                                                 jobs=1)))) == 6
    pd.testing.assert_frame_equal(resumed.iloc[:3][first.columns], first.iloc[:3])  # the records before it stay
    journal.write_text("not a journal\n")
    with pytest.raises(SearchError, match="could not be read as this search's study.*search.fresh=true"):
        run_study(search, tmp_path / "j", trials=6, jobs=1)


@pytest.mark.slow
def test_a_sqlite_study_of_an_earlier_version_is_resumed(tmp_path):
    search = recipe_search("search.batch=4")
    out = tmp_path / "s"
    out.mkdir()
    old = optuna.create_study(storage=f"sqlite:///{out / LEGACY}", study_name="search",
                              directions=["maximize", "minimize", "maximize"])
    old.set_user_attr("fingerprint", search.fingerprint())
    study = run_study(search, out, trials=4)
    assert len(trial_rows(search, study)) == 4
    assert not (out / JOURNAL).exists()
    assert len(optuna.load_study(storage=f"sqlite:///{out / LEGACY}", study_name="search").trials) == 4


@pytest.mark.parametrize("composed", [["system=gb200_nvl72"],
                                      ["system=dgx_a100", "system.scale_up.link_bandwidth_GBps=100"],
                                      ["hardware=tpu_v5p", "workload=serving", "model=llama2_7b"]])
def test_template_follows_other_compositions(composed):
    base = _run_part(_plain(composed))
    template = Template(base)
    for overrides in ({}, {"hardware.freq_GHz": 1.2, "hardware.link_bandwidth_GBps": 300.0, "parallel.tp": 2}):
        assert template.build(overrides) is not None  # built by the template, not handed back
        _same_config(_plain_or_error(base, overrides), _plain_or_error(base, overrides, template))


def test_a_derived_key_is_replaced_added_or_removed_from_the_command_line():
    """``search.derived.<key>=<expr>`` (README): the schema held derived values as strings, so the override's nested
    node was refused before it could be flattened (independent review)."""
    from sim.cli.search import _composable

    def derived(arg: str) -> dict:
        return recipe_search(_composable(arg, recipe=True)).derived

    assert derived("search.derived.hardware.spare_cores=hardware.num_cores // 10")["hardware.spare_cores"] == \
        "hardware.num_cores // 10"
    assert "hardware.spare_cores" not in derived("search.derived.hardware.spare_cores=null")
    assert derived("search.derived.hardware.vector_lanes=4096")["hardware.vector_lanes"] == 4096


def test_a_derived_formula_that_fails_for_a_trial_makes_it_infeasible_with_its_reason(tmp_path):
    """A division by zero in search.derived was a traceback, exit 1 (review): each trial is infeasible with the
    formula named (a search with no feasible design then ends in llmsim-search's one-line error)."""
    search = recipe_search("search.sampler=tpe", "+search.derived.hardware.spare_cores=hardware.num_cores // 0")
    rows = pd.DataFrame(trial_rows(search, run_study(search, tmp_path / "z", trials=2, jobs=1)))
    assert set(rows["reason"]) == {"ZeroDivisionError: search.derived.hardware.spare_cores = hardware.num_cores // 0: "
                                   "integer division or modulo by zero"}
