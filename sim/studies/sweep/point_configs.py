"""Typed configs of a grid's points without composing each one: the swept fields set in place.

Composing and converting a config (OmegaConf, then the schema's checks) costs about a millisecond;
a grid of 100,000 points cannot spend that per point. ``point_configs`` converts each group's
config once and sets the swept values on it with ``dataclasses.replace`` along the dotted key
(``hardware.freq_GHz``), which re-runs each part's own checks (``__post_init__``) as the
conversion would. A grid is a product of axes, so each part (``hardware``, ``workload``...) is built
once per distinct combination of *its own* axes (``PartTable``: 10,000 chips for 100 bandwidths x
100 clocks, not one per point, the values set in key order, each prefix built once), and the points
with the same values share that part's object, so the batch path costs each distinct chip once.

It is only used where it gives exactly the configs composition gives: every swept key must name a
field of the run's dataclasses, and ``equivalent`` compares the first and last point built both
ways; otherwise (an interpolation that depends on a swept field, a ``system`` key that rewrites the
chip) the grid composes each point as before.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import itertools

import numpy as np
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


def _error(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


class ConfigBuilder:
    """Builds points' RunConfigs from their group's converted config; points with the same values of a
    part (``hardware``, ``workload``...) share that part's object, so the batch reads it once."""

    def __init__(self, base: RunConfig) -> None:
        self.base = base
        self._parts: dict[tuple, object] = {}  # (part, (rest, value), ...) -> object or the exception

    def part(self, part: str, items: tuple) -> object:
        """The part with ``items`` ((dotted rest, value), in key order) set, or the exception it raised;
        each prefix of ``items`` is built once (the values are set one after another, as before)."""
        key = (part, items)
        if key in self._parts:
            return self._parts[key]
        if not items[0][0]:  # a top-level scalar (fidelity, seed)
            try:
                obj = _typed(getattr(self.base, part), items[0][1])
            except Exception as err:  # noqa: BLE001 - a value its type rejects fails the point
                obj = err
        else:
            before = self.part(part, items[:-1]) if len(items) > 1 else getattr(self.base, part)
            if isinstance(before, Exception):
                obj = before
            else:
                try:
                    obj = _set(before, items[-1][0].split("."), items[-1][1])
                except Exception as err:  # noqa: BLE001 - a value the part's checks reject fails the point
                    obj = err
        self._parts[key] = obj
        return obj

    def assemble(self, objs: list[tuple[str, object]]) -> RunConfig:
        """The base config with the parts ``objs`` ((name, object), none an exception) in place."""
        if not objs:
            return self.base
        cfg = copy.copy(self.base)  # RunConfig has no checks of its own; its parts were checked when made
        for part, obj in objs:
            setattr(cfg, part, obj)
        return cfg

    def build(self, point: dict) -> RunConfig:
        """One point's config; raises the first part's error, in key order."""
        by_part: dict[str, list] = {}
        for key, value in point.items():
            part, _, rest = key.partition(".")
            by_part.setdefault(part, []).append((rest, value))
        objs = [(part, self.part(part, tuple(items))) for part, items in by_part.items()]
        for _, obj in objs:
            if isinstance(obj, Exception):
                raise obj
        return self.assemble(objs)


class PartTable:
    """The configs of a product of axes (``keys``, each with ``values``), one per point in product order
    (the first axis slowest): each part built once per combination of its own axes' values."""

    def __init__(self, builder: ConfigBuilder, keys: list[str], values: list[list]) -> None:
        self.builder, self.keys, self.values = builder, keys, values
        parts: dict[str, list[int]] = {}
        for a, key in enumerate(keys):
            parts.setdefault(key.partition(".")[0], []).append(a)
        self.parts = parts  # part -> its axes (positions in keys), in key order

    def configs(self, codes: np.ndarray) -> tuple[list[int], list[RunConfig], dict[int, str]]:
        """(positions built, their configs, {position: reason} of those a part's checks rejected) for the
        points whose value indices are the columns of ``codes`` (axes x points)."""
        per_part = []
        for part, axes in self.parts.items():
            shape = [len(self.values[a]) for a in axes]
            table = []
            for combo in itertools.product(*(range(n) for n in shape)):
                items = tuple((self.keys[a].partition(".")[2], self.values[a][c]) for a, c in zip(axes, combo,
                                                                                                  strict=True))
                table.append(self.builder.part(part, items))
            flat = np.ravel_multi_index(tuple(codes[a] for a in axes), shape) if axes else np.zeros(codes.shape[1],
                                                                                                       dtype=int)
            per_part.append((part, table, flat))
        return self._assemble(codes.shape[1], per_part)

    def _assemble(self, size: int, per_part: list) -> tuple[list[int], list[RunConfig], dict[int, str]]:
        failed: dict[int, str] = {}
        bad = np.zeros(size, dtype=bool)
        for _, table, flat in per_part:  # the first part (in key order) that failed gives the reason
            broken = np.array([isinstance(obj, Exception) for obj in table], dtype=bool)
            hit = broken[flat] & ~bad
            for i in np.flatnonzero(hit):
                failed[int(i)] = _error(table[flat[i]])
            bad |= hit
        built = np.flatnonzero(~bad)
        names = [p for p, _, _ in per_part]
        columns = [[table[j] for j in flat[built]] for _, table, flat in per_part]
        if not columns:
            return built.tolist(), [self.builder.base] * len(built), failed
        base = self.builder.base
        cls = type(base)
        if getattr(cls, "__copy__", None) or hasattr(cls, "__setstate__") or hasattr(cls, "__slots__"):
            cfgs = [self.builder.assemble(list(zip(names, objs, strict=True))) for objs in zip(*columns, strict=True)]
            return built.tolist(), cfgs, failed
        cfgs = []  # what copy.copy(base) and setting the parts give, without its per-call dispatch
        for objs in zip(*columns, strict=True):
            cfg = cls.__new__(cls)
            cfg.__dict__.update(base.__dict__)
            cfg.__dict__.update(zip(names, objs, strict=True))
            cfgs.append(cfg)
        return built.tolist(), cfgs, failed


def composed(dcfg: DictConfig, point: dict, is_group) -> RunConfig:
    """The point's config the slow way: the values set on the composed config, then converted."""
    dcfg = copy.deepcopy(dcfg)
    for key, value in point.items():
        if not is_group(key):
            OmegaConf.update(dcfg, key, value, merge=False)
    return to_run_config(dcfg)


def equivalent(builder: ConfigBuilder, dcfg: DictConfig, points: list[dict], is_group) -> bool:
    """Whether building in place gives the composed config for the first of ``points`` that either path accepts
    (one that both refuse, a bad value on an axis, says nothing and the next is tried; None accepted: False)."""
    for point in points:
        fields = {k: v for k, v in point.items() if not is_group(k)}
        try:
            fast = builder.build(fields)
        except Exception:  # noqa: BLE001 - refused in place: composing must refuse it too
            fast = None
        try:
            slow = composed(dcfg, point, is_group)
        except Exception:  # noqa: BLE001
            slow = None
        if fast is None and slow is None:
            continue
        return fast == slow
    return False
