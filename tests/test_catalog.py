"""The metric catalog: every number a summary holds is named there, with a unit, a direction and a label."""

from __future__ import annotations

import pytest

from sim.metrics.catalog import CATALOG, Better, UnknownMetric, find, higher_is_better, label, metric
from sim.studies.kinds import WORKLOADS
from sim.studies.search import SearchError
from sim.studies.search.evaluate import design_metrics
from sim.studies.search.study import parse_objectives
from sim.studies.sweep.table import flatten
from tests.conftest import make_config

BATCH = ("hardware=teaching_npu", "model=llama2_7b", "workload.batch=2", "workload.prompt_tokens=64",
         "workload.decode_tokens=3", "fidelity=analytic")
SERVING = ("workload=serving", "workload.prompt_tokens=64", "workload.decode_tokens=4", "workload.num_requests=10")


def _numeric(summary: dict) -> list[str]:
    return [k for k, v in flatten(summary).items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


@pytest.mark.parametrize("overrides", [
    BATCH + ("parallel.tp=2",),
    BATCH + ("parallel.pp=2", "fidelity=des"),
    SERVING,
    SERVING + ("scheduler=disaggregated", "parallel.tp=1"),
], ids=["batch_tp2", "batch_pp2", "serving", "disaggregated"])
def test_every_summary_metric_is_in_the_catalog(overrides):
    cfg = make_config(*overrides)
    kind = WORKLOADS[cfg.workload.kind]
    summary = kind.summarize(kind.simulate(cfg)).as_dict()
    missing = [k for k in _numeric(summary) + list(design_metrics(cfg)) if find(k) is None]
    assert not missing, missing


def test_families_give_members_a_label_with_the_unit():
    m = metric("time_by_bound_s.memory")
    assert m.unit == "s" and m.better is Better.low and m.label == "time by bound (s): memory"
    assert label("output_tokens_per_s") == "output tokens/s" and label("ttft_p99_s") == "time to first token, p99 (s)"
    assert higher_is_better("goodput_requests_per_s") and not higher_is_better("e2e_p90_s")
    assert higher_is_better("output_tokens_per_s_per_usd") and not higher_is_better("usd_per_million_tokens")
    assert label("no_such_metric") is None


def test_every_entry_has_a_title_and_a_direction():
    for name, m in CATALOG.items():
        assert m.name == name and m.title and isinstance(m.better, Better), name


def test_an_unknown_metric_is_one_line_naming_the_known_ones():
    with pytest.raises(UnknownMetric) as err:
        metric("ttft")
    text = str(err.value)
    assert "\n" not in text and text.startswith("'ttft' is not a metric (did you mean ")
    assert "output_tokens_per_s" in text and "time_by_bound_s.*" in text


def test_search_objectives_take_their_direction_from_the_catalog():
    assert parse_objectives(["output_tokens_per_s_per_usd", "ttft_s", "min:my_metric"]) == [
        ("output_tokens_per_s_per_usd", True), ("ttft_s", False), ("my_metric", False)]
    with pytest.raises(SearchError, match=r"^search.objectives: 'my_metric' is not a metric.*max:<metric>"):
        parse_objectives(["my_metric"])
