"""Where a replica's ranks sit: which collectives stay in the scale-up domain and which cross the network.

Ranks are numbered tensor-parallel first, then the attention groups of an expert-parallel group
(``ep / tp`` groups of ``tp`` chips, each running attention on its own share of the batch), then
pipeline stages. A stage is ``width = max(tp, ep)`` consecutive chips; a scale-up domain holds
``domain`` chips (``hardware.max_chips``, which ``system.scale_up.chips`` sets).

* TP stays inside one domain: ``tp > domain`` is refused.
* An EP group wider than a domain spans ``ep / domain`` whole domains; its dispatch and combine
  all-to-alls are hierarchical (hwmodels/network.py).
* Stages narrower than a domain are packed ``domain // width`` to a domain (a stage never
  straddles two); a pipeline send between stages in different domains crosses the network.
* Data-parallel replicas run no collective: they are independent copies and need no placement.

A replica needing more than one domain needs ``system.scale_out`` (its ``nodes`` caps the domains;
null: as many as the layout needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwmodels.network import Network
from sim.config.errors import RunError

if TYPE_CHECKING:
    from sim.config.schema import RunConfig


@dataclass(frozen=True)
class Layout:
    domain: int  # chips in one scale-up domain
    width: int  # chips per pipeline stage: max(tp, ep)
    domains: int  # scale-up domains one replica uses
    ep_nodes: int  # domains one EP group spans (1: inside one)
    send_nodes: tuple[int, ...]  # per stage boundary: 1 (the next stage is in the same domain) or 2

    @property
    def chips(self) -> int:
        """Chips of one replica."""
        return self.width * (len(self.send_nodes) + 1)


def attention_groups(tp: int, ep: int) -> int:
    """Groups of ``tp`` chips in an EP group, each running attention on its own share of the batch."""
    return ep // tp if ep > tp else 1


def ep_domains(ep: int, domain: int) -> int:
    """Scale-up domains an EP group of ``ep`` chips spans."""
    return ep // domain if ep > domain else 1


def layout_of(cfg: RunConfig) -> Layout:
    """The replica's layout; RunError with the fix when it does not fit the system."""
    par, chip, system = cfg.parallel, cfg.hardware, cfg.system
    domain, tp, ep, pp = chip.max_chips, par.tp, par.ep, par.pp
    if tp > domain:
        raise RunError(f"parallel.tp={tp} exceeds the {domain} chips one {chip.name} fabric joins "
                       "(hardware.max_chips, or system.scale_up.chips): tensor parallelism stays inside the "
                       "scale-up domain; lower parallel.tp and cross domains with parallel.pp or parallel.ep")
    width = max(tp, ep)
    if width > domain:
        if width % domain:
            raise RunError(f"parallel.ep={ep} spans scale-up domains of {domain} chips: it must fill whole domains "
                           f"(a multiple of {domain}) or fit in one")
        domains, sends = pp * (width // domain), (2,) * (pp - 1)
    else:
        per = domain // width  # stages per domain
        domains = -(-pp // per)
        sends = tuple(1 if s // per == (s + 1) // per else 2 for s in range(pp - 1))
    out = system.scale_out
    if domains > 1 and out is None:
        raise RunError(f"this layout (tp={tp}, ep={ep}, pp={pp}) needs {domains} scale-up domains of {domain} chips, "
                       f"but system '{system.name}' has no scale-out network; set system.scale_out (as "
                       "conf/system/dgx_h100.yaml does) or fit the run in one domain")
    if out is not None and out.nodes is not None and domains > out.nodes:
        raise RunError(f"this layout (tp={tp}, ep={ep}, pp={pp}) needs {domains} scale-up domains of {domain} chips, "
                       f"but system.scale_out.nodes={out.nodes}; raise it or use fewer chips")
    return Layout(domain, width, domains, ep_domains(ep, domain), sends)


def network(cfg: RunConfig) -> Network | None:
    """The system's scale-out network as hwmodels/network.py costs it; None where it has none."""
    out = cfg.system.scale_out
    return out.network() if out is not None else None
