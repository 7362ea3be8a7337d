"""Charts and what they rest on: the Pareto filter, sensitivities, the Chrome trace, labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.batch.run import simulate
from sim.metrics.catalog import higher_is_better
from sim.metrics.summary import ops_columns
from sim.output.trace import TRACKS, chrome_trace, write_trace
from sim.plots.pareto import pareto_mask, plot_pareto
from sim.plots.style import label
from sim.plots.timeline import plot_decode_step
from sim.plots.tornado import plot_sensitivity
from sim.studies.sweep import ReportError
from sim.studies.sweep.report import _pareto_pair
from sim.studies.sweep.sensitivity import sensitivities
from sim.studies.sweep.table import make_table

PNG = b"\x89PNG\r\n\x1a\n"


def brute_force_front(values: np.ndarray, maximize: tuple[bool, bool]) -> np.ndarray:
    signed = values * np.where(np.asarray(maximize), 1.0, -1.0)  # higher is better on both
    keep = []
    for i, p in enumerate(signed):
        dominated = any(np.all(q >= p) and np.any(q > p) for j, q in enumerate(signed) if j != i)
        keep.append(not dominated)
    return np.array(keep, dtype=bool)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=40),
       st.tuples(st.booleans(), st.booleans()))
def test_pareto_filter_keeps_exactly_the_non_dominated_points(points, maximize):
    values = np.array(points, dtype=float)  # small integers: many ties and duplicates
    assert np.array_equal(pareto_mask(values, maximize), brute_force_front(values, maximize))


def test_pareto_filter_on_random_floats():
    rng = np.random.default_rng(7)
    values = rng.lognormal(size=(300, 2))
    for maximize in ((True, False), (True, True), (False, False)):
        assert np.array_equal(pareto_mask(values, maximize), brute_force_front(values, maximize))


def test_metric_goals():
    assert higher_is_better("output_tokens_per_s") and higher_is_better("utilisation.hbm_bandwidth")
    for metric in ("ttft_s", "chip_cost_usd", "avg_power_W", "energy_J", "usd_per_million_output_tokens"):
        assert not higher_is_better(metric), metric


def test_pareto_names_an_absent_metric_in_one_line():
    df = make_table([{"point": 0, "status": "ok", "output_tokens_per_s": 10.0, "ttft_s": 0.1}], [])
    with pytest.raises(ReportError, match=r"^'chip_cost_usd' is not a metric; known: output_tokens_per_s, ttft_s$"):
        _pareto_pair(df, ["chip_cost_usd", "output_tokens_per_s"])
    assert _pareto_pair(df, None) == ("ttft_s", "output_tokens_per_s")  # no power or cost: latency
    df = make_table([{"point": 0, "status": "ok", "output_tokens_per_s": 10.0, "ttft_s": 0.1, "avg_power_W": 300.0,
                      "chip_cost_usd": 2e3}], [])
    assert _pareto_pair(df, None) == ("avg_power_W", "output_tokens_per_s")


def test_pareto_chart(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"chip_cost_usd": rng.uniform(1e3, 4e4, 50), "output_tokens_per_s": rng.uniform(10, 900, 50),
                       "hardware.hbm_bandwidth_GBps": rng.choice([1000, 2000, 4000], 50)})
    path = plot_pareto(df, "chip_cost_usd", "output_tokens_per_s", ["hardware.hbm_bandwidth_GBps"],
                       tmp_path / "p.png", "test")
    assert path.read_bytes()[:8] == PNG


def test_sensitivity_signs_and_a_hand_worked_size(config, tmp_path):
    """Batch-1 decode on teaching_npu: every decode GEMM streams its weights at 1000 GB/s, so
    TPOT is almost all HBM time (13.5 GB of bf16 weights: 13.5 ms). +10% bandwidth cuts each
    memory-bound op's time to 1/1.1 of it: TPOT falls by 1/11 (9.1%) of its memory part."""
    cfg = config("hardware=teaching_npu", "fidelity=analytic", "workload.prompt_tokens=128",
                 "workload.decode_tokens=3")
    table = sensitivities(cfg, "tpot_s", 0.1)
    row = table.set_index(["parameter", "change"])
    faster, slower = row.loc[("hardware.hbm_bandwidth_GBps", "+10%")], row.loc[("hardware.hbm_bandwidth_GBps", "-10%")]
    assert faster["delta"] < 0 < slower["delta"] and faster["gain_pct"] > 0  # more bandwidth never hurts
    assert row.loc[("hardware.freq_GHz", "+10%"), "delta"] <= 0  # nor does a faster clock
    ops = pd.DataFrame(ops_columns(simulate(cfg)))
    decode = ops[ops["phase"] == "decode"]
    steps = decode["step"].nunique()
    memory_part = (decode["memory_s"] * decode["count"])[decode["bound"] == "memory"].sum() / steps
    assert memory_part == pytest.approx(13.5e-3, rel=0.03)  # ~ weight bytes / bandwidth
    assert faster["delta"] == pytest.approx(-memory_part / 11, rel=0.02)
    # Exactly, op by op: each op's time is overhead + max(compute, memory / 1.1).
    new = decode["overhead_s"] + np.maximum(decode["compute_s"], decode["memory_s"] / 1.1)
    old = decode["overhead_s"] + np.maximum(decode["compute_s"], decode["memory_s"])
    assert faster["delta"] == pytest.approx(((new - old) * decode["count"]).sum() / steps, rel=1e-9)
    # Ranked: HBM bandwidth buys more than any other hardware parameter here.
    hardware = table[table["kind"] == "hardware"]
    assert hardware.iloc[0]["parameter"] == "hardware.hbm_bandwidth_GBps"
    assert plot_sensitivity(table, tmp_path / "s.png", "test").read_bytes()[:8] == PNG


def test_sensitivity_records_variants_that_cannot_run(config):
    cfg = config("hardware=teaching_npu", "model=llama2_13b", "fidelity=analytic", "workload.prompt_tokens=128",
                 "workload.decode_tokens=2", "hardware.hbm_capacity_GB=27")
    table = sensitivities(cfg, "output_tokens_per_s")
    failed = table[table["status"] == "failed"]
    assert "hardware.hbm_capacity_GB" in set(failed["parameter"])  # 26.0 GB needed, 24.3 GB after -10%
    assert failed["reason"].str.contains("does not fit").any()
    with pytest.raises(ReportError, match=r"^'tokens' is not a metric \(did you mean 'prompt_tokens'\?\); "
                                          r"known: ttft_s, "):
        sensitivities(cfg, "tokens")
    with pytest.raises(ReportError, match=r"^'ttft_p99_s' is not a metric of this single_batch run \(a metric of "
                                          r"workload=serving runs\); known: ttft_s, "):  # said only "not a metric"
        sensitivities(cfg, "ttft_p99_s")


def test_a_variant_chip_its_checks_reject_is_a_failed_row(config):
    """A100 with 10% more cores needs a die over the reticle: that row fails with the reason, the rest run."""
    table = sensitivities(config("hardware=a100_80gb", "model=llama2_7b", "fidelity=analytic",
                                 "workload.decode_tokens=2"), "output_tokens_per_s")
    cores = table[(table["parameter"] == "hardware.num_cores") & (table["change"] == "+10%")].iloc[0]
    assert cores["status"] == "failed" and "reticle limit" in cores["reason"]
    assert (table["status"] == "ok").sum() == len(table) - 1


def test_rankings_list_free_gains_apart_from_changes_worth_their_price():
    """A change that costs nothing cannot be ranked per $ (its gain per $ is infinite): it gets its own list, and
    a tiny gain at a tiny price does not hide a large one at a moderate price."""
    from sim.studies.sweep.sensitivity import rankings

    row = dict(status="ok", kind="hardware", change="+10%", gain_per_kusd=None, gain_per_100mm2=None)
    table = pd.DataFrame([
        {**row, "parameter": "hbm", "gain_pct": 7.5, "d_cost_usd": 83.0, "d_area_mm2": 0.0, "gain_per_kusd": 90.4},
        {**row, "parameter": "cores", "gain_pct": 0.05, "d_cost_usd": 64.0, "d_area_mm2": 51.0, "gain_per_kusd": 0.75,
         "gain_per_100mm2": 0.09},
        {**row, "parameter": "clock", "gain_pct": 1.1, "d_cost_usd": 0.0, "d_area_mm2": 0.0},
        {**row, "parameter": "sram", "gain_pct": -0.1, "d_cost_usd": 0.0, "d_area_mm2": 0.0},
        {**row, "parameter": "batch", "kind": "software", "gain_pct": 90.0, "d_cost_usd": None, "d_area_mm2": None},
        # float rounding between two runs is not a gain: it was listed best per $ (independent review)
        {**row, "parameter": "lanes", "gain_pct": 1.23e-14, "d_cost_usd": 1e-6, "d_area_mm2": 0.0,
         "gain_per_kusd": 1.2e-5},
    ])
    ranked = {name: list(rows["parameter"]) for name, rows in rankings(table).items()}
    assert ranked == {"gain": ["batch", "hbm", "clock", "cores"], "per $1,000": ["hbm", "cores"],
                      "per 100 mm^2": ["cores"], "gain at no extra cost or area": ["clock"]}


@pytest.mark.slow
def test_chrome_trace_lays_out_every_layer(config, tmp_path):
    cfg = config("hardware=teaching_npu", "workload.prompt_tokens=64", "workload.decode_tokens=5")
    ops = pd.DataFrame(ops_columns(simulate(cfg)))
    path = write_trace(ops, tmp_path / "trace.json", decode_steps=2)
    trace = json.loads(path.read_text())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {"passes", *TRACKS}
    passes = [e["name"] for e in events if e["pid"] == 1]
    assert passes == ["prefill", "decode step 1", "decode step 2"]  # not all 4 decode steps
    qkv = [e for e in events if e["name"] == "qkv_proj" and e["args"]["phase"] == "prefill"
           and e["pid"] == 2]  # compute arrays
    assert len(qkv) == cfg.model.num_layers and len({e["args"]["layer"] for e in qkv}) == cfg.model.num_layers
    for e in events:
        assert {"name", "ts", "dur", "pid", "tid"} <= set(e) and e["dur"] >= 0
    for pid in {e["pid"] for e in events}:  # no two slices overlap on one row
        for tid in {e["tid"] for e in events if e["pid"] == pid}:
            row = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e["pid"] == pid and e["tid"] == tid)
            assert all(b[0] >= a[1] - 1e-6 for a, b in zip(row, row[1:], strict=False))
    prefill = next(e for e in events if e["name"] == "prefill")
    first_decode = next(e for e in events if e["name"] == "decode step 1")
    assert prefill["ts"] + prefill["dur"] == pytest.approx(first_decode["ts"])
    assert chrome_trace(ops)["otherData"]["time_unit"] == "us"
    assert plot_decode_step(ops, tmp_path / "g.png", "test").read_bytes()[:8] == PNG


def test_labels_carry_units():
    assert label("hardware.hbm_bandwidth_GBps") == "HBM bandwidth (GB/s)"
    assert label("chip_cost_usd") == "chip cost (USD)"
    assert label("avg_power_W") == "avg power (W)"
    assert label("time_by_bound_s.memory") == "time by bound (s): memory"


def test_chrome_trace_shows_one_step_of_a_closed_form_segment(config):
    """A closed-form decode segment (one mean step standing for many) is laid out as one step's layers."""
    cfg = config("workload.prompt_tokens=64", "workload.decode_tokens=64")
    ops = pd.DataFrame(ops_columns(simulate(cfg)))
    decode = ops[ops["phase"] == "decode"]
    assert decode.groupby("step")["steps"].first().max() > 1  # some segment stands for several steps
    events = [e for e in chrome_trace(ops)["traceEvents"] if e["ph"] == "X" and e["pid"] == 2]
    for step in {e["args"]["step"] for e in events if e["args"]["phase"] == "decode"}:
        qkv = [e for e in events if e["name"] == "qkv_proj" and e["args"]["phase"] == "decode"
               and e["args"]["step"] == step]
        assert len(qkv) == cfg.model.num_layers


def test_the_sensitivity_command_prints_why_a_row_failed(tmp_path, capsys):
    from sim.cli.sensitivity import main

    main(["hardware=a100_80gb", "model=llama2_7b", "fidelity=analytic", "workload.decode_tokens=2",
          "--out", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert "failed  hardware.num_cores +10%: " in out and "reticle limit" in out
