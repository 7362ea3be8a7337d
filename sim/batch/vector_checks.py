"""A batch's configs sorted out by their parts' objects: which run on the scalar path, which fail
``check_run``, and which are costed together (``sim.batch.vector``).

Points built in place (``llmsim-grid``, a search generation) share their parts' objects: 100,000 grid
points may hold 10,000 chips and 10 workloads. ``PartCodes`` numbers each config's part objects (by
identity, numpy over the batch), so a function of some parts runs once per distinct combination of
them, not once per point: ``why_scalar``, each check of sim/config/checks.py ``CHECKS`` (which
declares the parts each reads; tests/test_check_parts.py holds it to that), and the grouping key.
"""

from __future__ import annotations

from operator import attrgetter

import numpy as np

from sim.config.checks import CHECKS
from sim.config.schema import RunConfig
from sim.engine.vector_chips import shape_key

WHY_PARTS = ("parallel", "fidelity", "speculative", "model", "memory")  # what vector.why_scalar reads
REST = ("model", "workload", "parallel", "precision", "attention", "runtime", "system", "memory", "power")


class PartCodes:
    """Per config, a small number for each part's object (equal numbers: the same object)."""

    def __init__(self, cfgs: list[RunConfig]) -> None:
        self.cfgs = cfgs
        self._codes: dict[str, np.ndarray] = {}

    def part(self, name: str) -> np.ndarray:
        if name not in self._codes:
            ids = np.fromiter(map(id, map(attrgetter(name), self.cfgs)), dtype=np.int64, count=len(self.cfgs))
            self._codes[name] = np.unique(ids, return_inverse=True)[1].reshape(-1)
        return self._codes[name]

    def combined(self, names: tuple) -> tuple[np.ndarray, np.ndarray]:
        """(code of each config's combination of the parts ``names``, a config of each code)."""
        key = np.zeros(len(self.cfgs), dtype=np.int64)
        if not self.cfgs:
            return key, key
        for name in names:
            codes = self.part(name)
            key = np.unique(key * (int(codes.max()) + 1) + codes, return_inverse=True)[1].reshape(-1)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return inverse.reshape(-1), first


def per_combination(codes: PartCodes, names: tuple, fn) -> list:
    """``fn(cfg)`` of each config, run once per distinct combination of the parts ``names``."""
    inverse, first = codes.combined(names)
    values = [fn(codes.cfgs[i]) for i in first]
    picked = np.empty(len(values), dtype=object)
    picked[:] = values
    return picked[inverse].tolist()


def check_points(codes: PartCodes) -> list[Exception | None]:
    """``check_run``'s outcome for each config (None where it passes, else what it raises): each check runs
    once per distinct combination of the parts it reads, and a config takes its first failing check's
    error, as ``check_run`` raises it."""
    cfgs = codes.cfgs
    out: list[Exception | None] = [None] * len(cfgs)
    if not cfgs:
        return out
    open_ = np.ones(len(cfgs), dtype=bool)  # no check has failed yet
    for check, parts in CHECKS:
        inverse, first = codes.combined(parts)
        errors: list[Exception | None] = []
        for i in first:
            try:
                check(cfgs[i])
                errors.append(None)
            except Exception as err:  # noqa: BLE001 - the scalar path's checks; its error is the point's
                errors.append(err)
        failed = np.flatnonzero(open_ & np.array([e is not None for e in errors], dtype=bool)[inverse])
        for i in failed:
            out[i] = errors[inverse[i]]
        open_[failed] = False
    return out


def structures(codes: PartCodes, among: np.ndarray) -> dict[tuple, np.ndarray]:
    """{what points must share to be costed together: positions (ascending)} of the configs ``among``.

    The key: the parts other than the chip by their text, and the chip by ``shape_key`` and the one
    figure of it the passes depend on (the overlap's smallest chunk, sim/config/schema.py); each
    computed once per distinct object."""
    if not len(among):
        return {}
    rest, rest_first = codes.combined(REST)
    chip, chip_first = codes.combined(("hardware",))
    rest_key = [tuple(map(repr, (getattr(codes.cfgs[i], p) for p in REST))) for i in rest_first]
    chip_keys: dict[tuple, int] = {}
    chip_code = np.empty(len(chip_first), dtype=np.int64)
    for c, i in enumerate(chip_first):
        cfg = codes.cfgs[i]
        chip_code[c] = chip_keys.setdefault((shape_key(cfg.hardware), cfg._overlap_min_chunk_bytes()), len(chip_keys))
    chip_key = list(chip_keys)
    key = rest[among] * len(chip_key) + chip_code[chip[among]]
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1], True])
    found: dict[tuple, list] = {}  # parts with equal text but distinct objects share a group
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        k = int(key[order[lo]])
        found.setdefault((rest_key[k // len(chip_key)], chip_key[k % len(chip_key)]), []).append(among[order[lo:hi]])
    groups = {k: np.sort(np.concatenate(v)) for k, v in found.items()}
    return dict(sorted(groups.items(), key=lambda item: item[1][0]))  # in the order of their first points
