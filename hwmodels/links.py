"""Collectives over the chip-to-chip fabric, as an alpha-beta cost.

Each collective is split into a latency part (``steps * link_latency``: per-step handshakes
and hops, which do not consume bandwidth) and a transfer part (bytes each chip sends over its
links, divided by the per-direction link bandwidth). Ring algorithms, on p chips with a
payload of B bytes per chip:

* all-reduce: 2(p-1) steps, each chip sends 2(p-1)/p * B bytes;
* all-gather / reduce-scatter: p-1 steps, (p-1)/p * B bytes (B is the full gathered size).

On a ring or torus the same ring algorithm runs over the physical ring, so only the hop count
per step differs (1 on a switch or a ring; a torus embeds the ring with 1 hop per step too).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hwmodels.chip import HardwareConfig


class Collective(str, Enum):
    allreduce = "allreduce"
    allgather = "allgather"
    reducescatter = "reducescatter"


@dataclass(frozen=True, slots=True)
class CollectiveCost:
    """A collective's latency (seconds, bandwidth-free) and transfer (seconds at full link rate)."""

    latency_s: float
    transfer_s: float
    wire_bytes: float  # bytes each chip sends

    @property
    def seconds(self) -> float:
        return self.latency_s + self.transfer_s


def collective_time(chip: HardwareConfig, kind: Collective, nbytes: float, chips: int) -> CollectiveCost:
    """Cost of one ``kind`` collective with ``nbytes`` payload per chip over ``chips`` chips.

    A collective over one chip is a no-op and costs nothing.
    """
    if chips <= 1 or nbytes <= 0:
        return CollectiveCost(0.0, 0.0, 0.0)
    p = chips
    if kind is Collective.allreduce:
        steps, wire = 2 * (p - 1), 2 * (p - 1) / p * nbytes
    else:
        steps, wire = p - 1, (p - 1) / p * nbytes
    return CollectiveCost(steps * chip.link_latency_s, wire / chip.link_bandwidth_Bps, wire)
