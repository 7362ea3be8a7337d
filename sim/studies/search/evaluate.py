"""One design: the run config with the searched values set, simulated, and its metrics.

Metrics are the run's summary (the ``summarize`` of its kind of run, sim/studies/kinds.py)
flattened to dotted names, plus figures of the design itself:

* ``chip_area_mm2``, ``die_area_mm2``, ``chip_cost_usd`` (hwmodels/area.py, cost.py);
* ``max_power_W``: static power plus the larger of the arrays at their sustained rate (peak x
  ``matmul_efficiency``, in the activation format) and HBM at its sustained bandwidth: a TDP-like
  figure of the design, the same for every workload (a run's ``peak_power_W`` is only what its
  own ops reached). It gives 733 W for h100_sxm (board power 700 W: sustained clocks are held to the
  board power in a run, ``power.cap``) and 416 W for a100_80gb (400 W);
* ``chips`` and ``system_cost_usd`` (chips x chip cost).

A design the model code rejects (a die over the reticle, a model that does not fit, a
tensor-parallel degree that does not divide the heads) raises :class:`Infeasible` with the reason.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hwmodels.area import die_area
from hwmodels.chip import HardwareError
from hwmodels.cost import chip_cost
from hwmodels.energy import chip_energy
from sim.config.compose import to_run_config
from sim.config.schema import AppConfig, RunConfig, RunError
from sim.config.template import Template
from sim.studies.kinds import WORKLOADS
from sim.studies.sweep.table import flatten
from workloads.model import ModelError


class Infeasible(Exception):
    """A design that cannot be built or run, or that a figure of the design itself rules out; the message says why.
    ``figures``: the design's own figures (``design_metrics``) where they were worked out."""

    def __init__(self, reason: str, figures: dict | None = None) -> None:
        super().__init__(reason)
        self.figures = figures


def set_key(tree: dict, key: str, value) -> None:
    node = tree
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def build(base: dict, overrides: dict, template: Template | None = None) -> RunConfig:
    """The typed RunConfig of ``base`` (the run's part of a plain composed config, interpolations
    kept) with ``overrides`` (dotted keys) set; through ``template`` (a Template of ``base``: the
    same config, without OmegaConf per design) where it can."""
    try:
        cfg = template.build(overrides) if template is not None else None
        if cfg is not None:
            return cfg
        tree = copy.deepcopy(base)
        for key, value in overrides.items():
            set_key(tree, key, value)
        return to_run_config(OmegaConf.merge(OmegaConf.structured(AppConfig), tree))  # tool keys allowed, dropped
    except (HardwareError, ModelError, RunError) as err:
        raise Infeasible(str(err)) from None
    except OmegaConfBaseException as err:
        raise Infeasible(str(err).splitlines()[0]) from None


def space_errors(values: dict[str, list], base: dict) -> str | None:
    """Why a searched config key or one of its values (choices, or a range's ends) cannot be set in the
    config's schema (an unknown key, a value of the wrong type), before any trial runs; None when all can.
    ``base`` (the composed config, plain) offers the close key names."""
    import difflib

    schema = OmegaConf.structured(AppConfig)
    for key, candidates in values.items():
        node, leaf_key = _section(schema, key)
        for value in candidates:
            tree: dict = {}
            set_key(tree, leaf_key, value)
            try:
                OmegaConf.merge(node, tree)
            except OmegaConfBaseException as err:
                first = str(err).splitlines()[0]
                parent, _, leaf = key.rpartition(".")
                node = base
                for part in parent.split(".") if parent else []:
                    node = node.get(part) if isinstance(node, dict) else None
                names = list(node) if isinstance(node, dict) else []
                close = difflib.get_close_matches(leaf, names, n=1) if leaf not in names else []
                hint = f" (did you mean '{parent}.{close[0]}'?)" if close else ""
                return f"search.space.{key}: {first}{hint}"
    return None


def _section(schema, key: str) -> tuple:
    """The schema's section holding ``key`` and the key within it (merging a value into the section alone checks
    it as merging it into the whole schema does, at a fraction of the cost); the whole schema for a key whose
    sections are not all there (its merge then says which is missing)."""
    parts = key.split(".")
    node = schema
    for i, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, DictConfig) and part in node else None
        if not isinstance(child, DictConfig):
            return (schema, key) if i == 0 else (node, ".".join(parts[i:]))
        node = child
    return node, parts[-1]


def design_metrics(cfg: RunConfig) -> dict:
    chip = cfg.hardware
    area = die_area(chip)
    energy = chip_energy(chip, area.total_mm2)
    act = cfg.precision.activations
    arrays = energy.work(matrix_flops=chip.peak_flops(act) * chip.matmul_efficiency,
                         matrix_dtype=chip.matmul_dtype(act)).total_J  # one second at the sustained rate
    hbm = energy.work(hbm_bytes=chip.hbm_bandwidth_Bps * chip.hbm_efficiency).total_J
    full = max(arrays, hbm)
    return {"chip_area_mm2": area.total_mm2, "die_area_mm2": area.die_mm2,
            "chip_cost_usd": chip_cost(chip, area).total_usd,
            "max_power_W": full + energy.static_W, "peak_matrix_TFLOPS": chip.peak_flops(act) / 1e12}


DESIGN_FIGURES = frozenset({"chip_area_mm2", "die_area_mm2", "chip_cost_usd", "max_power_W", "peak_matrix_TFLOPS"})
# what ``design_metrics`` gives: figures of the chip alone (the run's chip count is the summary's: disaggregated
# serving adds its own)


def rule_out(cfg: RunConfig, limits: Sequence = ()) -> None:
    """Raises Infeasible, with the design's own figures (``design_metrics``), when it breaks one of ``limits`` that
    is on DESIGN_FIGURES (a constraint: ``metric``, ``violation(value)`` > 0 when broken): no run's metrics could
    make it feasible, so it is not simulated. Constraints on other metrics wait for the run."""
    if not limits:
        return
    figures = design_metrics(cfg)
    broken = [str(c) for c in limits if c.metric in figures and c.violation(figures[c.metric]) > 0]
    if broken:
        raise Infeasible(f"violates {', '.join(broken)} (a figure of the design itself: not simulated)", figures)


def evaluate(base: dict, overrides: dict, template: Template | None = None, limits: Sequence = ()) -> dict:
    """Metrics of the design ``overrides`` applied to ``base``; raises Infeasible (also, unsimulated, for a design
    that breaks one of ``limits``, constraints on its own figures: ``rule_out``)."""
    cfg = build(base, overrides, template)
    rule_out(cfg, limits)
    return evaluate_config(cfg)


def evaluate_config(cfg: RunConfig) -> dict:
    """Metrics of the built design ``cfg``; raises Infeasible."""
    kind = WORKLOADS[cfg.workload.kind]  # the simulation and summary of the run's kind
    try:
        result = kind.simulate(cfg)
        summary = kind.summarize(result).as_dict()
        chips = summary["run"]["chips"]  # every replica's (parallel.dp), as the summary's energy and dollars
    except (HardwareError, ModelError, RunError) as err:
        raise Infeasible(str(err)) from None
    metrics = {k: float(v) for k, v in flatten(summary).items()
               if isinstance(v, (int, float)) and not k.startswith("run.")}
    metrics.update(design_metrics(cfg))
    metrics["chips"] = float(chips)
    metrics["system_cost_usd"] = chips * metrics["chip_cost_usd"]
    return metrics
