"""A serving step's decode attention in closed form, and the analytic replay of a step's frame.

A run of decode-only steps (sim/serving/decode_runs.py) holds ``n`` decodes whose summed keys grow
by ``n`` every step, so nearly every step is a new signature of the step coster
(sim/serving/step_cost.py), and so is nearly every step that admits a prompt beside them. Such
signatures share one *frame* (every op but the attention is the same); only the decode attention's
FLOPs and the KV-cache bytes it reads change. ``DecodeForm`` gives that op's time, energy, FLOPs and
bytes from the summed keys without building the op: ``Coster._cost`` on its published-efficiency
branch and ``op_energy`` at the full clock, operation for operation in their order, so a price
equals the one from the built op bit for bit (tests/test_decode_prices.py draws signatures and holds
them to it). ``replay_frame`` is the analytic replay's arithmetic over a frame's stored op costs.

Covered: one layer kind, full attention, a fused kernel with a published efficiency
(``hwmodels.kernels``: Ampere and Hopper), no extra resources, no host KV tier, and no power-limited
clock on the attention op. Anything else (or a signature whose attention would be throttled) is
priced by building its attention ops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwmodels.energy import SRAM_PASSES_PER_HBM_BYTE, SRAM_TILE_M, SRAM_TILE_N
from hwmodels.kernels import attention_efficiency
from workloads.attention import AttentionKernel
from workloads.ops import OpKind, Role, Unit

if TYPE_CHECKING:
    from sim.serving.step_cost import StepCoster


def supported(sc: StepCoster) -> bool:
    """Whether this step coster's decode attention may have a closed form (``decode_form`` checks each)."""
    model, ex, kind = sc.model, sc.ex, sc.kind
    return (sc.one_kind and not model.is_mla and ex.attention is not AttentionKernel.unfused and not kind.window
            and not kind.chunk and not kind.ssm and not ex.kv_host_fraction and not sc.coster.extra)


class DecodeForm:
    """A step's decode attention op, for one number of decodes, as a function of its summed keys and the keys it
    reads from the cache: its (time s, dynamic J, FLOPs, HBM bytes). ``Coster._cost`` on its published-efficiency
    branch and ``op_energy`` with the full clock, in their order of operations. Made from one op built for that
    number of decodes (``decode_form``), whose own figures it must reproduce."""

    def __init__(self, sc: StepCoster, op) -> None:
        chip, model, ex, power, energy = sc.coster.chip, sc.model, sc.ex, sc.coster.power, sc.energy
        run_as = chip.matmul_dtype(op.dtype)
        self.heads, self.kv_heads, self.hd = model.num_heads // ex.tp, model.num_kv_heads // ex.tp, model.head_dim
        self.kv_bytes = ex.kv_cache.bytes
        # the reads in order, the KV cache's (None) sized per signature (_decode_attention's kv_cache tensor)
        self.reads = [None if t.name == "kv_cache" else t.nbytes for t in op.reads if t.role is not Role.kv_host]
        self.writes = sum(t.nbytes for t in op.writes if t.role is not Role.kv_host)
        self.peak = chip.peak_flops(op.dtype) * attention_efficiency(op.kernel, chip.architecture, run_as)
        self.hbm_latency, self.hbm_rate = chip.hbm_latency_s, chip.hbm_bandwidth_Bps * chip.hbm_efficiency
        self.mac_core_J, self.byte_J = power.matmul_core_J(2.0, run_as), power.memory_J(1.0)
        self.budget_W, self.spare_W = power.budget_W, power.budget_W - power.static_W
        self.overhead = chip.kernel_overhead_s + chip.matmul_overhead_s
        self.mac_J, self.sram_J, self.hbm_J = energy.mac_J[run_as], energy.sram_J_per_byte, energy.hbm_J_per_byte
        self.link_J, self.host_J = energy.link_J_per_byte, energy.host_J_per_byte
        self.width, self.tiles = run_as.bytes, 1 / SRAM_TILE_M + 1 / SRAM_TILE_N

    def __call__(self, pairs: int, cached: int) -> tuple[float, float, float, float] | None:
        """(time s, dynamic J, FLOPs, HBM bytes) of the op with ``pairs`` summed keys and ``cached`` read from the
        cache, or None where its attention runs below the boost clock."""
        flops = 4.0 * self.hd * float(pairs) * self.heads
        kv = cached * 2 * self.kv_heads * self.hd * self.kv_bytes
        reads = 0
        for nbytes in self.reads:
            reads = reads + (kv if nbytes is None else nbytes)
        hbm = float(reads + self.writes) + 0.0
        compute = flops / self.peak
        memory = 0.0 if hbm <= 0 else self.hbm_latency + hbm / self.hbm_rate
        core_J = flops / 2 * self.mac_core_J  # macs * (per-MAC core energy)
        memory_J = hbm * self.byte_J
        seconds = max(compute, memory)
        if self.budget_W > 0 and not (seconds <= 0 or core_J <= 0 or self.spare_W * seconds - memory_J >= core_J):
            return None  # the attention runs below the boost clock
        time_s = (self.overhead + 0.0) + max(max(compute, memory), 0.0)
        macs = flops / 2  # EnergyParts from ChipEnergy.work, summed as EnergyParts.total_J
        compute_J = 0.0 + macs * self.mac_J
        sram_bytes = SRAM_PASSES_PER_HBM_BYTE * hbm + macs * self.width * self.tiles  # op_energy's grouping
        total_J = compute_J + sram_bytes * self.sram_J + hbm * self.hbm_J
        total_J = total_J + 0.0 * self.link_J + 0 * self.host_J
        return time_s, total_J, flops, hbm


def decode_form(sc: StepCoster, op, pairs: int, cached: int, node: tuple) -> DecodeForm | None:
    """The closed form of ``op``, the decode attention of a decode-only step with ``pairs`` summed keys and ``cached``
    read from the cache, for a step coster ``supported`` admits; or None where not covered, or where the form does
    not reproduce ``node``, the op's (time s, dynamic J, FLOPs, matrix?, HBM bytes) as the step coster costs it."""
    chip = sc.coster.chip
    if op.unit is not Unit.matrix or op.kind is not OpKind.attention or op.groups == 1 \
            or op.dequant_flops or op.host_bytes or sum(t.name == "kv_cache" for t in op.reads) != 1:
        return None
    run_as = chip.matmul_dtype(op.dtype)
    if run_as is None or attention_efficiency(op.kernel, chip.architecture, run_as) is None:
        return None
    form = DecodeForm(sc, op)
    if form(pairs, cached) != (node[0], node[1], node[2], node[4]) or not node[3]:
        return None  # the op's formula moved away from this copy: its steps are priced by building their ops
    return form


def replay_frame(host, frame: list, attention: list) -> tuple:
    """A frame's analytic replay (``sim.engine.analytic``'s arithmetic in its order): each op starting at the later
    of its stream and its predecessors, repeated layers back to back, the host's costs (``HostCosts.pass_time``);
    energy, FLOPs and bytes summed op by op. ``attention[slot]``: the (time s, dynamic J, FLOPs, matrix?, HBM bytes)
    of each attention slot. Returns (end s, dynamic J, matrix FLOPs, FLOPs, HBM bytes, one span per segment)."""
    now = host.step_s if host.step_s > 0 else 0.0
    device_start = now
    dynamic = matrix = flops = hbm = 0.0
    kernels = 0
    spans = []
    for repeat, nodes in frame:
        seg_start = first_end = now
        free = [seg_start, seg_start]  # where the compute stream and the link stream are free
        end: list[float] = []
        for preds, link, slot, *own in nodes:
            time_s, energy, op_flops, is_matrix, op_hbm = own if slot < 0 else attention[slot]
            start = seg_start
            if preds:  # max((end[p] for p in preds), default=seg_start)
                start = end[preds[0]]
                for p in preds[1:]:
                    if end[p] > start:
                        start = end[p]
            finish = free[link] = max(free[link], start) + time_s
            end.append(finish)
            if finish > first_end:  # max(first_end, finish)
                first_end = finish
            dynamic = dynamic + energy * repeat
            flops = flops + op_flops * repeat
            if is_matrix:
                matrix = matrix + op_flops * repeat
            hbm = hbm + op_hbm * repeat
        now = seg_start + (first_end - seg_start) * repeat
        spans.append(first_end - seg_start)
        kernels += len(nodes) * repeat
    end_s = host.step_s + max(now - device_start, kernels * host.dispatch_s)  # HostCosts.pass_time
    return (max(end_s, now), dynamic, matrix, flops, hbm, *spans)
