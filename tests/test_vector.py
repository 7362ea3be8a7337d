"""The vectorised analytic path is the scalar path's twin: every summary figure and op time agrees.

Random design points (model, chip preset and its continuous fields, precision, batch, lengths, tp)
are run through ``simulate_points`` and through ``simulate`` one by one; every figure of the sweep
row (``summary_row``: the summary flattened, time by op kind, bound) must agree to 1e-9 relative,
and so must every distinct op's time. Points the batch does not vectorise fall back and say so.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.batch.run import simulate
from sim.batch.vector import simulate_points
from sim.config.compose import compose_config
from sim.engine.costing import Coster
from sim.metrics.summary import breakdown_by_kind, summarize
from sim.studies.sweep.table import summary_row
from sim.studies.sweep.vector_table import result_table

TOL = 1e-9
PRESETS = [("llama2_7b", "a100_80gb", 1), ("llama2_13b", "h100_sxm", 2), ("mistral_7b", "tpu_v5p", 4),
           ("llama2_70b", "h100_sxm", 8), ("llama3_8b", "mi300x", 2), ("mixtral_8x7b", "h200", 2)]


@functools.cache
def base(model: str, hardware: str, tp: int, weights: str):
    return compose_config([f"model={model}", f"hardware={hardware}", f"parallel.tp={tp}", "fidelity=analytic",
                           f"precision.weights={weights}"])[1]


def _point(draw_values) -> object:
    (model, hardware, tp), weights, batch, prompt, decode, freq, bw, sram, cores_scale = draw_values
    cfg = base(model, hardware, tp, weights)
    hw = cfg.hardware
    hw = dataclasses.replace(hw, freq_GHz=hw.freq_GHz * freq, hbm_bandwidth_GBps=hw.hbm_bandwidth_GBps * bw,
                             sram_MiB=hw.sram_MiB * sram, num_cores=max(1, int(hw.num_cores * cores_scale)))
    work = dataclasses.replace(cfg.workload, batch=batch, prompt_tokens=prompt, decode_tokens=decode)
    return dataclasses.replace(cfg, hardware=hw, workload=work)


points = st.tuples(st.sampled_from(PRESETS), st.sampled_from(["bf16", "int8", "int4"]), st.integers(1, 96),
                   st.integers(1, 3000), st.integers(1, 4), st.floats(0.5, 1.6), st.floats(0.3, 3.0),
                   st.sampled_from([0.25, 1.0, 4.0]), st.floats(0.3, 1.5))


def close(a, b, scale: float = 0.0) -> bool:
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b or (a is None and isinstance(b, float) and math.isnan(b))
    return abs(float(a) - float(b)) <= TOL * max(abs(float(a)), abs(float(b)), scale) or (a == b)


def assert_twin(cfgs: list) -> None:
    result = simulate_points(cfgs)
    table = result_table(result)
    for i, cfg in enumerate(cfgs):
        try:
            run = simulate(cfg)
        except Exception as err:  # noqa: BLE001 - the batch must fail the point with the same message
            assert table.loc[i, "status"] == "failed" and table.loc[i, "reason"] == str(err).splitlines()[0]
            continue
        summary = summarize(run)
        summary["breakdown"] = breakdown_by_kind(run)
        row = summary_row(summary)
        for key, want in row.items():
            if key in ("run.sim_wall_s", "run.distinct_ops"):  # what simulating cost: the scalar path's closed-form
                continue  # decode costs mean steps' ops (sim/batch/closed_form.py), the batch path every step's
            got = table.loc[i, key]
            scale = row["total_s"] if key.startswith(("time_by", "host_")) else 0.0
            assert close(want, got, scale), (i, key, want, got)
    for group in result.groups:  # per-op times against the scalar Coster
        for p, cfg in enumerate(group.cfgs):
            coster = Coster(cfg.hardware, in_switch=cfg.runtime.in_switch_reduction)
            for j, op in enumerate(group.table.ops):
                assert close(coster(op).time_s, group.costs.time_s[p, j]), (op.name, p)


def _twin_of_draws(draws) -> None:
    cfgs = []
    for d in draws:
        try:
            cfgs.append(_point(d))
        except Exception:  # noqa: BLE001 - a drawn chip the schema rejects is not a point
            continue
    if cfgs:
        assert_twin(cfgs + [cfgs[0]])  # the same point twice in one group


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(points, min_size=1, max_size=3))
def test_vector_path_is_the_scalar_twin(draws):
    _twin_of_draws(draws)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(points, min_size=1, max_size=4))
def test_vector_path_is_the_scalar_twin_on_many_points(draws):
    _twin_of_draws(draws)


def test_one_grid_shares_its_groups():
    cfg = base("llama2_7b", "a100_80gb", 1, "bf16")
    cfgs = [dataclasses.replace(cfg, hardware=dataclasses.replace(cfg.hardware, freq_GHz=f),
                                workload=dataclasses.replace(cfg.workload, batch=b, decode_tokens=2))
            for f in (0.8, 1.1, 1.41) for b in (1, 32)]
    result = simulate_points(cfgs)
    assert result.vectorised == 6 and len(result.groups) == 2 and not result.fallbacks
    assert_twin(cfgs)


@pytest.mark.parametrize("parallel, fidelity, why", [
    ({}, "des", "discrete-event fidelity"),
    ({"pp": 2}, "des", "pipeline parallelism"),
    ({"overlap_comm": True, "overlap_chunks": 4}, "analytic", "a pass runs ops concurrently"),
])
def test_points_the_batch_does_not_vectorise_fall_back_and_say_so(parallel, fidelity, why):
    cfg = base("llama2_13b", "h100_sxm", 2, "bf16")
    cfg = dataclasses.replace(cfg, workload=dataclasses.replace(cfg.workload, batch=4, decode_tokens=2))
    other = dataclasses.replace(cfg, parallel=dataclasses.replace(cfg.parallel, **parallel),
                                fidelity=type(cfg.fidelity)(fidelity))
    result = simulate_points([cfg, other])
    assert result.vectorised == 1 and len(result.scalar) == 1
    assert any(reason.startswith(why) for reason in result.fallbacks), result.fallbacks
    assert_twin([cfg, other])


def test_a_point_that_does_not_fit_fails_with_the_scalar_message():
    cfg = base("llama2_70b", "a100_80gb", 1, "bf16")
    result = simulate_points([cfg])
    table = result_table(result)
    assert table.loc[0, "status"] == "failed" and "does not fit" in table.loc[0, "reason"]
    assert table.loc[0, "bound"] == "capacity"


@pytest.mark.parametrize("hardware", ["h100_sxm", "teaching_npu", "mi300x"])
def test_the_batch_power_budget_is_the_chip_models_one(hardware):
    """ChipRows builds each chip's PowerBudget from its economics (one run of the area and energy models)."""
    from hwmodels.power import PowerBudget
    from sim.engine.vector_chips import ChipRows

    chip = base("llama2_7b", hardware, 1, "bf16").hardware
    for cap in (True, False):
        assert ChipRows().budget(chip, cap) == PowerBudget.of(chip, cap)


def test_an_empty_batch_is_an_empty_result():
    from sim.batch.vector import scalar_reasons

    result = simulate_points([])
    assert result.size == 0 and not result.groups and not result.failed and scalar_reasons([]) == []


def test_replicas_count_in_energy_chips_and_dollars_as_in_throughput():
    """parallel.dp: throughput covered every replica while energy, chips and the run's dollars covered one, so
    energy_J / (output_tokens_per_s x total_s) was half the J per token at dp = 2 (independent review). Now the span
    covers them all on both paths: the run's totals double, its per-token and per-chip figures stay."""
    one = base("llama2_7b", "a100_80gb", 1, "bf16")
    two = dataclasses.replace(one, parallel=dataclasses.replace(one.parallel, dp=2))
    a, b = summarize(simulate(one)), summarize(simulate(two))
    assert b["energy_J"] == 2 * a["energy_J"] and b["run"]["chips"] == 2 * a["run"]["chips"] == 2
    assert b["cost"]["run_usd"] == 2 * a["cost"]["run_usd"]
    for key in ("joules_per_output_token", "avg_power_W", "usd_per_million_output_tokens", "output_tokens_per_s_per_W",
                "output_tokens_per_s_per_usd"):
        assert b[key] == a[key], key
    assert b["energy_J"] / (b["output_tokens_per_s"] * b["total_s"]) == pytest.approx(b["joules_per_output_token"],
                                                                                      rel=1e-12)
    assert_twin([one, two])
