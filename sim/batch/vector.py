"""Many single-batch runs at once: the analytic path vectorised over design points.

``simulate_points(cfgs)`` gives what ``simulate`` gives for each config, costed with numpy over
the points that share their passes and their chip's discrete fields (a *group*: same model,
workload and execution; same array geometry, formats, topology, collective algorithm). Per group
the passes are built once, each distinct op is costed on every chip at once
(``sim.engine.vector_cost``), and the passes are replayed on every point at once
(``sim.engine.vector_replay``). It is the scalar path's twin: tests/test_vector.py asserts the two
agree to 1e-9 on every summary figure and per-op time.

A point the vectorised path does not cover runs on the scalar path (``simulate``) instead, and
the reason is counted (``PointsResult.fallbacks``): the discrete-event fidelity, pipeline
parallelism, speculative decoding, mixture-of-experts models, context parallelism, KV cache offload,
passes with concurrent ops (chunked overlap), collectives over the scale-out network, or a
collective the scalar path would reject. A point that fails its checks (does
not fit, a bad split) fails with the scalar path's own message.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hwmodels.energy import SRAM_PASSES_PER_HBM_BYTE, SRAM_TILE_M, SRAM_TILE_N
from hwmodels.numerics import DType
from sim.batch.run import MemoryUse, RunResult, check_fits, memory_use, passes, simulate
from sim.config.checks import CHECKS
from sim.config.schema import Fidelity, RunConfig, RunError
from sim.engine.records import HostCosts
from sim.engine.vector_chips import ChipArrays, ChipRows, shape_key
from sim.engine.vector_cost import Unsupported, VectorCosts, cost_ops
from sim.engine.vector_replay import OpTable, VectorTimeline, op_table, replay_points, resource_work


@dataclass
class Group:
    """Points costed together, with everything the summary reads, per point."""

    index: np.ndarray  # positions of its points in the batch
    cfgs: list[RunConfig]
    table: OpTable
    costs: VectorCosts
    timeline: VectorTimeline
    work: dict  # resource -> (busy s, amount) per point
    energy_parts: dict[str, np.ndarray]  # dynamic J by part per point (all instances; host transfers added)
    by_phase_J: dict
    memory: MemoryUse  # weights, KV and activations (capacity per point: cfgs' hardware)
    chips: ChipArrays  # the points' chips: the distinct ones (``unique``) and each point's (``where``)
    rows: ChipRows  # the batch's per-chip figures (shared by its groups)
    wall_s: float


@dataclass
class PointsResult:
    """The outcome of a batch: vectorised groups, scalar results, failures, and why points fell back."""

    size: int
    groups: list[Group] = field(default_factory=list)
    scalar: dict[int, RunResult] = field(default_factory=dict)
    failed: dict[int, Exception] = field(default_factory=dict)
    fallbacks: Counter = field(default_factory=Counter)

    @property
    def vectorised(self) -> int:
        return sum(len(g.index) for g in self.groups)


KEEP_PASSES = 8  # pass lists kept between calls (a search asks for the same few workloads generation after generation)
_PASSES: dict = {}


def why_scalar(cfg: RunConfig) -> str | None:
    """Why ``cfg`` runs on the scalar path (None: the batch path covers it, unless its passes do not)."""
    if cfg.parallel.pp > 1:
        return "pipeline parallelism"
    if cfg.fidelity is not Fidelity.analytic:
        return "discrete-event fidelity"
    if cfg.speculative.draft_model:
        return "speculative decoding"
    if cfg.model.is_moe:
        return "mixture-of-experts (time by part of the model)"
    if cfg.parallel.cp > 1:
        return "context parallelism"
    if cfg.memory.kv_offload.value != "none":
        return "KV cache offload to the host"
    return None


def scalar_reasons(cfgs: list[RunConfig]) -> list[str | None]:
    """``why_scalar`` of each config, once per distinct set of the parts it reads (points built in place
    share them)."""
    seen: dict[tuple, str | None] = {}
    out = []
    for cfg in cfgs:
        key = (id(cfg.parallel), cfg.fidelity, id(cfg.speculative), id(cfg.model), id(cfg.memory))
        if key not in seen:
            seen[key] = why_scalar(cfg)
        out.append(seen[key])
    return out


def check_points(cfgs: list[RunConfig]) -> list[Exception | None]:
    """``check_run``'s outcome for each config (None where it passes, else what it raises): each check of
    sim/config/checks.py ``CHECKS`` runs once per distinct set of the parts it reads (by object: points
    built in place share them), and a config takes the first failing check's error, as ``check_run``
    raises it."""
    ids: dict[str, np.ndarray] = {}
    out: list[Exception | None] = [None] * len(cfgs)
    if not cfgs:
        return out
    open_ = np.ones(len(cfgs), dtype=bool)  # no check has failed yet
    for check, parts in CHECKS:
        for p in parts:
            if p not in ids:
                ids[p] = np.fromiter((id(getattr(c, p)) for c in cfgs), dtype=np.int64, count=len(cfgs))
        keys = np.stack([ids[p] for p in parts], axis=1)
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
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


def _structure(cfg: RunConfig, seen: dict) -> tuple:
    """What points must share to be costed together: the passes' inputs and the chip's discrete fields.

    Computed once per distinct set of part objects (points built in place share them): the parts
    other than the chip by their text, the chip by ``shape_key`` and the one figure of it the
    passes depend on (the overlap's smallest chunk, sim/config/schema.py)."""
    rest = (cfg.model, cfg.workload, cfg.parallel, cfg.precision, cfg.attention, cfg.runtime, cfg.system, cfg.memory,
            cfg.power)
    ids = tuple(map(id, rest))
    if ids not in seen:
        seen[ids] = (tuple(map(repr, rest)), rest)
    chip_key = ("chip", id(cfg.hardware))
    if chip_key not in seen:
        seen[chip_key] = ((shape_key(cfg.hardware), cfg._overlap_min_chunk_bytes()), cfg.hardware)
    return seen[ids][0], seen[chip_key][0]


def simulate_points(cfgs: list[RunConfig]) -> PointsResult:
    """Simulate every config of ``cfgs`` (single-batch runs); vectorised where the model allows."""
    out = PointsResult(len(cfgs))
    groups: dict[tuple, list[int]] = {}
    seen: dict = {}
    rows = ChipRows()
    reasons = scalar_reasons(cfgs)
    for i, (cfg, why) in enumerate(zip(cfgs, reasons, strict=True)):
        if why:
            _scalar(out, i, cfg, why)
    batch = [i for i, why in enumerate(reasons) if not why]
    errors = check_points([cfgs[i] for i in batch])
    for i, err in zip(batch, errors, strict=True):
        if err is not None:
            out.failed[i] = err
        else:
            groups.setdefault(_structure(cfgs[i], seen), []).append(i)
    built = _PASSES  # passes by what they depend on: groups that differ only in the chip's shape share them
    for key, members in groups.items():
        try:
            _run_group(out, members, [cfgs[i] for i in members], rows, built, (key[0], key[1][1]))
        except Unsupported as err:
            for i in members:
                _scalar(out, i, cfgs[i], str(err))
    return out


def _scalar(out: PointsResult, i: int, cfg: RunConfig, why: str) -> None:
    out.fallbacks[why] += 1
    try:
        out.scalar[i] = simulate(cfg)
    except Exception as err:  # noqa: BLE001 - recorded as the point's failure, as a grid records it
        out.failed[i] = err


def _run_group(out: PointsResult, members: list[int], cfgs: list[RunConfig], rows: ChipRows, built: dict,
               pass_key: tuple) -> None:
    started = time.perf_counter()
    first = cfgs[0]
    if pass_key not in built:
        while len(built) >= KEEP_PASSES:  # the oldest first: a search's next generation reuses the recent ones
            built.pop(next(iter(built)))
        built[pass_key] = list(passes(first))
    all_passes = built[pass_key]
    mem = memory_use(first, all_passes[0])
    capacity = {id(c.hardware): c.hardware.hbm_capacity_bytes for c in cfgs}  # once per distinct chip
    fit = np.array([mem.used <= capacity[id(c.hardware)] for c in cfgs], dtype=bool)
    for j in np.flatnonzero(~fit):
        c = cfgs[j]
        try:
            check_fits(c, MemoryUse(mem.weights, mem.kv_cache, mem.activations, c.hardware.hbm_capacity_bytes))
        except RunError as err:
            out.failed[members[j]] = err
    if not fit.any():
        return
    if not fit.all():
        members = [m for m, f in zip(members, fit, strict=True) if f]
        cfgs = [c for c, f in zip(cfgs, fit, strict=True) if f]
    table = op_table(all_passes)
    chips = rows.arrays([c.hardware for c in cfgs], first.power.cap)
    costs = cost_ops(chips, table.ops, first.runtime.in_switch_reduction)
    econ = [rows.economics(c) for c in chips.unique]  # per distinct chip; chips.where picks each point's
    dyn, parts = _dynamic_energy(table, costs, econ, chips.where)
    timeline = replay_points(all_passes, table, costs, HostCosts.of(first.runtime, first.system.host), dyn)
    w = first.workload
    host_bytes = 4 * w.batch * (w.prompt_tokens + w.decode_tokens)  # TOKEN_ID_BYTES: metrics/shared.py
    parts["host_J"] = parts["host_J"] + host_bytes * np.array([e[1].host_J_per_byte for e in econ])[chips.where]
    by_phase = {p: dyn @ n for p, n in table.count_by_phase.items()}
    out.groups.append(Group(np.array(members), cfgs, table, costs, timeline, resource_work(table, costs), parts,
                            by_phase, mem, chips, rows, time.perf_counter() - started))


def _dynamic_energy(table: OpTable, costs: VectorCosts, econ: list, where: np.ndarray) -> tuple[np.ndarray, dict]:
    """(one instance's dynamic J per point and op, run totals by part per point): sim/engine/op_energy.py.

    ``econ``: (area, energy) of each distinct chip; ``where``: each point's chip in it."""
    energies = [e[1] for e in econ]

    def per_point(fn) -> np.ndarray:
        return np.array([fn(e) for e in energies], dtype=float)[where]

    vj = per_point(lambda e: e.vector_J_per_flop)
    sram_j, hbm_j = per_point(lambda e: e.sram_J_per_byte)[:, None], per_point(lambda e: e.hbm_J_per_byte)[:, None]
    link_j = per_point(lambda e: e.link_J_per_byte)[:, None]
    mac_j: dict = {}
    compute, sram_bytes = np.zeros(costs.hbm_bytes.shape), SRAM_PASSES_PER_HBM_BYTE * costs.hbm_bytes
    for j, op in enumerate(table.ops):
        matrix = op.flops if op.unit.value == "matrix" else 0.0
        col = (op.flops - matrix) * vj
        dtype = costs.dtype_run[j]
        if matrix and dtype is None:
            col = col + matrix * vj
        elif matrix:
            macs = matrix / 2
            if dtype not in mac_j:
                mac_j[dtype] = per_point(lambda e, d=dtype: e.mac_J[d])
            col = col + macs * mac_j[dtype]
            sram_bytes[:, j] = sram_bytes[:, j] + macs * dtype.bytes * (1 / SRAM_TILE_M + 1 / SRAM_TILE_N)
        compute[:, j] = col
    sram = sram_bytes * sram_j
    r2 = costs.clock_ratio ** 2
    throttled = costs.clock_ratio != 1.0
    sram_hbm = sram_j * costs.hbm_bytes * SRAM_PASSES_PER_HBM_BYTE
    compute = np.where(throttled, compute * r2, compute)
    sram = np.where(throttled, sram_hbm + (sram - sram_hbm) * r2, sram)
    hbm, link = costs.hbm_bytes * hbm_j, costs.link_bytes * link_j
    n = table.count
    parts = {"compute_J": compute @ n, "sram_J": sram @ n, "hbm_J": hbm @ n, "link_J": link @ n,
             "host_J": np.zeros(len(where))}
    return compute + sram + hbm + link, parts


__all__ = ["DType", "Group", "PointsResult", "simulate_points"]
