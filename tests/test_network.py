"""Scale-up and scale-out tiers: hierarchical collectives in closed form, the parallel layout, and
the runs of issue 18 (DeepSeek-V3 with EP across an NVL72 rack, Llama-3.1-405B TP8 x PP2 on two nodes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.links import Collective, collective_time
from hwmodels.network import (
    Network,
    NetworkTopology,
    allgather,
    allreduce,
    alltoall,
    reducescatter,
    sendrecv,
    tiered_time,
)
from sim.batch.run import simulate
from sim.config.overrides import InputError, check_override
from sim.config.placement import layout_of
from sim.config.schema import RunError
from sim.metrics.summary import summarize
from tests.conftest import make_config
from workloads.ops import OpKind

H100 = make_config().hardware  # the default system's chip: 8 per NVLink domain
NDR = Network(50.0, 0.9, 4.0, 0.25, NetworkTopology.rail_optimized)
WN = 50e9 * 0.9  # usable bytes per second of one NIC


# Closed forms ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("nbytes", [0, 1e3, 1e6, 3.3e7, 1e9])
@pytest.mark.parametrize("kind", list(Collective))
def test_one_domain_is_the_scale_up_collective_bit_for_bit(kind, nbytes):
    chips = 2 if kind is Collective.sendrecv else 8
    assert tiered_time(H100, kind, nbytes, chips, 1, NDR) == collective_time(H100, kind, nbytes, chips)
    if kind is Collective.allreduce:
        assert allreduce(H100, nbytes, 8, 1, NDR) == collective_time(H100, kind, nbytes, 8)


def test_two_nodes_all_reduce_is_reduce_scatter_rails_all_gather():
    b = 64e6
    inside_rs = collective_time(H100, Collective.reducescatter, b, 8)
    inside_ag = collective_time(H100, Collective.allgather, b, 8)
    cost = allreduce(H100, b, 16, 2, NDR)
    # across: 2(n-1) = 2 rail-aligned steps of 4 us; each chip's B/8 slice, 2(n-1)/n = 1 times, over its NIC
    assert cost.latency_s == pytest.approx(inside_rs.latency_s + 2 * 4e-6 + inside_ag.latency_s, rel=1e-12)
    assert cost.transfer_s == pytest.approx(inside_rs.transfer_s + b / 8 / WN + inside_ag.transfer_s, rel=1e-12)
    one_per_node = allreduce(H100, b, 2, 2, NDR)  # one chip per node: the flat ring over the NICs
    assert (one_per_node.latency_s, one_per_node.transfer_s) == pytest.approx((2 * 4e-6, b / WN), rel=1e-12)


def test_two_nodes_all_to_all_sends_the_other_nodes_share_through_the_nics():
    b = 8e6  # each chip's send buffer, b/16 to each of 16 chips on 2 nodes
    cost = alltoall(H100, b, 16, 2, NDR)
    inside = collective_time(H100, Collective.alltoall, b * 8 / 16, 8)
    out_s = 8 / 16 * b / WN  # (p - l) / p of the buffer leaves the node
    assert cost.transfer_s == pytest.approx(max(inside.transfer_s, out_s), rel=1e-12)
    # one network step across the spine (not rail-aligned): 4 us + 2 more switches of 0.25 us
    assert cost.latency_s == pytest.approx(max(inside.latency_s, 4.5e-6), rel=1e-12)
    fat = Network(50.0, 0.9, 4.0, 0.25, NetworkTopology.fat_tree)
    assert sendrecv(H100, b, 2, fat).latency_s == pytest.approx(4.5e-6) and \
        sendrecv(H100, b, 2, NDR).latency_s == pytest.approx(4e-6)
    assert sendrecv(H100, b, 2, NDR).transfer_s == pytest.approx(b / WN, rel=1e-12)


def test_gather_and_scatter_halves_add_up():
    b = 32e6
    rs, ag = reducescatter(H100, b, 32, 4, NDR), allgather(H100, b, 32, 4, NDR)
    across = 3 / 4 * b / 8 / WN
    assert rs.transfer_s == pytest.approx(collective_time(H100, Collective.reducescatter, b, 8).transfer_s + across)
    assert ag.transfer_s == pytest.approx(rs.transfer_s, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from([Collective.allreduce, Collective.allgather, Collective.reducescatter,
                             Collective.alltoall, Collective.sendrecv]),
       nbytes=st.floats(1.0, 1e10), nodes=st.sampled_from([2, 3, 4, 16]), local=st.sampled_from([1, 2, 8]),
       slow=st.floats(1.0, 400.0), more=st.floats(1.0, 10.0))
def test_more_nic_bandwidth_is_never_slower(kind, nbytes, nodes, local, slow, more):
    chips, nodes = (2, 2) if kind is Collective.sendrecv else (nodes * local, nodes)
    a = Network(slow, 0.9, 4.0, 0.25)
    b = Network(slow * more, 0.9, 4.0, 0.25)
    assert tiered_time(H100, kind, nbytes, chips, nodes, b).seconds <= tiered_time(H100, kind, nbytes, chips, nodes,
                                                                                  a).seconds


# The layout --------------------------------------------------------------------------------------------
def test_tensor_parallelism_across_nodes_is_refused():
    with pytest.raises(RunError, match="tensor parallelism stays inside the scale-up domain"):
        simulate(make_config("model=llama2_7b", "parallel.tp=16"))  # 32 heads and KV heads: 16 divides them


@pytest.mark.parametrize(("overrides", "message"), [
    (("model=llama3_70b", "parallel.tp=8", "parallel.pp=2", "system.scale_out=null"), "has no scale-out network"),
    (("model=llama3_70b", "parallel.tp=8", "parallel.pp=4", "system.scale_out.nodes=2"), "needs 4 scale-up domains"),
    (("model=mixtral_8x7b", "parallel.tp=4", "parallel.ep=6"), "must be a multiple of parallel.tp=4"),
    (("model=deepseek_v3", "parallel.tp=4", "parallel.ep=12", "parallel.moe_redundant_experts=8"),
     "it must fill whole domains"),
])
def test_layouts_that_do_not_fit_are_one_line(overrides, message):
    with pytest.raises(RunError, match=message):
        simulate(make_config("workload.batch=16", *overrides))


def test_stages_pack_into_domains_and_only_boundaries_between_domains_cross():
    lay = layout_of(make_config("model=llama3_70b", "parallel.tp=4", "parallel.pp=4", "workload.batch=4"))
    assert (lay.domains, lay.send_nodes, lay.chips) == (2, (1, 2, 1), 16)
    rack = layout_of(make_config("system=gb200_nvl72", "model=llama3_70b", "parallel.tp=8", "parallel.pp=4",
                                 "workload.batch=4"))
    assert (rack.domains, rack.send_nodes) == (1, (1, 1, 1))  # 32 chips in the 72-GPU domain


# The runs --------------------------------------------------------------------------------------
LLAMA_405B = ("model=llama3_1_405b", "parallel.tp=8", "precision.weights=fp8", "workload.batch=4",
              "workload.prompt_tokens=256", "workload.decode_tokens=4")


def test_llama_405b_tp8_pp2_sends_between_nodes_over_the_network():
    result = simulate(make_config(*LLAMA_405B, "parallel.pp=2"))
    sends = [r for r in result.timeline.records if r.op.kind is OpKind.send]
    assert sends and all(r.op.comm_nodes == 2 and r.op.tier == "scale_out" for r in sends)
    s = summarize(result)
    assert s["time_by_tier_s"]["scale_out"] > 0 and s["run"]["chips"] == 16
    assert sum(s["time_by_bound_s"].values()) == pytest.approx(s["total_s"], rel=1e-9)
    # the same send alone: 4 us of network latency, then its bytes through one NIC
    nbytes = sends[0].op.comm_bytes
    assert sends[0].cost.link_s == pytest.approx(4e-6 + nbytes / WN, rel=1e-12)
    # on the NIC, not sharing NVLink with the next micro-batch's all-reduces: it takes its own time
    assert all(r.end_s - r.start_s == pytest.approx(r.cost.time_s, rel=1e-9) for r in sends)
    assert "nic" in s["busy_fraction"]
    one_node = simulate(make_config("model=llama3_70b", "parallel.tp=4", "parallel.pp=2", "workload.batch=2",
                                    "workload.prompt_tokens=64", "workload.decode_tokens=2"))
    assert "nic" not in summarize(one_node)["busy_fraction"]  # 8 chips: one domain, no NIC


def test_deepseek_v3_expert_parallel_across_the_rack_and_across_nodes():
    common = ("model=deepseek_v3", "parallel.tp=8", "precision.weights=fp8", "precision.activations=fp8",
              "workload.prompt_tokens=128", "workload.decode_tokens=3")
    rack = simulate(make_config("system=gb200_nvl72", *common, "parallel.ep=72", "parallel.moe_redundant_experts=32",
                                "workload.batch=72"))
    two_nodes = simulate(make_config("system=dgx_h200", *common, "parallel.ep=16", "workload.batch=16"))
    one_node = simulate(make_config("system=dgx_h200", *common, "parallel.ep=8", "workload.batch=8"))
    for result, nodes in ((rack, 1), (two_nodes, 2), (one_node, 1)):
        a2a = [r for r in result.timeline.records if r.op.kind is OpKind.alltoall]
        assert a2a and all(r.op.comm_nodes == nodes for r in a2a)
        parts = summarize(result)["time_by_part_s"]
        assert min(parts["attention"], parts["experts"], parts["all_to_all"]) > 0
    assert rack.chips == 72 and two_nodes.chips == 16
    assert summarize(two_nodes)["time_by_tier_s"]["scale_out"] > 0
    assert summarize(rack)["time_by_tier_s"]["scale_out"] == 0
    # each chip holds 1/72 of the routed experts (and 4 of the 32 copies) instead of 1/8
    assert rack.memory.weights < one_node.memory.weights / 4
    # 9 attention groups of 8 chips share the batch of 72: each runs 8 sequences, as the one node does
    assert rack.memory.kv_cache == pytest.approx(one_node.memory.kv_cache, rel=1e-12)


def test_the_network_is_set_from_the_command_line():
    check_override("system.scale_out.nic_bandwidth_GBps=100")  # a ConnectX-8 (800 Gb/s) per GPU
    with pytest.raises(InputError, match="is not one of: fat_tree, rail_optimized"):
        check_override("system.scale_out.topology=torus")
    with pytest.raises(InputError, match="expected a whole number"):
        check_override("system.scale_out.nodes=1.5")
