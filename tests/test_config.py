"""The config as data: the system above the chip, run settings vs tool settings, one KV block size."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from sim.config.compose import compose_dict, to_app_config, to_run_config
from sim.config.overrides import InputError, check_override
from sim.config.paths import presets
from sim.config.schema import AppConfig, RunConfig, RunError, SchedulerConfig, run_fields
from sim.studies.sweep.points import point_key
from tests.conftest import make_config, run_cli
from workloads.graph import Execution

CHIP_AND_HOST = {"dgx_h100": ("h100_sxm", "intel_xeon_8480c"), "dgx_h200": ("h200", "intel_xeon_8480c"),
                 "dgx_a100": ("a100_80gb", "amd_epyc_7742"), "azure_nd_a100_v4": ("a100_80gb", "amd_epyc_7v12"),
                 "gb200_nvl72": ("gb200", "nvidia_grace")}


# A system above the chip -------------------------------------------------------------------------
@pytest.mark.parametrize("system", presets("system"))
def test_every_system_preset_composes_with_its_chip_and_host(system):
    cfg = make_config(f"system={system}")
    assert cfg.system.name == system
    assert (cfg.hardware.name, cfg.system.host.name) == CHIP_AND_HOST[system]
    up = cfg.system.scale_up  # the presets interpolate the chip's fabric
    assert (up.link_bandwidth_GBps, up.topology, up.chips) == (
        cfg.hardware.link_bandwidth_GBps, cfg.hardware.topology, cfg.hardware.max_chips)
    out = cfg.system.scale_out  # every preset joins its nodes with one NIC per chip (hwmodels/network.py)
    assert out.nic_bandwidth_GBps > 0 and out.nodes is None and cfg.system.chips_per_node >= 1


@pytest.mark.parametrize("host", presets("host"))
def test_every_host_preset_cites_one_benchmark(host):
    cfg = make_config(f"host={host}")
    assert cfg.system.host.name == host
    assert cfg.system.host.single_thread_score > 0
    assert cfg.system.host.benchmark == "PassMark single-thread rating"  # one benchmark for every host


def test_default_run_is_a_dgx_h100_and_hardware_swaps_the_chip_inside_the_system():
    default = make_config()
    assert (default.hardware.name, default.system.name, default.system.host.name) == (
        "h100_sxm", "dgx_h100", "intel_xeon_8480c")
    swapped = make_config("hardware=a100_80gb")  # as before systems existed: only the chip changes
    assert swapped.hardware == make_config("system=dgx_a100").hardware
    assert (swapped.system.name, swapped.system.host.name) == ("dgx_h100", "intel_xeon_8480c")
    assert swapped.system.scale_up.link_bandwidth_GBps == 300.0  # the chip's NVLink3 flows into the system
    # the command line wins over the system's choice of chip; host=<cpu> swaps the host alone
    mixed = make_config("system=dgx_a100", "hardware=h100_sxm", "host=intel_xeon_8480c")
    assert (mixed.hardware.name, mixed.system.name, mixed.system.host.name) == (
        "h100_sxm", "dgx_a100", "intel_xeon_8480c")
    assert make_config("+experiment=link_vs_tp", "system=dgx_a100").hardware.name == "h100_sxm"  # recipe > system


def test_hardware_overrides_flow_into_the_system_and_an_explicit_scale_up_wins():
    cfg = make_config("hardware.link_bandwidth_GBps=100", "hardware.max_chips=4")
    assert (cfg.hardware.link_bandwidth_GBps, cfg.system.scale_up.link_bandwidth_GBps) == (100.0, 100.0)
    assert cfg.system.scale_up.chips == 4
    both = make_config("hardware.link_bandwidth_GBps=100", "system.scale_up.link_bandwidth_GBps=900",
                       "system.scale_up.topology=ring", "system.scale_up.chips=16")
    assert both.hardware.link_bandwidth_GBps == 900.0  # the system is above the chip
    assert (both.hardware.topology.value, both.hardware.max_chips) == ("ring", 16)
    with pytest.raises(RunError, match="exceeds the 4 chips"):
        from sim.config.schema import check_run

        check_run(make_config("system.scale_up.chips=4", "parallel.tp=8", "model=llama2_70b"))


def test_a_searched_chip_value_reaches_the_system():
    from sim.studies.search.evaluate import build
    from sim.studies.search.runner import _plain, _run_part

    base = _run_part(_plain(["+search=decode_chip_llama2_70b"]))
    assert "search" not in base and "output" not in base
    cfg = build(base, {"hardware.link_bandwidth_GBps": 900})
    assert cfg.hardware.link_bandwidth_GBps == cfg.system.scale_up.link_bandwidth_GBps == 900.0


# Config of the run vs config of the tool ---------------------------------------------------------
def test_run_config_holds_only_what_changes_the_numbers():
    names = {f.name for f in dataclasses.fields(RunConfig)}
    assert not names & {"name", "output", "sweep", "search"}
    assert set(run_fields()) == names and issubclass(AppConfig, RunConfig)
    cfg = make_config("output.print_summary=false", "sweep.rerun=true")
    assert type(cfg) is RunConfig and not hasattr(cfg, "output")
    app = to_app_config(compose_dict(["output.print_summary=false", "+search=area_compute_vs_sram"]))
    assert app.output.print_summary is False and app.search.trials == 100 and app.name == "area_compute_vs_sram"


@pytest.mark.slow
def test_point_key_covers_the_run_and_not_the_tools():
    key = point_key(compose_dict([]))
    for tool in ("output.print_summary=false", "output.write_files=false", "output.trace=true", "sweep.rerun=true",
                 "sweep.metric=tpot_s", "sweep.report=false", "name=other", "search.trials=3",
                 "+search=area_compute_vs_sram"):
        if tool.startswith("+search"):  # a recipe also sets run keys; compare with those set by hand
            recipe = compose_dict([tool])
            same = OmegaConf.masked_copy(recipe, list(run_fields()))
            assert point_key(recipe) == point_key(same)
            continue
        assert point_key(compose_dict([tool])) == key, tool
    for run in ("workload.batch=2", "hardware.freq_GHz=1.5", "attention.kv_block_tokens=32", "seed=1",
                "host=amd_epyc_7742", "system.chips_per_node=4", "fidelity=analytic"):
        assert point_key(compose_dict([run])) != key, run


def test_to_run_config_drops_the_tools_and_the_hydra_node():
    cfg = to_run_config(compose_dict(["workload.batch=3"], with_hydra=True))
    assert type(cfg) is RunConfig and cfg.workload.batch == 3


# One kv_block_tokens ------------------------------------------------------------------------------
def test_one_kv_block_size_for_every_run():
    assert "kv_block_tokens" not in {f.name for f in dataclasses.fields(SchedulerConfig)}
    cfg = make_config()
    assert cfg.attention.kv_block_tokens == 16 and cfg.execution().kv_block_tokens == 16
    assert make_config("scheduler=static").attention.kv_block_tokens == 16
    with pytest.raises(InputError, match=r"scheduler.kv_block_tokens is now attention.kv_block_tokens.*=32"):
        check_override("scheduler.kv_block_tokens=32")


def test_a_serving_run_needs_a_paged_cache():
    from sim.serving.run import simulate_serving

    with pytest.raises(RunError, match="attention.kv_block_tokens >= 1"):
        simulate_serving(make_config("workload=serving", "attention.kv_block_tokens=0", "workload.num_requests=2"))


@pytest.mark.slow
def test_the_old_spelling_is_one_line_and_exit_2():
    proc = run_cli("scheduler.kv_block_tokens=32")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "llmsim: error: scheduler.kv_block_tokens is now attention.kv_block_tokens (one KV block size for every "
        "run): use attention.kv_block_tokens=32"]


# Execution by keyword ----------------------------------------------------------------------------
def test_execution_is_built_by_keyword_only():
    with pytest.raises(TypeError):
        Execution("bf16")  # a positional argument: refused
    ex = make_config("parallel.tp=2", "precision.group_size=64").execution()
    assert (ex.tp, ex.group_size, ex.ep, ex.kv_block_tokens) == (2, 64, 1, 16)


@pytest.mark.parametrize("arg, words", [
    # ``++`` adds or overrides: a misspelt key was added, ignored by the run, and the run exited 0 (review)
    ("++hardware.freq_GHzz=1.0", r"unknown key 'hardware.freq_GHzz'.*did you mean 'freq_GHz'"),
    ("++workload.batchh=64", r"unknown key 'workload.batchh'"),
    ("++fidelty=analytic", r"unknown key 'fidelty'.*did you mean 'fidelity'"),
    ("++hardware.freq_GHz=abc", "expected a number"),
    # ``+`` on a key nobody has: "part of the config already" sent the user to an unknown key (review)
    ("+hardware.foo=1", r"unknown key 'hardware.foo'"),
    ("+hardware.freq_GHz=1.0", "part of the config already; override it with hardware.freq_GHz=1.0"),
])
def test_added_keys_are_checked_like_overridden_ones(arg, words):
    with pytest.raises(InputError, match=words):
        check_override(arg)


def test_a_well_spelt_forced_override_still_takes_effect():
    check_override("++hardware.freq_GHz=1.0")
    check_override("++hardware.matmul_dtype_rate.fp8=2")  # a map's entry may be new
    assert make_config("++hardware.freq_GHz=1.0").hardware.freq_GHz == 1.0


def test_settings_a_run_does_not_read_are_named():
    """A single-batch run with a serving setting ran as if it were not there, without a word (review)."""
    from sim.config.checks import ignored_settings
    assert ignored_settings(make_config()) == [] and ignored_settings(make_config("workload=serving")) == []
    assert ignored_settings(make_config("workload.shared_prefix_tokens=400", "speculative.k=8")) == [
        "workload.shared_prefix_tokens=400 (workload=serving only)", "speculative.k=8 (no speculative.draft_model)"]
    assert ignored_settings(make_config("workload=serving", "workload.batch=8", "workload.lengths=uniform")) == [
        "workload.batch=8 (single-batch runs only)"]
    drafted = make_config("speculative.draft_model=llama2_7b", "speculative.k=8", "model=llama2_70b")
    assert ignored_settings(drafted) == []
    # a serving setting its arrivals, lengths or scheduler leave unread: gamma's cv under Poisson arrivals ran as
    # Poisson without a word (independent review)
    assert ignored_settings(make_config("workload=serving", "workload.cv=3", "workload.concurrency=4",
                                        "workload.think_s=5", "workload.length_cv=0.3", "workload.trace_scale=2",
                                        "scheduler.decode_instances=2")) == [
        "workload.cv=3.0 (workload.arrival=gamma only)", "workload.concurrency=4 (workload.arrival=closed only)",
        "workload.trace_scale=2.0 (workload.arrival=trace only)", "workload.think_s=5.0 (workload.turns > 1 only)",
        "workload.length_cv=0.3 (uniform and lognormal lengths only)",
        "scheduler.decode_instances=2 (scheduler=disaggregated only)"]
    assert ignored_settings(make_config("workload=serving", "workload.arrival=trace", "workload.trace=azure_code",
                                        "workload.rate_per_s=3", "workload.prompt_tokens=100")) == [
        "workload.rate_per_s=3.0 (poisson and gamma arrivals only)",
        "workload.prompt_tokens=100 (a trace gives the lengths)"]
    read = ("workload=serving", "workload.arrival=gamma", "workload.cv=3", "workload.output_lengths=uniform",
            "workload.length_cv=0.3", "workload.turns=2", "workload.think_s=5", "scheduler=disaggregated",
            "scheduler.decode_instances=2")
    assert ignored_settings(make_config(*read)) == []
    # execution settings the model, formats or layout leave unread (independent review: all ran without a word)
    assert ignored_settings(make_config("parallel.microbatches=4", "precision.group_size=64",
                                        "attention.mla_form=naive", "parallel.moe_imbalance=1.5",
                                        "memory.host_bandwidth_GBps=450")) == [
        "parallel.microbatches=4 (single-batch runs with parallel.pp > 1 only)",
        "parallel.moe_imbalance=1.5 (mixture-of-experts models only)",
        "attention.mla_form=naive (multi-head latent attention models only)",
        "memory.host_bandwidth_GBps=450 (memory.kv_offload=host only)",
        "precision.group_size=64 (int4 and int8 weights only)"]
    assert ignored_settings(make_config("parallel.pp=2", "parallel.microbatches=2", "workload.batch=2",
                                        "model=deepseek_v3", "attention.mla_form=naive", "parallel.moe_imbalance=1.5",
                                        "memory.kv_offload=host", "memory.host_bandwidth_GBps=450",
                                        "precision.weights=int4", "precision.group_size=64")) == []
