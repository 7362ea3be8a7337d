"""Collectives across scale-up domains: the scale-out network and hierarchical collectives.

A system joins chips in two tiers (``Tier``): the **scale-up** domain (NVLink and NVSwitch, a
TPU torus: the chip's own fabric, costed by hwmodels/links.py) and the **scale-out** network
between domains (InfiniBand or RoCE, one NIC per chip: ``Network``). A group of p chips that
spans n domains has l = p / n chips in each (groups are whole blocks of consecutive ranks, so
they split evenly); one function per collective (``allreduce``, ``allgather``, ``reducescatter``,
``alltoall``, ``sendrecv``) takes the payload (as hwmodels/links.py defines it per collective), the
group size, the domains it spans and the network, and returns a ``CollectiveCost``. With n = 1
each is exactly ``links.collective_time`` on the chip's fabric.

The network, per chip: usable per-direction bandwidth ``Wn = nic_bandwidth x nic_efficiency``;
one inter-node step costs ``a = latency_us`` through one switch, plus ``switch_hop_us`` for each
further switch on its path. On a ``fat_tree`` every inter-node message crosses leaf, spine and
leaf (2 more switches); on a ``rail_optimized`` network chip i of every node hangs off rail
switch i, so rail-aligned messages (same local rank: the inter-node phase of the hierarchical
collectives, pipeline sends) cross one switch and others (all-to-all) cross the spine.

Closed forms (the network parts have no small-message ramp; ESTIMATE: NICs reach their plateau
at far smaller messages than these collectives move):

* flat, over n chips on n nodes: all-reduce (ring) 2(n-1) steps, ``2(n-1)/n B / Wn``;
  all-gather, reduce-scatter (n-1) steps, ``(n-1)/n B / Wn``.
* all-reduce, hierarchical (l > 1): reduce-scatter of B inside each domain (l chips), the l
  rails all-reduce their B/l in parallel across the n domains (flat, above), all-gather of B
  inside. The cost is the sum of the three.
* reduce-scatter: inside (B over l), then across (B/l over n); all-gather the reverse.
* all-to-all: each chip sends B/p to every peer: ``(l-1)/p B`` stay in its domain (the scale-up
  all-to-all of the l chips with a buffer of ``l/p B``), ``(p-l)/p B`` leave through its NIC in
  n-1 steps. Both run at once on different links: latency and transfer are each the larger part's.
* send/receive between domains: one step, ``B / Wn``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hwmodels.chip import CollectiveAlgorithm, HardwareConfig
from hwmodels.links import NO_OP, Collective, CollectiveCost, CollectiveError, _check, _parse, collective_time


class Tier(str, Enum):
    """The network a collective's bytes cross: the chip's fabric, or the NICs between domains."""

    scale_up = "scale_up"
    scale_out = "scale_out"


class NetworkTopology(str, Enum):
    fat_tree = "fat_tree"  # every node under the same tree; inter-node messages cross leaf, spine, leaf
    rail_optimized = "rail_optimized"  # local rank i of every node on rail switch i; one switch when aligned

SPINE_EXTRA_SWITCHES = 2  # leaf -> spine -> leaf: two switches beyond the first


@dataclass(frozen=True, slots=True)
class Network:
    """The scale-out network as one chip sees it: its NIC and the switches behind it."""

    nic_bandwidth_GBps: float  # per chip, per direction
    nic_efficiency: float  # usable fraction of the NIC's rate for large messages
    latency_us: float  # one inter-node step through one switch (NIC, wire, switch, software)
    switch_hop_us: float  # each further switch on a path
    topology: NetworkTopology = NetworkTopology.rail_optimized

    def __post_init__(self) -> None:
        if not self.nic_bandwidth_GBps > 0 or not 0 < self.nic_efficiency <= 1:
            raise CollectiveError(f"a network needs nic_bandwidth_GBps > 0 and nic_efficiency in (0, 1] "
                                  f"(got {self.nic_bandwidth_GBps}, {self.nic_efficiency})")
        if not self.latency_us >= 0 or not self.switch_hop_us >= 0:
            raise CollectiveError(f"a network's latencies must be >= 0 (got {self.latency_us}, {self.switch_hop_us})")

    @property
    def nic_Bps(self) -> float:
        """Usable per-direction bytes per second of one chip's NIC, Wn."""
        return self.nic_bandwidth_GBps * 1e9 * self.nic_efficiency

    def step_s(self, rail_aligned: bool) -> float:
        """Latency of one inter-node step; ``rail_aligned``: between chips of the same local rank."""
        extra = 0 if rail_aligned and self.topology is NetworkTopology.rail_optimized else SPINE_EXTRA_SWITCHES
        return (self.latency_us + extra * self.switch_hop_us) * 1e-6


def _split(chip: HardwareConfig, nbytes: float, chips: int, nodes: int, net: Network | None) -> int:
    """Chips per domain, l; checks the inputs."""
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1 or chips % nodes:
        raise CollectiveError(f"a group of {chips} chips cannot span {nodes!r} domains evenly")
    if nodes > 1 and net is None:
        raise CollectiveError(f"a group over {nodes} scale-up domains needs a scale-out network (system.scale_out)")
    local = chips // nodes
    _check(chip, nbytes, local)
    return local


def _flat(net: Network, steps: int, wire: float, rail_aligned: bool = True) -> CollectiveCost:
    return CollectiveCost(steps * net.step_s(rail_aligned), wire / net.nic_Bps, wire, "net_ring")


def _sum(*parts: CollectiveCost) -> CollectiveCost:
    algorithm = "+".join(p.algorithm for p in parts if p.algorithm != "none") or "none"
    return CollectiveCost(sum(p.latency_s for p in parts), sum(p.transfer_s for p in parts),
                          sum(p.wire_bytes for p in parts), algorithm)


def allreduce(chip: HardwareConfig, nbytes: float, chips: int, nodes: int = 1, net: Network | None = None,
              algorithm: CollectiveAlgorithm | str | None = None, in_switch: bool = True) -> CollectiveCost:
    """All-reduce of a ``nbytes`` buffer over ``chips`` chips in ``nodes`` domains (hierarchical when > 1)."""
    local = _split(chip, nbytes, chips, nodes, net)
    if nodes == 1:
        return collective_time(chip, Collective.allreduce, nbytes, chips, algorithm, in_switch)
    if nbytes == 0:
        return NO_OP
    inter = _flat(net, 2 * (nodes - 1), 2 * (nodes - 1) / nodes * nbytes / local)
    if local == 1:
        return inter
    return _sum(collective_time(chip, Collective.reducescatter, nbytes, local), inter,
                collective_time(chip, Collective.allgather, nbytes, local))


def reducescatter(chip: HardwareConfig, nbytes: float, chips: int, nodes: int = 1,
                  net: Network | None = None) -> CollectiveCost:
    """Reduce-scatter of ``nbytes`` (the full buffer) over ``chips`` chips in ``nodes`` domains."""
    return _half(chip, Collective.reducescatter, nbytes, chips, nodes, net)


def allgather(chip: HardwareConfig, nbytes: float, chips: int, nodes: int = 1,
              net: Network | None = None) -> CollectiveCost:
    """All-gather of ``nbytes`` (the full gathered size) over ``chips`` chips in ``nodes`` domains."""
    return _half(chip, Collective.allgather, nbytes, chips, nodes, net)


def _half(chip: HardwareConfig, kind: Collective, nbytes: float, chips: int, nodes: int,
          net: Network | None) -> CollectiveCost:
    """A reduce-scatter or all-gather: inside each domain, plus the (nodes - 1)/nodes share across the NICs."""
    local = _split(chip, nbytes, chips, nodes, net)
    if nodes == 1 or nbytes == 0:
        return collective_time(chip, kind, nbytes, chips)
    inter = _flat(net, nodes - 1, (nodes - 1) / nodes * nbytes / local)
    return _sum(collective_time(chip, kind, nbytes, local), inter)


def alltoall(chip: HardwareConfig, nbytes: float, chips: int, nodes: int = 1,
             net: Network | None = None) -> CollectiveCost:
    """All-to-all of each chip's ``nbytes`` send buffer over ``chips`` chips in ``nodes`` domains."""
    local = _split(chip, nbytes, chips, nodes, net)
    if nodes == 1 or nbytes == 0:
        return collective_time(chip, Collective.alltoall, nbytes, chips)
    inside = collective_time(chip, Collective.alltoall, nbytes * local / chips, local)
    outside = _flat(net, nodes - 1, (chips - local) / chips * nbytes, rail_aligned=False)
    return CollectiveCost(max(inside.latency_s, outside.latency_s), max(inside.transfer_s, outside.transfer_s),
                          inside.wire_bytes + outside.wire_bytes, "hierarchical_pairwise")


def sendrecv(chip: HardwareConfig, nbytes: float, nodes: int = 1, net: Network | None = None) -> CollectiveCost:
    """A point-to-point send of ``nbytes`` to a peer in the same domain (``nodes=1``) or the next (``nodes=2``)."""
    if nodes not in (1, 2):
        raise CollectiveError(f"a send joins 1 or 2 domains (got {nodes!r})")
    _split(chip, nbytes, 2, nodes, net)
    if nodes == 1 or nbytes == 0:
        return collective_time(chip, Collective.sendrecv, nbytes, 2)
    return _flat(net, 1, nbytes)


COLLECTIVES = {Collective.allreduce: allreduce, Collective.allgather: allgather,
               Collective.reducescatter: reducescatter, Collective.alltoall: alltoall}


def tiered_time(chip: HardwareConfig, kind: Collective | str, nbytes: float, chips: int, nodes: int = 1,
                net: Network | None = None, in_switch: bool = True) -> CollectiveCost:
    """One ``kind`` collective on the tiers it uses: ``links.collective_time`` when ``nodes == 1``."""
    kind = _parse(Collective, kind, "collective")
    if nodes == 1:
        return collective_time(chip, kind, nbytes, chips, in_switch=in_switch)
    if kind is Collective.sendrecv:
        return sendrecv(chip, nbytes, nodes, net)
    if kind is Collective.allreduce:
        return allreduce(chip, nbytes, chips, nodes, net, in_switch=in_switch)
    return COLLECTIVES[kind](chip, nbytes, chips, nodes, net)
