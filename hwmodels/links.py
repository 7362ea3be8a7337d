"""Collectives over the chip-to-chip fabric, as an alpha-beta cost.

A collective's cost is split in two (``CollectiveCost``):

* ``latency_s``: bandwidth-free time, ``collective_latency + steps * hops_per_step *
  link_latency``. A step is one round of messages the algorithm waits for; every step here is
  one hop (to a neighbour on a ring or torus, through the switch on a switch).
* ``transfer_s``: the bytes the busiest links of a chip carry over their usable per-direction
  bandwidth, ``link_bandwidth * link_efficiency`` times the share those links have of the chip.

Notation: p chips, payload B bytes, W = usable per-direction bandwidth of the whole chip,
a = per-step latency. B is the buffer each chip holds for all-reduce; the full gathered
size for all-gather and reduce-scatter; each chip's whole send buffer (B/p to every peer) for
all-to-all; the bytes sent for send/receive.

How a group sits on each topology (``Group``):

* switch: every chip one hop from every other; a chip can drive all of W towards the switch.
  Ring algorithms use the ring order of the group at full W.
* mesh (fully connected, no switch: an 8-GPU MI300X or Gaudi 3 board): W is split evenly over
  the links to the other N - 1 chips of the fabric (N = ``max_chips``), one per peer, so a group
  of p reaches its peers over p - 1 of them, ``W (p-1)/(N-1)``, and costs as a switch with that
  bandwidth (every peer one hop); a send to one peer has one link, ``W/(N-1)``. The collective
  libraries (RCCL, HCCL) run their rings over every link to the group, so p = N reaches W.
* ring: the group is (part of) the physical ring with wraparound; a chip has 2 links, W/2 per
  direction each; ring algorithms run a bidirectional ring (half the data each way), so they
  reach W.
* torus2d/torus3d (D = 2, 3): 2D links of W/(2D); the group occupies a sub-torus with
  wraparound of sides ``torus_shape(p, D)``: of the ways to write p as a product of D whole
  factors, the one whose sides, largest first, are lexicographically smallest (16 -> 4x4,
  8 -> 4x2 on 2D, 2x2x2 on 3D; 12 -> 3x2x2 on 3D). Sides of 1 are dropped; a prime p gives
  one side, i.e. a ring along one dimension. Each dimension has W/D (both directions of its
  ring).

All-reduce algorithms (``CollectiveAlgorithm``):

* ring (switch, ring): 2(p-1) steps; each chip sends 2(p-1)/p * B; transfer 2(p-1)/p * B/W.
* ring on a torus, dimension-ordered: reduce-scatter along each side in turn (the payload
  shrinks by each side's size k), then all-gather in reverse. The buffer is cut into one slice
  per side and slice j visits the sides in an order rotated by j, so all sides work at once.
  Steps 2 * sum(k - 1); side d carries ``load_d = 2 * sum over slices of (k_d-1)/k_d * (slice
  bytes when it reaches d)`` and transfer = max_d load_d / (W/D). On an n x n (x n) torus
  that is 2(p-1)/p * B / (W * n_sides / D): the ring's bandwidth term with far fewer steps.
* tree, double binary tree (NCCL): 2 * ceil(log2 p) steps (reduce up, broadcast down; pipelining
  ignored); each chip sends 2B (as NCCL's tuner: tree bus bandwidth is half the ring's),
  transfer 2B / W on a switch. On a ring or torus a tree edge at level l joins ranks 2^l apart,
  which is ``distance(2^l)`` hops (torus distance in the group's layout), and the two trees use
  2 of the chip's 2D links: transfer 2B / (W/D).
* in_switch (NVLink SHARP / NVLS): only on a switch with ``switch_reduction`` and a runtime whose
  library uses it; each chip sends B to the switch and receives the reduced B once: transfer
  B / (W x the architecture's ``NVLS_EFFICIENCY``) after a fixed ``NVLS_LATENCY_US`` (NCCL's own tuning
  constants, so the auto choice leaves small messages to the tree and ring, as NCCL's tuner does).
* auto: the fastest of those available for this size (as NCCL's tuner picks): latency-optimal
  (tree, in-switch) for small messages, bandwidth-optimal (ring, in-switch) for large ones.

Other collectives:

* all-gather, reduce-scatter: half of the ring (or dimension-ordered) all-reduce: p-1 (or
  sum(k-1)) steps, (p-1)/p * B at W on a ring or switch.
* all-to-all: switch, pairwise exchange: p-1 steps, (p-1)/p * B at W. Ring or torus,
  store-and-forward along each side: sum(k-1) steps; side d carries
  ``B * S(k_d) / k_d`` with ``S(k) = sum_c min(c, k-c)`` (shortest-path hops), transfer
  max_d of that over W/D (ring: D = 1).
* send/receive to a neighbour: 1 step, B over one link's share: W on a switch, W/(N-1) on a
  mesh, W/(2D) on a ring (D = 1) or torus.

A collective over one chip, or of zero bytes, is a no-op and costs nothing (``NO_OP``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from enum import Enum
from types import MappingProxyType

from hwmodels.chip import CollectiveAlgorithm, HardwareConfig, HardwareError, Topology


class CollectiveError(HardwareError):
    """A collective that cannot be costed: unknown kind, bad size or group, missing algorithm."""


class Collective(str, Enum):
    allreduce = "allreduce"
    allgather = "allgather"
    reducescatter = "reducescatter"
    alltoall = "alltoall"
    sendrecv = "sendrecv"


@dataclass(frozen=True, slots=True)
class CollectiveCost:
    """A collective's latency (seconds, bandwidth-free) and transfer (seconds at usable link rate)."""

    latency_s: float
    transfer_s: float
    wire_bytes: float  # bytes each chip puts on its links (sent plus forwarded), all links together
    algorithm: str = "none"  # the algorithm costed: ring, tree, in_switch, pairwise, p2p; none for a no-op

    @property
    def seconds(self) -> float:
        return self.latency_s + self.transfer_s


NO_OP = CollectiveCost(0.0, 0.0, 0.0)

# In-switch reduction (NVLS) as NCCL's tuner models it (NVIDIA/nccl, src/graph/tuning.cc): a base latency
# of 25 us for NVLS within one node (2.22.3 - 2.31.2; 23 us in 2.18.3 - 2.20.3) and bus bandwidth scaled
# by nvlsEfficiency, per architecture: 0.85 for Hopper (sm_90) and NVSwitch 3, 0.74 for Blackwell
# (sm_100) and NVSwitch 4 (its links doubled, the switch's reduction rate less so). Another
# architecture's switch (a what-if) takes Hopper's.
NVLS_LATENCY_US = 25.0
NVLS_EFFICIENCY = MappingProxyType({"hopper": 0.85, "blackwell": 0.74})

TORUS_DIMS = {Topology.torus2d: 2, Topology.torus3d: 3}


def torus_shape(chips: int, dims: int) -> tuple[int, ...]:
    """Sides of the sub-torus a group of ``chips`` occupies on a ``dims``-D torus, largest first.

    The most even factorisation (largest sides as small as possible, compared largest first);
    sides of 1 are dropped, so a prime ``chips`` gives a single ring and one chip gives ().
    """
    def splits(n: int, parts: int, largest: int):
        if parts == 1:
            if n <= largest:
                yield (n,)
            return
        for f in range(min(n, largest), 0, -1):
            if n % f == 0:
                for rest in splits(n // f, parts - 1, f):
                    yield (f, *rest)

    best = min(splits(chips, dims, chips))
    return tuple(k for k in best if k > 1)


@dataclass(frozen=True, slots=True)
class Group:
    """p chips on the fabric: the ring sides algorithms run along and their bandwidth shares."""

    chips: int
    switched: bool  # every chip one hop from every other (a switch)
    sides: tuple[int, ...]  # ring sizes along each used dimension (one ring of p on a switch or ring)
    dims: int  # physical dimensions sharing the chip's links (switch and ring: 1)
    chip_Bps: float  # usable per-direction bandwidth of the chip towards the group (W; a mesh: its links to the group)
    hop_s: float  # latency of one step (one hop)
    base_s: float  # fixed software latency per collective
    mesh: bool = False  # one direct link to each peer (``chip_Bps`` is the group's p - 1 of them)
    nvls: float = NVLS_EFFICIENCY["hopper"]  # the switch's in-switch reduction efficiency (``nvls_efficiency``)

    @property
    def side_Bps(self) -> float:
        """Per-direction bandwidth one dimension's ring can use: W/D (W on a switch or ring)."""
        return self.chip_Bps / self.dims

    @property
    def link_Bps(self) -> float:
        """Per-direction bandwidth of the link to one neighbour (the whole W through a switch)."""
        if self.mesh:
            return self.chip_Bps / (self.chips - 1)
        return self.chip_Bps if self.switched else self.chip_Bps / (2 * self.dims)

    def distance(self, rank: int) -> int:
        """Hops from rank 0 to ``rank`` (torus distance in the mixed-radix layout; 1 on a switch)."""
        if self.switched:
            return 1 if rank else 0
        hops = 0
        for k in self.sides:
            rank, c = divmod(rank, k)
            hops += min(c, k - c)
        return hops

    def cost(self, steps: float, transfer_s: float, wire: float, algorithm: str) -> CollectiveCost:
        return CollectiveCost(self.base_s + steps * self.hop_s, transfer_s, wire, algorithm)


def group_of(chip: HardwareConfig, chips: int) -> Group:
    """How ``chips`` chips of ``chip``'s fabric are arranged (see the module docstring)."""
    usable = chip.link_bandwidth_Bps * chip.link_efficiency
    base = chip.collective_latency_us * 1e-6
    topology = Topology(chip.topology)
    if topology in TORUS_DIMS:
        dims = TORUS_DIMS[topology]
        return Group(chips, False, torus_shape(chips, dims), dims, usable, chip.link_latency_s, base)
    if topology is Topology.mesh:
        share = mesh_share(chips, chip.max_chips)
        return Group(chips, True, (chips,), 1, usable * share, chip.link_latency_s, base, mesh=True)
    return Group(chips, topology is Topology.switch, (chips,), 1, usable, chip.link_latency_s, base,
                 nvls=nvls_efficiency(chip))


def nvls_efficiency(chip: HardwareConfig) -> float:
    """NCCL's NVLS bandwidth efficiency for the chip's architecture (Hopper's for any other)."""
    return NVLS_EFFICIENCY.get(chip.architecture, NVLS_EFFICIENCY["hopper"])


def mesh_share(chips: int, max_chips: int) -> float:
    """The share of a mesh chip's links that join it to the other chips of a group of ``chips``: p-1 of N-1."""
    return (chips - 1) / (max_chips - 1) if max_chips > 1 else 1.0


# Algorithms ---------------------------------------------------------------------------------
def _half_ring(g: Group, nbytes: float, algorithm: str = "ring", twice: bool = False) -> CollectiveCost:
    """Reduce-scatter (or all-gather) of ``nbytes`` along the group's sides; ``twice``: both."""
    n = len(g.sides)
    load = [0.0] * n
    for j in range(n):  # slice j visits the sides in an order rotated by j
        cur = nbytes / n
        for t in range(n):
            d = (j + t) % n
            k = g.sides[d]
            load[d] += (k - 1) / k * cur
            cur /= k
    steps = sum(k - 1 for k in g.sides)
    times = 2 if twice else 1
    return g.cost(times * steps, times * max(load) / g.side_Bps, times * sum(load), algorithm)


def _tree(g: Group, nbytes: float) -> CollectiveCost:
    levels = math.ceil(math.log2(g.chips))
    hops = sum(g.distance(2**level) for level in range(levels))
    return g.cost(2 * hops, 2 * nbytes / g.side_Bps, 2 * nbytes, CollectiveAlgorithm.tree.value)


def _in_switch(g: Group, nbytes: float) -> CollectiveCost:
    cost = g.cost(2, nbytes / (g.chip_Bps * g.nvls), nbytes, CollectiveAlgorithm.in_switch.value)
    return replace(cost, latency_s=cost.latency_s + NVLS_LATENCY_US * 1e-6)


def _alltoall(g: Group, nbytes: float) -> CollectiveCost:
    p = g.chips
    if g.switched:
        wire = (p - 1) / p * nbytes
        return g.cost(p - 1, wire / g.chip_Bps, wire, "pairwise")
    load = [nbytes * sum(min(c, k - c) for c in range(k)) / k for k in g.sides]
    return g.cost(sum(k - 1 for k in g.sides), max(load) / g.side_Bps, sum(load), "pairwise")


def _sendrecv(g: Group, nbytes: float) -> CollectiveCost:
    return g.cost(1, nbytes / g.link_Bps, nbytes, "p2p")


def allreduce_options(chip: HardwareConfig, nbytes: float, chips: int,
                      in_switch: bool = True) -> dict[CollectiveAlgorithm, CollectiveCost]:
    """Every all-reduce algorithm ``chip``'s fabric offers for ``chips`` chips, with its cost.

    Ring (dimension-ordered on a torus) and tree everywhere; in-switch reduction only on a
    switch with ``switch_reduction`` and where the runtime's library uses it (``in_switch``).
    Inputs as ``collective_time``; the no-op is not listed.
    """
    _check(chip, nbytes, chips)
    if chips == 1 or nbytes == 0:
        return {}
    g = group_of(chip, chips)
    options = {
        CollectiveAlgorithm.ring: _half_ring(g, nbytes, twice=True),
        CollectiveAlgorithm.tree: _tree(g, nbytes),
    }
    if g.switched and not g.mesh and chip.switch_reduction and in_switch:
        options[CollectiveAlgorithm.in_switch] = _in_switch(g, nbytes)
    return {name: _ramped(chip, nbytes, option) for name, option in options.items()}


def collective_time(
    chip: HardwareConfig,
    kind: Collective | str,
    nbytes: float,
    chips: int,
    algorithm: CollectiveAlgorithm | str | None = None,
    in_switch: bool = True,
) -> CollectiveCost:
    """Cost of one ``kind`` collective with an ``nbytes`` payload over ``chips`` chips.

    Args:
        chip: the chip and its fabric (topology, link bandwidth and latency, efficiency).
        kind: a ``Collective`` or its name.
        nbytes: payload in bytes (see the module docstring for what it is per collective).
        chips: chips in the group, 1 .. ``chip.max_chips``.
        algorithm: all-reduce algorithm; None uses ``chip.allreduce_algorithm``. Other
            collectives have one algorithm per topology and ignore it.
        in_switch: the runtime's library may reduce in the switch (False: 2023 stacks, NCCL < 2.17).

    Returns:
        The cost; ``NO_OP`` (zero) for one chip or zero bytes.

    Raises:
        CollectiveError: an unknown kind or algorithm, a negative or non-finite payload, a
            group of fewer than 1 or more than ``max_chips`` chips, or ``in_switch`` where the
            fabric has no switch reduction.
    """
    kind = _parse(Collective, kind, "collective")
    _check(chip, nbytes, chips)
    if chips == 1 or nbytes == 0:
        return NO_OP
    return _collective(chip, kind, nbytes, chips, algorithm, in_switch)


def bandwidth_ramp(chip: HardwareConfig, nbytes: float) -> float:
    """How much slower than the plateau a collective of ``nbytes`` per chip moves its bytes.

    ``sqrt(1 + (link_saturation_MB / size) ** (2 link_ramp_exponent))``: small messages run on
    fewer channels and lighter protocols, so the achieved bandwidth grows as a power of the size
    (measured NCCL curves on A100 climb roughly as the square root of the size up to tens of MB);
    large ones reach ``link_efficiency`` of the link. The two asymptotes, the power law and the
    plateau, meet smoothly (their 2-norm) around the saturation size, as measured curves bend;
    the transfer time still grows with the size for exponents up to 1. An exponent of 0 turns
    the ramp off.
    """
    if chip.link_ramp_exponent == 0:
        return 1.0
    saturation = chip.link_saturation_MB * 1e6
    return math.sqrt(1.0 + math.exp(2 * chip.link_ramp_exponent * (math.log(saturation) - math.log(nbytes))))


def _ramped(chip: HardwareConfig, nbytes: float, cost: CollectiveCost) -> CollectiveCost:
    return replace(cost, transfer_s=cost.transfer_s * bandwidth_ramp(chip, nbytes))


def _collective(chip: HardwareConfig, kind: Collective, nbytes: float, chips: int, algorithm,
                in_switch: bool = True) -> CollectiveCost:
    g = group_of(chip, chips)
    if kind is Collective.allreduce:
        choice = _parse(CollectiveAlgorithm, chip.allreduce_algorithm if algorithm is None else algorithm,
                        "all-reduce algorithm")
        options = allreduce_options(chip, nbytes, chips, in_switch)
        if choice is CollectiveAlgorithm.auto:
            order = list(CollectiveAlgorithm)
            return min(options.items(), key=lambda item: (item[1].seconds, order.index(item[0])))[1]
        if choice not in options:
            raise CollectiveError(
                f"all-reduce algorithm {choice.value} needs topology switch with switch_reduction=true and a "
                "runtime with in_switch_reduction=true "
                f"(hardware '{chip.name}' has topology {Topology(chip.topology).value}, "
                f"switch_reduction={chip.switch_reduction}); choose auto, ring or tree"
            )
        return options[choice]
    if kind in (Collective.allgather, Collective.reducescatter):
        return _ramped(chip, nbytes, _half_ring(g, nbytes))
    if kind is Collective.alltoall:
        return _ramped(chip, nbytes, _alltoall(g, nbytes))
    return _ramped(chip, nbytes, _sendrecv(g, nbytes))


def _parse(enum: type[Enum], value, what: str):
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(m.value for m in enum)
        raise CollectiveError(f"unknown {what} '{getattr(value, 'value', value)}'; known: {known}") from None


def _check(chip: HardwareConfig, nbytes: float, chips: int) -> None:
    if isinstance(nbytes, bool) or not isinstance(nbytes, numbers.Real) or not math.isfinite(nbytes) or nbytes < 0:
        raise CollectiveError(f"a collective's payload must be a finite number of bytes >= 0 (got {nbytes!r})")
    if isinstance(chips, bool) or not isinstance(chips, numbers.Integral) or chips < 1:
        raise CollectiveError(f"a collective needs a whole number of chips >= 1 (got {chips!r})")
    if chips > chip.max_chips:
        raise CollectiveError(
            f"a collective over {chips} chips exceeds the {chip.max_chips} chips hardware '{chip.name}' joins "
            "(hardware.max_chips); use fewer chips or raise max_chips"
        )
