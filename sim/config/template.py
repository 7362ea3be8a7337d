"""Run configs of many designs of one composed config, built without OmegaConf per design.

A search sets a few dotted keys (``hardware.num_cores``, ``parallel.tp``) on the same composed
config for every trial. The plain way (sim/studies/search/evaluate.py ``build``) merges the tree
into the schema and converts it (``OmegaConf.merge`` then ``to_object``): about a quarter of a
second per design, mostly OmegaConf creating nodes. :class:`Template` merges once, records each
field's value, type and interpolation, and per design only converts the set values the way
OmegaConf's typed nodes do, resolves the ``${a.b}`` references, writes an explicit
``system.scale_up`` value onto the chip (``apply_scale_up``), and instantiates the dataclasses in
OmegaConf's order (so every ``__post_init__`` runs and the first error raised is the same).

Whatever it does not reproduce exactly it declines (``build`` returns None) and the caller takes
the plain path: a key the schema lacks, a container or a whole section set, a value that needs
more than int to float, a string with ``${``, any other kind of interpolation, a missing value.
tests/test_search_template.py compares the two on random designs (equal dataclasses).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.nodes import AnyNode, BooleanNode, EnumNode, FloatNode, IntegerNode, StringNode, ValueNode

from sim.config.schema import AppConfig, RunConfig, run_fields
from sim.config.system import SCALE_UP_ON_CHIP

REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\}$")  # ${a.b.c}, absolute
NO = object()  # a value the template does not convert (the plain path does)
MISSING = object()


class Declined(Exception):
    """The template cannot reproduce this design exactly; build it the plain way."""


@dataclass
class Leaf:
    node: type  # the OmegaConf node class (FloatNode, EnumNode, ...)
    optional: bool
    value: Any  # converted value; MISSING; or None
    ref: str | None = None  # the absolute key of a ``${key}`` interpolation
    enum: type | None = None


@dataclass
class Section:
    cls: type  # the dataclass
    init: frozenset
    children: dict = field(default_factory=dict)  # name -> Leaf | Section | Plain


@dataclass
class Plain:
    value: Any  # a plain container (dict or list), copied per design


def _leaf(node: ValueNode) -> Leaf:
    enum = node.enum_type if isinstance(node, EnumNode) else None
    text = node._value()
    if OmegaConf.is_interpolation(node):
        match = REFERENCE.match(str(text))
        if not match:
            raise Declined(f"interpolation {text!r}")
        return Leaf(type(node), node._is_optional(), None, match.group(1), enum)
    value = MISSING if node._is_missing() else text
    return Leaf(type(node), node._is_optional(), value, None, enum)


def _section(cfg: DictConfig) -> Section:
    cls = cfg._metadata.object_type
    out = Section(cls, frozenset(f.name for f in fields(cls) if f.init))
    for key in cfg.keys():
        node = cfg._get_child(key)
        if isinstance(node, DictConfig) and node._metadata.object_type not in (None, dict) \
                and not node._is_none() and not node._is_missing() and not OmegaConf.is_interpolation(node):
            out.children[key] = _section(node)
        elif isinstance(node, (DictConfig, ListConfig)):
            if OmegaConf.is_interpolation(node) or node._is_missing() or "${" in str(node):
                raise Declined(f"container {key}")
            out.children[key] = Plain(OmegaConf.to_container(node, resolve=True))
        else:
            out.children[key] = _leaf(node)
    return out


def convert(leaf: Leaf, value: Any) -> Any:
    """``value`` as the leaf's typed node holds it, or NO where that takes more than int -> float."""
    if value is None:
        return None if leaf.optional else NO
    if isinstance(value, str) and "${" in value:
        return NO
    kind = leaf.node
    if kind is AnyNode:
        return value
    if kind is EnumNode:
        return value if isinstance(value, leaf.enum) else NO
    if kind is BooleanNode:
        return value if isinstance(value, bool) else NO
    if isinstance(value, bool):
        return NO
    if kind is FloatNode:
        return float(value) if isinstance(value, (int, float)) else NO
    if kind is IntegerNode:
        return value if isinstance(value, int) else NO
    if kind is StringNode:
        return value if isinstance(value, str) and not isinstance(value, Enum) else NO
    return NO


class Template:
    """A composed config's run part (a plain tree, interpolations kept), ready to build designs from."""

    def __init__(self, tree: dict) -> None:
        merged = OmegaConf.merge(OmegaConf.structured(AppConfig), tree)
        try:
            self.root: Section | None = _section(merged)
        except Declined:
            self.root = None  # a config this template cannot follow: every design the plain way

    def _find(self, key: str) -> Leaf:
        node: Any = self.root
        for part in key.split("."):
            if not isinstance(node, Section) or part not in node.children:
                raise Declined(key)
            node = node.children[part]
        if not isinstance(node, Leaf):
            raise Declined(key)
        return node

    def _value(self, key: str, leaf: Leaf, values: dict, seen: tuple = ()) -> Any:
        """The design's value of ``key``: set, else its reference resolved, else the composed one."""
        if key in values:
            return values[key]
        if leaf.ref is None:
            return leaf.value
        if leaf.ref in seen:
            raise Declined(f"circular {leaf.ref}")
        target = self._find(leaf.ref)
        got = convert(leaf, self._value(leaf.ref, target, values, (*seen, key)))
        if got is NO or got is MISSING:
            raise Declined(key)
        return got

    def _values(self, overrides: dict) -> dict:
        values = {}
        for key, value in overrides.items():
            got = convert(self._find(key), value)
            if got is NO:
                raise Declined(key)
            values[key] = got
        for key, chip_key in SCALE_UP_ON_CHIP.items():  # apply_scale_up: an explicit value goes onto the chip
            path = f"system.scale_up.{key}"
            leaf = self._find(path)
            value = values[path] if path in values else (leaf.value if leaf.ref is None else None)
            if value is not None and value is not MISSING:
                got = convert(self._find(f"hardware.{chip_key}"), value)
                if got is NO:
                    raise Declined(path)
                values[f"hardware.{chip_key}"] = got
        return values

    def _make(self, section: Section, prefix: str, values: dict) -> Any:
        init, late = {}, {}
        for name, child in section.children.items():
            key = f"{prefix}{name}"
            if isinstance(child, Section):
                value = self._make(child, f"{key}.", values)
            elif isinstance(child, Plain):
                value = copy.deepcopy(child.value)
            else:
                value = self._value(key, child, values)
                if value is MISSING:
                    raise Declined(key)
            (init if name in section.init else late)[name] = value
        try:
            out = section.cls(**init)
        except TypeError as err:
            raise Declined(str(err)) from None
        for name, value in late.items():
            setattr(out, name, value)
        return out

    def build(self, overrides: dict) -> RunConfig | None:
        """The RunConfig of the composed tree with ``overrides`` (dotted keys) set, as the plain
        merge gives it; None where the template declines. Raises what the dataclasses raise
        (HardwareError, ModelError, RunError), as the plain path does."""
        if self.root is None:
            return None
        try:
            values = self._values(overrides)
            names = set(run_fields())
            parts = {name: self._make(child, f"{name}.", values) if isinstance(child, Section)
                     else self._value(name, child, values)
                     for name, child in self.root.children.items() if name in names}
        except Declined:
            return None
        if MISSING in parts.values() or any(isinstance(v, Plain) for v in parts.values()):
            return None
        return RunConfig(**parts)
