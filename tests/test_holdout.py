"""Leave-one-group-out calibration report (sim/studies/holdout.py, llmsim-calibrate --holdout)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import sim.studies.calibrate as calibrate
from hwmodels.calibration import FITTED
from sim.config.presets import load_runtime
from sim.studies.holdout import COLUMNS, FLAG_RATIO, groups, holdout_table, leave_one_group_out

RUNTIME = {"host_dispatch_us": 27.23, "step_overhead_us": 17118.1}


def _tiny() -> pd.DataFrame:
    """A few real calibration rows: two Vidur models' GEMMs, Azure GEMMs, a stream, one all-reduce
    source (so it alone informs the link parameters) and two Splitwise decode steps."""
    full = calibrate.build_validation_set()
    source = full["source"]
    picks = [
        full[source == "vidur:llama2_7b:mlp_up_proj"].nlargest(3, "m"),  # compute-bound, as Azure's: no group
        full[source == "vidur:llama3_8b:mlp_down_proj"].nsmallest(3, "m"),  # alone informs the matmul figures
        full[source == "azure:cublaslt"].head(3),
        full[source.str.startswith("babelstream")],
        full[source == "llmcompass:allreduce"].head(4),
        full[(source == "splitwise:vllm") & (full["kind"] == "decode")].nsmallest(2, "batch"),
    ]
    return pd.concat(picks).reset_index(drop=True)


@pytest.fixture(scope="module")
def tiny() -> pd.DataFrame:
    return _tiny()


def test_groups_are_sources_then_models_within_them():
    frame = pd.DataFrame({"source": ["vidur:llama2_7b:attn_pre_proj", "vidur:nccl_allreduce", "azure:cublaslt",
                                     "vidur:llama3_8b:add", "splitwise:vllm", "vidur:llama2_7b:mlp_up_proj"]})
    found = groups(frame)
    assert list(found) == ["vidur", "azure", "splitwise", "vidur:llama2_7b", "vidur:llama3_8b"]
    assert found["vidur"].tolist() == [True, True, False, True, False, True]
    assert found["vidur:llama2_7b"].tolist() == [True, False, False, False, False, True]
    assert "vidur:nccl_allreduce" not in found  # not a model: part of vidur only


def test_the_shipped_set_has_the_issue_groups():
    names = set(groups(calibrate.build_validation_set()))
    assert names == {"vidur", "llmcompass", "azure", "gpu-stream", "babelstream", "splitwise", "vidur:llama2_7b",
                     "vidur:llama2_70b", "vidur:llama3_8b"}


def test_each_refit_leaves_its_group_out_and_a_lone_source_is_named_not_guessed(tiny, monkeypatch):
    """fit is replaced by a cheap stand-in that is exact on the full set and worse on GEMMs without it."""
    seen: list[pd.DataFrame] = []

    def fake_fit(frame: pd.DataFrame, start: dict[str, float] | None = None) -> dict[str, float]:
        seen.append(frame)
        return dict(FITTED) if len(frame) == len(tiny) else {**FITTED, "matmul_efficiency": 0.5}

    monkeypatch.setattr(calibrate, "fit", fake_fit)
    monkeypatch.setattr(calibrate, "fit_runtime", lambda frame, fitted: dict(RUNTIME))
    report = leave_one_group_out(tiny).set_index("group")
    assert tuple(["group", *report.columns]) == COLUMNS
    masks = groups(tiny)
    assert report["rows"].to_dict() == {g: int(m.sum()) for g, m in masks.items()}
    # The one all-reduce source alone informs the link parameters, Splitwise alone the host costs:
    # named, no refit, no held-out figure.
    link_only = report.loc["llmcompass", "only_data_for"].split(", ")
    assert link_only != [""] and set(link_only) <= set(FITTED)
    assert report.loc["splitwise", "only_data_for"] == ", ".join(RUNTIME)
    lone = ["llmcompass", "splitwise"]
    for group in lone:
        assert math.isnan(report.loc[group, "held_out_median_pct"]) and not report.loc[group, "over_1_5x"]
    assert (report.drop(index=lone)["only_data_for"] == "").all()
    assert np.isfinite(report.drop(index=lone)["held_out_median_pct"]).all()
    refitted = [g for g in masks if g not in lone]  # in the report's order, after the full fit
    assert len(seen) == 1 + len(refitted) and len(seen[0]) == len(tiny)
    for group, frame in zip(refitted, seen[1:], strict=True):
        assert set(frame["id"]) == set(tiny.loc[~masks[group], "id"]), group
    # GEMM groups get a worse fit without themselves; the stream does not depend on matmul_efficiency.
    assert report.loc["azure", "held_out_median_pct"] > report.loc["azure", "in_sample_median_pct"]
    assert report.loc["babelstream", "ratio"] == pytest.approx(1.0) and not report.loc["babelstream", "over_1_5x"]
    for group, row in report.iterrows():
        if not math.isnan(row["ratio"]):
            assert row["over_1_5x"] == (row["held_out_median_pct"] > FLAG_RATIO * row["in_sample_median_pct"]), group
    printed = holdout_table(report.reset_index())
    assert "llmcompass" in printed and next(iter(RUNTIME)) in printed and " - " in printed


@pytest.fixture(scope="module")
def shipped_report() -> pd.DataFrame:
    """The report on the shipped set: the shipped fit (test_validate checks it is what the fit gives) and
    eight real refits, each started from it."""
    eager = load_runtime("vllm_eager")
    shipped = (dict(FITTED), {"host_dispatch_us": eager.host_dispatch_us, "step_overhead_us": eager.step_overhead_us})
    return leave_one_group_out(calibrate.build_validation_set(), full=shipped).set_index("group")


@pytest.mark.slow
@pytest.mark.holdout
def test_the_full_report_on_the_shipped_set(shipped_report):
    """Every group has figures; only Splitwise alone informs a parameter (the eager host costs)."""
    report = shipped_report
    assert report.loc["splitwise", "only_data_for"] == "host_dispatch_us, step_overhead_us"
    others = report.drop(index="splitwise")
    assert (others["only_data_for"] == "").all() and np.isfinite(others["held_out_median_pct"]).all()
    assert (others["in_sample_median_pct"] > 0).all() and (others["held_out_median_pct"] > 0).all()


@pytest.mark.slow
@pytest.mark.holdout
@pytest.mark.xfail(strict=True, reason="issue 12: today Vidur and LLMCompass held out are 2.3x and 2.2x in-sample")
def test_every_group_held_out_within_1_5x_of_in_sample(shipped_report):
    flagged = shipped_report[shipped_report["over_1_5x"]]
    assert flagged.empty, "held out > 1.5x in-sample:\n" + holdout_table(flagged.reset_index())
