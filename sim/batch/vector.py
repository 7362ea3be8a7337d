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
from sim.batch.vector_checks import WHY_PARTS, PartCodes, check_points, per_combination, structures
from sim.config.schema import Fidelity, RunConfig, RunError
from sim.engine.records import HostCosts
from sim.engine.vector_chips import ChipArrays, ChipRows
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
    """``why_scalar`` of each config, once per distinct set of the parts it reads (points built in place share them)."""
    return per_combination(PartCodes(cfgs), WHY_PARTS, why_scalar)


def simulate_points(cfgs: list[RunConfig]) -> PointsResult:
    """Simulate every config of ``cfgs`` (single-batch runs); vectorised where the model allows."""
    out = PointsResult(len(cfgs))
    rows = ChipRows()
    codes = PartCodes(cfgs)
    reasons = per_combination(codes, WHY_PARTS, why_scalar)
    for i, (cfg, why) in enumerate(zip(cfgs, reasons, strict=True)):
        if why:
            _scalar(out, i, cfg, why)
    errors = check_points(codes)
    for i, (err, why) in enumerate(zip(errors, reasons, strict=True)):
        if err is not None and not why:
            out.failed[i] = err
    ok = np.flatnonzero([err is None and not why for err, why in zip(errors, reasons, strict=True)])
    groups = {key: members.tolist() for key, members in structures(codes, ok).items()}
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
    chips = rows.arrays([c.hardware for c in cfgs], first.power.cap)
    capacity = rows.once("capacity", chips.unique, lambda u: np.array([c.hbm_capacity_bytes for c in u], dtype=float))
    fit = mem.used <= capacity[chips.where]
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
        chips = rows.arrays([c.hardware for c in cfgs], first.power.cap)
    table = op_table(all_passes)
    costs = cost_ops(chips, table.ops, first.runtime.in_switch_reduction)
    energy = rows.once("energy", chips.unique, lambda u: _energy_columns([rows.economics(c)[1] for c in u]))
    dyn, parts = _dynamic_energy(table, costs, energy, chips.where)
    timeline = replay_points(all_passes, table, costs, HostCosts.of(first.runtime, first.system.host), dyn)
    w = first.workload
    host_bytes = 4 * w.batch * (w.prompt_tokens + w.decode_tokens)  # TOKEN_ID_BYTES: metrics/shared.py
    parts["host_J"] = parts["host_J"] + host_bytes * energy["host_J_per_byte"][chips.where]
    by_phase = {p: dyn @ n for p, n in table.count_by_phase.items()}
    out.groups.append(Group(np.array(members), cfgs, table, costs, timeline, resource_work(table, costs), parts,
                            by_phase, mem, chips, rows, time.perf_counter() - started))


def _energy_columns(energies: list) -> dict:
    """The energy coefficients (hwmodels/energy.py) of each distinct chip, as arrays; ``mac_J`` by format."""
    def of(fn) -> np.ndarray:
        return np.array([fn(e) for e in energies], dtype=float)

    names = ("vector_J_per_flop", "sram_J_per_byte", "hbm_J_per_byte", "link_J_per_byte", "host_J_per_byte")
    columns = {name: of(lambda e, name=name: getattr(e, name)) for name in names}
    columns["mac_J"] = {d: of(lambda e, d=d: e.mac_J[d]) for d in energies[0].mac_J}
    return columns


def _dynamic_energy(table: OpTable, costs: VectorCosts, energy: dict, where: np.ndarray) -> tuple[np.ndarray, dict]:
    """(one instance's dynamic J per point and op, run totals by part per point): sim/engine/op_energy.py.

    ``energy``: ``_energy_columns`` of the distinct chips; ``where``: each point's chip among them."""
    vj = energy["vector_J_per_flop"][where]
    sram_j, hbm_j = energy["sram_J_per_byte"][where][:, None], energy["hbm_J_per_byte"][where][:, None]
    link_j = energy["link_J_per_byte"][where][:, None]
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
                mac_j[dtype] = energy["mac_J"][dtype][where]
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
