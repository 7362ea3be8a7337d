"""The system around the chip: chips per node, the host CPU, the scale-up domain, the scale-out network.

A system preset (conf/system/, ``# @package _global_``) selects its chip (``hardware``) and its
host (``host``, conf/host/) through Hydra's defaults list and fills ``system``. Precedence, last
wins: the system preset's chip and host < an experiment's ``override /hardware`` < the command
line's ``hardware=<chip>`` / ``host=<cpu>``; so ``hardware=<chip>`` swaps the chip inside the
chosen system, exactly as before systems existed (pick ``system=<preset>`` for a chip's own server).

The scale-up domain's fields are, in the presets, interpolations of the chip's
(``${hardware.link_bandwidth_GBps}`` ...), so ``hardware.*`` overrides flow into them. A value set
explicitly (``system.scale_up.link_bandwidth_GBps=900``) wins over the chip's and is written onto
the chip when the run config is built (:func:`apply_scale_up`), since the engine reads the chip.
Null (the default outside presets) means the chip's value.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

from omegaconf import DictConfig, OmegaConf, open_dict

from hwmodels.chip import Topology
from hwmodels.network import Network, NetworkTopology
from sim.config.errors import RunError, check_at_most

# system.scale_up field -> the chip field it sets (hwmodels.chip.HardwareConfig)
SCALE_UP_ON_CHIP = {"link_bandwidth_GBps": "link_bandwidth_GBps", "topology": "topology", "chips": "max_chips"}


@dataclass
class HostConfig:
    """The host CPU of a node (conf/host/). A runtime's host costs scale as the inverse of
    ``single_thread_score`` (sim/engine/records.py HostCosts.of)."""

    name: str = "unspecified"
    description: str = ""
    sockets: int = 2  # CPUs per node
    cores_per_socket: int = 64
    boost_GHz: float = 3.0  # maximum single-core clock
    single_thread_score: Optional[float] = None  # one benchmark's single-thread score; null: unknown
    benchmark: str = ""  # the benchmark that score comes from (one benchmark for every host preset)

    def __post_init__(self) -> None:
        if self.sockets < 1 or self.cores_per_socket < 1 or not self.boost_GHz > 0:
            raise RunError(f"system.host: sockets and cores_per_socket must be >= 1 and boost_GHz > 0 (got "
                           f"{self.sockets}, {self.cores_per_socket}, {self.boost_GHz})")
        if self.single_thread_score is not None and not self.single_thread_score > 0:
            raise RunError(f"system.host.single_thread_score must be > 0 (got {self.single_thread_score})")


@dataclass
class ScaleUpConfig:
    """The chips one fabric joins (NVLink + NVSwitch, a TPU torus); null fields: the chip's."""

    link_bandwidth_GBps: Optional[float] = None  # per chip, per direction (hardware.link_bandwidth_GBps)
    topology: Optional[Topology] = None  # hardware.topology
    chips: Optional[int] = None  # chips in the domain (hardware.max_chips)

    def __post_init__(self) -> None:
        if self.link_bandwidth_GBps is not None and not self.link_bandwidth_GBps > 0:
            raise RunError(f"system.scale_up.link_bandwidth_GBps must be > 0 (got {self.link_bandwidth_GBps})")
        if self.chips is not None and self.chips < 1:
            raise RunError(f"system.scale_up.chips must be >= 1 (got {self.chips})")


@dataclass
class ScaleOutConfig:
    """The network between scale-up domains (InfiniBand, RoCE): one NIC per chip (hwmodels/network.py).

    ``nodes`` counts scale-up domains (a DGX node, an NVL72 rack); null: as many as the run's
    parallel layout needs (sim/config/placement.py), a number caps them.
    """

    name: str = "none"
    nic_bandwidth_GBps: float = 50.0  # per chip, per direction (one 400 Gb/s NIC per GPU: 50 GB/s)
    nic_efficiency: float = 0.9  # usable fraction of the NIC rate for large messages
    latency_us: float = 4.0  # one inter-node step through one switch
    switch_hop_us: float = 0.25  # each further switch on a path (leaf -> spine -> leaf: two more)
    topology: NetworkTopology = NetworkTopology.rail_optimized
    nodes: Optional[int] = None

    def __post_init__(self) -> None:
        if not self.nic_bandwidth_GBps > 0 or not 0 < self.nic_efficiency <= 1:
            raise RunError(f"system.scale_out: nic_bandwidth_GBps must be > 0 and nic_efficiency in (0, 1] "
                           f"(got {self.nic_bandwidth_GBps}, {self.nic_efficiency})")
        if not self.latency_us >= 0 or not self.switch_hop_us >= 0:
            raise RunError(f"system.scale_out: latency_us and switch_hop_us must be >= 0 "
                           f"(got {self.latency_us}, {self.switch_hop_us})")
        if self.nodes is not None and self.nodes < 1:
            raise RunError(f"system.scale_out.nodes must be >= 1 or null (got {self.nodes})")
        check_at_most("system.scale_out.nic_bandwidth_GBps", self.nic_bandwidth_GBps, 1e5,
                      "GB/s per chip; 2025 NICs carry 100 (800 Gb/s)")
        check_at_most("system.scale_out.latency_us", self.latency_us, 1e6, "microseconds per network step")
        check_at_most("system.scale_out.switch_hop_us", self.switch_hop_us, 1e6, "microseconds per switch")
        check_at_most("system.scale_out.nodes", self.nodes or 1, 1e6, "scale-up domains")

    def network(self) -> Network:
        """The network as hwmodels/network.py costs it."""
        return Network(self.nic_bandwidth_GBps, self.nic_efficiency, self.latency_us, self.switch_hop_us,
                       NetworkTopology(self.topology))


@dataclass
class SystemConfig:
    """A chip in its system (conf/system/): the node it sits in, the host, the fabrics."""

    name: str = "custom"
    description: str = ""
    chips_per_node: int = 8
    host: HostConfig = field(default_factory=HostConfig)
    scale_up: ScaleUpConfig = field(default_factory=ScaleUpConfig)
    scale_out: Optional[ScaleOutConfig] = None  # null: one scale-up domain, no network beyond it

    def __post_init__(self) -> None:
        if self.chips_per_node < 1:
            raise RunError(f"system.chips_per_node must be >= 1 (got {self.chips_per_node})")


def apply_scale_up(dcfg: DictConfig) -> DictConfig:
    """``dcfg``, or a copy of it with every explicitly set ``system.scale_up`` value written onto the chip.

    A field that is still an interpolation (the presets' ``${hardware...}``) or null is the
    chip's already; when every field is, ``dcfg`` itself is returned.
    """
    scale_up = OmegaConf.select(dcfg, "system.scale_up")
    if scale_up is None or OmegaConf.select(dcfg, "hardware") is None:
        return dcfg
    explicit = {chip_key: scale_up[key] for key, chip_key in SCALE_UP_ON_CHIP.items()
                if key in scale_up and not OmegaConf.is_interpolation(scale_up, key) and scale_up[key] is not None}
    if not explicit:
        return dcfg
    dcfg = copy.deepcopy(dcfg)
    with open_dict(dcfg.hardware):
        for chip_key, value in explicit.items():
            dcfg.hardware[chip_key] = value
    return dcfg
