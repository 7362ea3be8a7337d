"""Typed configs of a grid's points without composing each one: the swept fields set in place.

Composing and converting a config (OmegaConf, then the schema's checks) costs about a millisecond;
a grid of 100,000 points cannot spend that per point. ``point_configs`` converts each group's
config once and sets each point's swept values on it with ``dataclasses.replace`` along the dotted
key (``hardware.freq_GHz``), which re-runs each part's own checks (``__post_init__``) as the
conversion would. Chips with the same swept hardware values are the same object, so the batch path
costs each distinct chip's area and power budget once.

It is only used where it gives exactly the configs composition gives: every swept key must name a
field of the run's dataclasses, and ``equivalent`` compares the first and last point built both
ways; otherwise (an interpolation that depends on a swept field, a ``system`` key that rewrites the
chip) the grid composes each point as before.
"""

from __future__ import annotations

import copy
import dataclasses
import enum

from omegaconf import DictConfig, OmegaConf

from sim.config.compose import to_run_config
from sim.config.schema import RunConfig


def settable(key: str, cfg: RunConfig) -> bool:
    """Whether ``key`` names a (nested) dataclass field of ``cfg`` that is not a whole part."""
    node, parts = cfg, key.split(".")
    for part in parts:
        if not dataclasses.is_dataclass(node) or part not in {f.name for f in dataclasses.fields(node)}:
            return False
        node = getattr(node, part)
    return not dataclasses.is_dataclass(node) and parts[0] != "system"


def _typed(old, value):
    """``value`` as the field's type: what OmegaConf's conversion gives for the schema's field."""
    if isinstance(old, enum.Enum):
        return type(old)(value)
    if isinstance(old, bool) or isinstance(value, bool):
        return value
    if isinstance(old, float) and isinstance(value, int):
        return float(value)
    if isinstance(old, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _set(node, parts: list[str], value):
    if len(parts) == 1:
        return dataclasses.replace(node, **{parts[0]: _typed(getattr(node, parts[0]), value)})
    child = getattr(node, parts[0])
    return dataclasses.replace(node, **{parts[0]: _set(child, parts[1:], value)})


class ConfigBuilder:
    """Builds a point's RunConfig from its group's converted config; points with the same values of a
    part (``hardware``, ``workload``...) share that part's object, so the batch reads it once."""

    def __init__(self, base: RunConfig) -> None:
        self.base = base
        self._parts: dict[tuple, object] = {}

    def build(self, point: dict) -> RunConfig:
        by_part: dict[str, list] = {}
        for key, value in point.items():
            part, _, rest = key.partition(".")
            by_part.setdefault(part, []).append((rest, value))
        changed = {}
        for part, items in by_part.items():
            if not items[0][0]:  # a top-level scalar (fidelity, seed)
                changed[part] = _typed(getattr(self.base, part), items[0][1])
                continue
            cache_key = (part, tuple(items))
            obj = self._parts.get(cache_key)
            if obj is None:
                obj = getattr(self.base, part)
                for rest, value in items:
                    obj = _set(obj, rest.split("."), value)
                self._parts[cache_key] = obj
            changed[part] = obj
        if not changed:
            return self.base
        cfg = copy.copy(self.base)  # RunConfig has no checks of its own; its parts were checked when made
        for part, obj in changed.items():
            setattr(cfg, part, obj)
        return cfg


def composed(dcfg: DictConfig, point: dict, is_group) -> RunConfig:
    """The point's config the slow way: the values set on the composed config, then converted."""
    dcfg = copy.deepcopy(dcfg)
    for key, value in point.items():
        if not is_group(key):
            OmegaConf.update(dcfg, key, value, merge=False)
    return to_run_config(dcfg)


def equivalent(builder: ConfigBuilder, dcfg: DictConfig, points: list[dict], is_group) -> bool:
    """Whether building the first and last point in place gives the composed configs."""
    for point in {0: points[0], 1: points[-1]}.values():
        fields = {k: v for k, v in point.items() if not is_group(k)}
        try:
            fast = builder.build(fields)
        except Exception:  # noqa: BLE001 - a point that fails either way is checked by composing
            return False
        try:
            slow = composed(dcfg, point, is_group)
        except Exception:  # noqa: BLE001
            return False
        if fast != slow:
            return False
    return True
