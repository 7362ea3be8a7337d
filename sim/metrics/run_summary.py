"""The typed summary of a run, single batch or serving: what summary.json holds.

A :class:`Summary` is the kind's own headline figures (latencies and throughput of a batch, or
percentiles, goodput and queue figures of a request stream) beside the parts every run has,
computed once in sim/metrics/shared.py: utilisation, energy, the chip's area and cost, prices,
and the ``run`` node. :meth:`Summary.as_dict` is summary.json (its keys are what the console,
the sweep table and the metric catalog, sim/metrics/catalog.py, name).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.config.schema import WorkloadKind
from sim.metrics.shared import ChipFacts, Energy, Pricing, Utilisation


@dataclass(frozen=True)
class Summary:
    """One run's numbers.

    Attributes:
        kind: which kind of run made them.
        figures: the kind's own headline figures, in summary.json's order.
        utilisation: achieved over peak rates.
        energy: energy and power.
        pricing: chip-hour price, run cost, tokens per dollar and per watt.
        chip: the chip's area and cost to make.
        run: what ran and what simulating it cost (the ``run`` node).
        energy_extra: the kind's own energy figures beside the shared ones (batch: power by phase).
        top_extra: the kind's own top-level economics (batch: ``peak_power_W``).
    """

    kind: WorkloadKind
    figures: dict
    utilisation: Utilisation
    energy: Energy
    pricing: Pricing
    chip: ChipFacts
    run: dict
    energy_extra: dict = field(default_factory=dict)
    top_extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """summary.json's content (without the per-kind tables and the provenance the writer adds)."""
        price = self.pricing.top()
        return {
            **self.figures,
            "utilisation": self.utilisation.as_dict(),
            **self.energy.top(),
            **self.top_extra,
            "chip_area_mm2": self.chip.econ.area.total_mm2,
            **price,
            "energy": {**self.energy.detail(), **self.energy_extra},
            "area": self.chip.area(),
            "cost": {**self.chip.cost(), **self.pricing.api_detail()},
            "run": self.run,
        }
