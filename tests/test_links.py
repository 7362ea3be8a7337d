"""Collectives: closed forms per algorithm and topology, the auto choice, bad input, and the
shape of measured A100 all-reduce curves (latency-bound, then bandwidth-bound)."""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.chip import CollectiveAlgorithm, HardwareConfig, HardwareError, Topology
from hwmodels.links import (
    NO_OP,
    NVLS_EFFICIENCY,
    NVLS_LATENCY_US,
    Collective,
    CollectiveError,
    allreduce_options,
    bandwidth_ramp,
    collective_time,
    torus_shape,
)

A = 1e-6  # link_latency_us = 1: one step costs 1 us
W = 100e9  # link_bandwidth_GBps = 100: usable per-direction bandwidth of the chip
B = 64e6  # payload
CALIBRATION = Path(__file__).resolve().parents[1] / "data" / "calibration"


def fabric(topology: str = "switch", chips: int = 16, **changes) -> HardwareConfig:
    base = dict(name="fabric", link_bandwidth_GBps=100.0, link_latency_us=1.0, link_efficiency=1.0,
                collective_latency_us=0.0, link_ramp_exponent=0.0, topology=Topology(topology), max_chips=chips)
    base.update(changes)
    return HardwareConfig(**base)


def cost(chip, kind, p, nbytes=B, algorithm=None):
    return collective_time(chip, kind, nbytes, p, algorithm)


def check(c, steps, transfer_bytes_over_W, algorithm=None):
    assert c.latency_s == pytest.approx(steps * A)
    assert c.transfer_s == pytest.approx(transfer_bytes_over_W / W)
    if algorithm:
        assert c.algorithm == algorithm


# Closed forms --------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [2, 4, 8])
@pytest.mark.parametrize("topology", ["switch", "ring"])
def test_ring_allreduce(topology, p):
    c = cost(fabric(topology), "allreduce", p, algorithm="ring")
    check(c, 2 * (p - 1), 2 * (p - 1) / p * B, "ring")
    assert c.wire_bytes == pytest.approx(2 * (p - 1) / p * B)


@pytest.mark.parametrize("p, levels", [(2, 1), (4, 2), (5, 3), (8, 3)])
def test_tree_allreduce_on_a_switch(p, levels):
    check(cost(fabric(), "allreduce", p, algorithm="tree"), 2 * levels, 2 * B, "tree")


def test_tree_on_a_ring_pays_the_hops_between_tree_neighbours():
    # levels join ranks 1, 2, 4 apart: 1 + 2 + 4 hops up, the same down
    check(cost(fabric("ring"), "allreduce", 8, algorithm="tree"), 2 * 7, 2 * B, "tree")


def test_in_switch_allreduce():
    """NVLS: 2 hops plus NCCL's fixed NVLS latency; B at W times NCCL's NVLS efficiency."""
    chip = fabric(switch_reduction=True)
    c = cost(chip, "allreduce", 8, algorithm="in_switch")
    assert c.latency_s == pytest.approx(2 * A + NVLS_LATENCY_US * 1e-6)
    assert c.transfer_s == pytest.approx(B / (W * NVLS_EFFICIENCY["hopper"]))
    assert c.algorithm == "in_switch"


@pytest.mark.parametrize("architecture, efficiency", [("hopper", 0.85), ("blackwell", 0.74), ("cdna3", 0.85)])
def test_in_switch_efficiency_is_nccls_for_the_architecture(architecture, efficiency):
    """NCCL's tuner scales NVLS bus bandwidth by 0.85 on Hopper and 0.74 on Blackwell (nvlsEfficiency); B200 took
    Hopper's, 15 % fast on large in-switch all-reduces."""
    c = cost(fabric(switch_reduction=True, architecture=architecture), "allreduce", 8, algorithm="in_switch")
    assert c.transfer_s == pytest.approx(B / (W * efficiency))


def test_in_switch_needs_a_runtime_that_uses_it():
    chip = fabric(switch_reduction=True)
    assert CollectiveAlgorithm.in_switch not in allreduce_options(chip, 1e9, 8, in_switch=False)
    assert collective_time(chip, "allreduce", 1e9, 8, in_switch=False).algorithm == "ring"


@pytest.mark.parametrize("dims, p, sides", [
    (2, 16, (4, 4)), (2, 8, (4, 2)), (3, 8, (2, 2, 2)), (3, 16, (4, 2, 2)), (3, 12, (3, 2, 2)),
    (2, 7, (7,)), (3, 1, ()), (3, 4096, (16, 16, 16)),
])
def test_torus_shape_is_the_most_even_factorisation(dims, p, sides):
    assert torus_shape(p, dims) == sides


def test_torus_allreduce_is_dimension_ordered():
    # 4x4: 2(3 + 3) steps; each side carries 2 * (3/4 * B/2 + 3/4 * B/8) = 15/16 B at W/2
    check(cost(fabric("torus2d"), "allreduce", 16, algorithm="ring"), 12, 2 * 15 / 16 * B)
    # 2x2x2: 2(1 + 1 + 1) steps; balanced, so the ring's bandwidth term at full W
    check(cost(fabric("torus3d"), "allreduce", 8, algorithm="ring"), 6, 2 * 7 / 8 * B)
    # 4x2 on a 2D torus: the 4-side carries 2 * (3/4 * B/2 + 3/4 * B/4) = 9/8 B at W/2
    check(cost(fabric("torus2d"), "allreduce", 8, algorithm="ring"), 8, 9 / 4 * B)
    # prime group: one ring along one dimension, with that dimension's W/2
    check(cost(fabric("torus2d"), "allreduce", 7, algorithm="ring"), 12, 2 * 2 * 6 / 7 * B)


@pytest.mark.parametrize("p", [2, 4, 8])
def test_a_mesh_reaches_a_group_over_its_links_to_the_group(p):
    """Fully connected 8 chips (MI300X): W over 7 peer links; a group of p uses p-1 of them."""
    mesh, switch = fabric("mesh", chips=8), fabric("switch", chips=8)
    share = (p - 1) / 7
    check(cost(mesh, "allreduce", p, algorithm="ring"), 2 * (p - 1), 2 * (p - 1) / p * B / share, "ring")
    check(cost(mesh, "allreduce", p, algorithm="tree"), 2 * math.ceil(math.log2(p)), 2 * B / share, "tree")
    check(cost(mesh, "allgather", p), p - 1, (p - 1) / p * B / share, "ring")
    check(cost(mesh, "alltoall", p), p - 1, B / p * 7, "pairwise")  # B/p to each peer over its own link
    check(cost(mesh, "sendrecv", p), 1, 7 * B, "p2p")  # one link, whatever the group
    if p == 8:  # the whole mesh drives every link, as a switch would
        assert cost(mesh, "allreduce", 8).seconds == pytest.approx(cost(switch, "allreduce", 8).seconds)
    assert "in_switch" not in [a.value for a in allreduce_options(fabric("mesh", chips=8, switch_reduction=True), B, p)]


def test_the_amd_and_gaudi_boards_are_meshes():
    """One peer gets one link: 64 GB/s per direction on MI300X, 3 x 25 GB/s on Gaudi 3 (their presets' sources)."""
    from sim.config.compose import compose_config

    for name, peer_GBps in (("mi300x", 64.0), ("mi325x", 64.0), ("mi355x", 76.8), ("gaudi3", 75.0)):
        chip = compose_config([f"hardware={name}"])[1].hardware
        assert chip.topology is Topology.mesh
        one = collective_time(chip, "sendrecv", 1e9, 2)
        assert one.algorithm == "p2p"
        assert 1e9 / one.transfer_s == pytest.approx(peer_GBps * 1e9 * chip.link_efficiency / bandwidth_ramp(chip, 1e9))


@pytest.mark.parametrize("kind", ["allgather", "reducescatter"])
def test_allgather_and_reducescatter_are_half_an_allreduce(kind):
    check(cost(fabric(), kind, 4), 3, 3 / 4 * B, "ring")
    check(cost(fabric("torus2d"), kind, 16), 6, 15 / 16 * B)


def test_alltoall():
    check(cost(fabric(), "alltoall", 8), 7, 7 / 8 * B, "pairwise")
    # ring of 8: bytes x hops per chip B/8 * (1+2+3+4+3+2+1) = 2B over W
    check(cost(fabric("ring"), "alltoall", 8), 7, 2 * B)
    # 4x4: each side carries B * (0+1+2+1)/4 = B at W/2
    check(cost(fabric("torus2d"), "alltoall", 16), 6, 2 * B)


def test_sendrecv_uses_the_link_to_one_neighbour():
    check(cost(fabric(), "sendrecv", 2), 1, B, "p2p")
    check(cost(fabric("ring"), "sendrecv", 8), 1, 2 * B)
    check(cost(fabric("torus3d"), "sendrecv", 8), 1, 6 * B)


def test_efficiency_and_software_latency():
    chip = fabric(link_efficiency=0.5, collective_latency_us=10.0)
    c = cost(chip, "allreduce", 4, algorithm="ring")
    assert c.transfer_s == pytest.approx(2 * 1.5 * B / W)
    assert c.latency_s == pytest.approx(10e-6 + 6 * A)


def test_old_interface_still_works():
    c = collective_time(fabric(), Collective.allreduce, B, 8)
    assert c.seconds == c.latency_s + c.transfer_s
    assert c.transfer_s == pytest.approx(2 * 7 / 8 * B / W)


# Choice of algorithm ---------------------------------------------------------------------------
def test_auto_takes_the_tree_for_small_and_the_ring_for_large_messages():
    chip = fabric()
    assert cost(chip, "allreduce", 8, 1e3).algorithm == "tree"
    assert cost(chip, "allreduce", 8, 1e9).algorithm == "ring"


def test_auto_takes_in_switch_reduction_for_large_messages_only():
    """As NCCL's tuner: NVLS's fixed latency leaves small messages to the tree."""
    chip = fabric(switch_reduction=True)
    assert cost(chip, "allreduce", 8, 1e3).algorithm == "tree"
    assert cost(chip, "allreduce", 8, 1e9).algorithm == "in_switch"


@given(nbytes=st.floats(1, 1e11), p=st.integers(2, 16),
       topology=st.sampled_from(list(Topology)), reduction=st.booleans())
@settings(max_examples=150, deadline=None)
def test_auto_is_the_fastest_option(nbytes, p, topology, reduction):
    chip = fabric(topology.value, switch_reduction=reduction)
    options = allreduce_options(chip, nbytes, p)
    assert cost(chip, "allreduce", p, nbytes).seconds == min(c.seconds for c in options.values())


def test_torus_4x4_beats_a_ring_of_16_in_latency():
    torus = cost(fabric("torus2d"), "allreduce", 16, 1e3, algorithm="ring")
    ring = cost(fabric("ring"), "allreduce", 16, 1e3, algorithm="ring")
    assert torus.latency_s == pytest.approx(12 * A) and ring.latency_s == pytest.approx(30 * A)
    assert cost(fabric("torus2d"), "allreduce", 16, 1e3).seconds < cost(fabric("ring"), "allreduce", 16, 1e3).seconds


@given(kind=st.sampled_from(list(Collective)), topology=st.sampled_from(list(Topology)),
       p=st.integers(1, 64), nbytes=st.floats(0, 1e10), bw=st.floats(1, 1e3), more=st.floats(1, 10),
       reduction=st.booleans())
@settings(max_examples=200, deadline=None)
def test_more_link_bandwidth_never_slows_a_collective(kind, topology, p, nbytes, bw, more, reduction):
    slow = fabric(topology.value, chips=64, link_bandwidth_GBps=bw, switch_reduction=reduction)
    fast = fabric(topology.value, chips=64, link_bandwidth_GBps=bw * more, switch_reduction=reduction)
    assert cost(fast, kind, p, nbytes).seconds <= cost(slow, kind, p, nbytes).seconds * (1 + 1e-12)


# No-ops and bad input --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(Collective))
def test_one_chip_or_no_bytes_is_a_no_op(kind):
    for topology in Topology:
        assert cost(fabric(topology.value), kind, 1) == NO_OP
        assert cost(fabric(topology.value), kind, 8, 0.0) == NO_OP
    assert NO_OP.seconds == 0.0


@pytest.mark.parametrize("args, words", [
    (("allreduce", -1.0, 4), "payload must be a finite number of bytes >= 0 (got -1.0)"),
    (("allreduce", math.nan, 4), "payload must be a finite number"),
    (("allreduce", 1e6, 0), "whole number of chips >= 1 (got 0)"),
    (("allreduce", 1e6, 2.5), "whole number of chips"),
    (("allreduce", 1e6, 32), "exceeds the 16 chips"),
    (("broadcast", 1e6, 4), "unknown collective 'broadcast'; known: allreduce, allgather"),
])
def test_bad_collectives_are_one_line_errors(args, words):
    with pytest.raises(CollectiveError) as err:
        collective_time(fabric(), *args)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, HardwareError)  # the CLI's one-line error path


def test_unavailable_algorithms_are_errors():
    with pytest.raises(CollectiveError, match="unknown all-reduce algorithm 'fast'"):
        cost(fabric(), "allreduce", 4, algorithm="fast")
    with pytest.raises(CollectiveError, match="in_switch needs topology switch with switch_reduction=true"):
        cost(fabric(), "allreduce", 4, algorithm="in_switch")


@pytest.mark.parametrize("change, words", [
    ({"link_bandwidth_GBps": 0.0}, "link_bandwidth_GBps must be a finite number > 0"),
    ({"link_efficiency": 0.0}, "link_efficiency must be in [0.001, 1]"),
    ({"link_efficiency": 1.5}, "link_efficiency must be in [0.001, 1]"),
    ({"collective_latency_us": -1.0}, "collective_latency_us must be >= 0"),
    ({"topology": Topology.ring, "switch_reduction": True, "allreduce_algorithm": "in_switch"},
     "allreduce_algorithm=in_switch needs hardware.topology=switch"),
    ({"allreduce_algorithm": "in_switch"}, "hardware.switch_reduction=true"),
    ({"allreduce_algorithm": "fastest"}, "'fastest' is not a valid CollectiveAlgorithm"),
])
def test_impossible_links_are_rejected(change, words):
    with pytest.raises(HardwareError) as err:
        fabric(**change)
    assert words in str(err.value)


def test_presets_compose_with_the_new_fields(config):
    h100 = config("hardware=h100_sxm").hardware
    assert h100.switch_reduction and h100.allreduce_algorithm is CollectiveAlgorithm.auto
    assert 0 < h100.link_efficiency <= 1
    assert not config("hardware=a100_80gb").hardware.switch_reduction
    with pytest.raises(HardwareError, match="switch_reduction=true"):
        config("hardware=a100_80gb", "hardware.allreduce_algorithm=in_switch")


# Shape of measured all-reduce curves (A100, NVLink3 + NVSwitch) -------------------------------
def _slope(t0, t1, s0, s1):
    return math.log(t1 / t0) / math.log(s1 / s0)


def _busbw(nbytes, seconds, p):
    return 2 * (p - 1) / p * nbytes / seconds


def _check_shape(sizes, times, p, flat=1.3, linear=0.9):
    """Flat (latency-bound) at the smallest sizes, linear in size at the largest."""
    assert max(times[:6]) / min(times[:6]) < flat
    assert _slope(times[0], times[5], sizes[0], sizes[5]) < 0.1
    assert _slope(times[-2], times[-1], sizes[-2], sizes[-1]) > linear


@pytest.fixture
def a100(config):
    return config("hardware=a100_80gb").hardware


def test_llmcompass_4xa100_allreduce_shape(a100):
    path = CALIBRATION / "llmcompass_a100" / "allreduce_4xA100.csv"
    if not path.exists():
        pytest.skip(f"no calibration data at {path}")
    with path.open() as f:
        rows = [(float(r["size_bytes"]), float(r["latency_us"]) * 1e-6) for r in csv.DictReader(f)]
    sizes = [s for s, _ in rows]
    measured = [t for _, t in rows]
    predicted = [collective_time(a100, "allreduce", s, 4).seconds for s in sizes]
    for times in (measured, predicted):
        _check_shape(sizes, times, 4)
        busbw = [_busbw(s, t, 4) for s, t in zip(sizes, times, strict=True)]
        assert all(b1 >= b0 * 0.95 for b0, b1 in zip(busbw, busbw[1:], strict=False))  # rises (measured: within noise)
        assert busbw[-1] / busbw[-5] < 1.05  # to a plateau
    busbw = [_busbw(s, t, 4) for s, t in zip(sizes, predicted, strict=True)]
    assert all(b1 >= b0 for b0, b1 in zip(busbw, busbw[1:], strict=False))
    assert busbw[-1] == pytest.approx(a100.link_bandwidth_Bps * a100.link_efficiency, rel=0.01)
    # small messages take the latency-optimal algorithm, large ones the bandwidth-optimal
    assert collective_time(a100, "allreduce", sizes[0], 4).algorithm == "tree"
    assert collective_time(a100, "allreduce", sizes[-1], 4).algorithm == "ring"


def test_vidur_dgx_a100_allreduce_shape(a100):
    path = CALIBRATION / "vidur_a100" / "dgx_a100_all_reduce.csv"
    if not path.exists():
        pytest.skip(f"no calibration data at {path}")
    by_group: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with path.open() as f:
        for r in csv.DictReader(f):
            if r["devices_per_node"] == r["num_workers"]:
                by_group[int(r["num_workers"])][int(r["size"])].append(float(r["time_stats.all_reduce.median"]) * 1e-3)
    assert set(by_group) == {2, 4, 8}

    def band(curve, lo, hi):
        return statistics.median(t for s, t in curve.items() if lo <= s <= hi)

    for p, samples in by_group.items():
        measured = {s: statistics.median(ts) for s, ts in samples.items()}
        predicted = {s: collective_time(a100, "allreduce", s, p).seconds for s in measured}
        for curve in (measured, predicted):
            # flat: 8x to 128x more bytes, under 2.5x the time (measured small sizes are noisy)
            assert band(curve, 2**17, 2**18) / band(curve, 0, 2**14) < 2.5
            # towards linear: twice the bytes, nearly twice the time
            assert band(curve, 60 * 2**20, 64 * 2**20) / band(curve, 30 * 2**20, 32 * 2**20) > 1.5
            bus = [_busbw(s, band(curve, s / 1.1, s * 1.1), p) for s in (2**16, 2**20, 2**24, 2**26)]
            assert bus == sorted(bus)
