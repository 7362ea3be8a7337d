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
from sim.config.schema import Fidelity, RunConfig, RunError, check_run
from sim.engine.records import HostCosts
from sim.engine.vector_chips import ChipRows, chip_arrays, shape_key
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
    econ: list  # per point: (area, energy) of its chip
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
    for i, cfg in enumerate(cfgs):
        why = why_scalar(cfg)
        if why:
            _scalar(out, i, cfg, why)
            continue
        try:
            check_run(cfg)
        except Exception as err:  # noqa: BLE001 - the scalar path's checks; its error is the point's
            out.failed[i] = err
            continue
        groups.setdefault(_structure(cfg, seen), []).append(i)
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
    fits = [m for m, c in zip(members, cfgs, strict=True) if mem.used <= c.hardware.hbm_capacity_bytes]
    for m, c in zip(members, cfgs, strict=True):
        if mem.used > c.hardware.hbm_capacity_bytes:
            try:
                check_fits(c, MemoryUse(mem.weights, mem.kv_cache, mem.activations, c.hardware.hbm_capacity_bytes))
            except RunError as err:
                out.failed[m] = err
    if not fits:
        return
    cfgs = [cfgs[members.index(m)] for m in fits] if len(fits) < len(members) else cfgs
    table = op_table(all_passes)
    chips = chip_arrays([c.hardware for c in cfgs], rows, first.power.cap)
    costs = cost_ops(chips, table.ops, first.runtime.in_switch_reduction)
    econ = [rows.economics(c.hardware) for c in cfgs]
    dyn, parts = _dynamic_energy(table, costs, econ)
    timeline = replay_points(all_passes, table, costs, HostCosts.of(first.runtime, first.system.host), dyn)
    w = first.workload
    host_bytes = 4 * w.batch * (w.prompt_tokens + w.decode_tokens)  # TOKEN_ID_BYTES: metrics/shared.py
    parts["host_J"] = parts["host_J"] + host_bytes * np.array([e[1].host_J_per_byte for e in econ])
    by_phase = {p: dyn @ n for p, n in table.count_by_phase.items()}
    out.groups.append(Group(np.array(fits), cfgs, table, costs, timeline, resource_work(table, costs), parts,
                            by_phase, mem, econ, rows, time.perf_counter() - started))


def _dynamic_energy(table: OpTable, costs: VectorCosts, econ: list) -> tuple[np.ndarray, dict]:
    """(one instance's dynamic J per point and op, run totals by part per point): sim/engine/op_energy.py."""
    energies = [e[1] for e in econ]
    vj = np.array([e.vector_J_per_flop for e in energies])[:, None]
    sram_j = np.array([e.sram_J_per_byte for e in energies])[:, None]
    hbm_j = np.array([e.hbm_J_per_byte for e in energies])[:, None]
    link_j = np.array([e.link_J_per_byte for e in energies])[:, None]
    compute, sram_bytes = np.zeros(costs.hbm_bytes.shape), SRAM_PASSES_PER_HBM_BYTE * costs.hbm_bytes
    for j, op in enumerate(table.ops):
        matrix = op.flops if op.unit.value == "matrix" else 0.0
        col = (op.flops - matrix) * vj[:, 0]
        dtype = costs.dtype_run[j]
        if matrix and dtype is None:
            col = col + matrix * vj[:, 0]
        elif matrix:
            macs = matrix / 2
            col = col + macs * np.array([e.mac_J[dtype] for e in energies])
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
             "host_J": np.zeros(len(energies))}
    return compute + sram + hbm + link, parts


__all__ = ["DType", "Group", "PointsResult", "simulate_points"]
