"""Many decode-only step signatures priced at once, with numpy, to the same bits as one at a time.

A run of decode-only steps (sim/serving/decode_runs.py) holds ``n`` decodes whose summed keys grow
by ``n`` every step, so nearly every step is a new signature of the step coster
(sim/serving/step_cost.py). Such signatures share one *frame* (every op but the attention is the
same); only the attention op's FLOPs and the KV-cache bytes it reads change. Here the frame's
attention op is costed over an array of signatures and the frame's analytic replay runs over the
array, operation for operation in the scalar code's order (IEEE additions, products, divisions
and maxima give the same bits elementwise in numpy as in Python), so every price equals
``StepCoster.cost_key`` bit for bit (tests/test_decode_prices.py draws signatures and holds them to it).

Covered: one layer kind, full attention, a fused kernel with a published efficiency
(``hwmodels.kernels``: Ampere and Hopper), no extra resources, no host KV tier, and no power-limited
clock on the attention op. Anything else (or any signature whose attention would be throttled)
returns None and the caller prices one signature at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hwmodels.energy import SRAM_PASSES_PER_HBM_BYTE, SRAM_TILE_M, SRAM_TILE_N
from hwmodels.kernels import attention_efficiency
from workloads.attention import AttentionKernel
from workloads.ops import OpKind, Role, Unit
from workloads.step import step_attention

if TYPE_CHECKING:
    from sim.serving.step_cost import StepCoster

Arrays = tuple[np.ndarray, ...]  # time_s, dynamic_J, matrix_flops, flops, hbm_bytes, then one span per segment


def supported(sc: StepCoster) -> bool:
    """Whether this step coster's decode attention can be priced over arrays."""
    model, ex, kind = sc.model, sc.ex, sc.kind
    return (sc.one_kind and not model.is_mla and ex.attention is not AttentionKernel.unfused and not kind.window
            and not kind.chunk and not kind.ssm and not ex.kv_host_fraction and not sc.coster.extra)


def price_decodes(sc: StepCoster, decodes: int, pairs: np.ndarray, cached: np.ndarray) -> Arrays | None:
    """Prices of the decode-only signatures ``((), decodes, pairs[i], cached[i], 0, decodes)`` (pairs and
    cached in whole blocks, as ``StepCoster.signature`` rounds them), or None where not covered."""
    if not supported(sc):
        return None
    b = sc.block
    pair_keys = np.maximum(decodes, pairs.astype(np.int64) * b)  # StepCoster._args
    cached_keys = np.maximum(0, cached.astype(np.int64) * b)
    ref = step_attention(sc.model, sc.ex, (), decodes, int(pair_keys[0]), int(cached_keys[0]), None, sc.kind)
    if len(ref) != 1:
        return None
    frame = sc.frame_for(((), decodes, int(pairs[0]), int(cached[0]), 0, decodes), ref)
    if frame is None:
        return None
    node = _attention(sc, ref[0], decodes, pair_keys, cached_keys)
    if node is None:
        return None
    return _replay(sc, frame, node)


def _attention(sc: StepCoster, op, decodes: int, pairs: np.ndarray, cached: np.ndarray) -> Arrays | None:
    """The attention op's (time_s, dynamic J, FLOPs, HBM bytes) per signature: ``Coster._cost`` on its
    published-efficiency branch and ``op_energy`` with the full clock, in their order of operations."""
    chip, coster, energy, model, ex = sc.coster.chip, sc.coster, sc.energy, sc.model, sc.ex
    if op.unit is not Unit.matrix or op.kind is not OpKind.attention or op.groups == 1 or op.dequant_flops:
        return None
    run_as = chip.matmul_dtype(op.dtype)
    published = attention_efficiency(op.kernel, chip.architecture, run_as or op.dtype)
    if published is None or run_as is None:
        return None
    heads, kv_heads, hd = model.num_heads // ex.tp, model.num_kv_heads // ex.tp, model.head_dim
    flops = 4.0 * hd * pairs.astype(np.float64) * heads  # workloads/attention.py attention_kernel (fused)
    kv = cached * 2 * kv_heads * hd * ex.kv_cache.bytes  # _decode_attention's kv_cache tensor
    reads = 0
    for t in op.reads:
        if t.role is not Role.kv_host:
            reads = reads + (kv if t.name == "kv_cache" else t.nbytes)
    writes = sum(t.nbytes for t in op.writes if t.role is not Role.kv_host)
    hbm = (reads + writes).astype(np.float64) + 0.0  # Op.hbm_bytes, then + ComputeCost.partial_bytes
    if float(flops[0]) != op.flops or float(hbm[0]) != op.hbm_bytes + 0.0 or op.host_bytes:
        return None  # the op's formula moved away from this copy: price one at a time
    compute = flops / (chip.peak_flops(op.dtype) * published)
    memory = np.where(hbm <= 0, 0.0, chip.hbm_latency_s + hbm / (chip.hbm_bandwidth_Bps * chip.hbm_efficiency))
    power = coster.power
    core_J = flops / 2 * power.matmul_core_J(2.0, run_as)  # macs * (per-MAC core energy)
    memory_J = hbm * power.memory_J(1.0)
    seconds = np.maximum(compute, memory)
    room = (power.budget_W - power.static_W) * seconds - memory_J
    if power.budget_W > 0 and not np.all((seconds <= 0) | (core_J <= 0) | (room >= core_J)):
        return None  # some signature's attention runs below the boost clock
    overhead = chip.kernel_overhead_s + chip.matmul_overhead_s
    time_s = (overhead + 0.0) + np.maximum(np.maximum(compute, memory), 0.0)
    macs = flops / 2  # EnergyParts from ChipEnergy.work, summed as EnergyParts.total_J
    compute_J = 0.0 + macs * energy.mac_J[run_as]
    sram_bytes = SRAM_PASSES_PER_HBM_BYTE * hbm + macs * run_as.bytes * (1 / SRAM_TILE_M + 1 / SRAM_TILE_N)
    total_J = compute_J + sram_bytes * energy.sram_J_per_byte + hbm * energy.hbm_J_per_byte
    total_J = total_J + 0.0 * energy.link_J_per_byte + 0 * energy.host_J_per_byte
    return time_s, total_J, flops, hbm


def _replay(sc: StepCoster, frame: list, attention: Arrays) -> Arrays:
    """``StepCoster._replay`` over arrays: the attention slot's figures are arrays, every other op's scalars."""
    time_s, energy, op_flops, op_hbm = attention
    shape = np.shape(time_s)
    end_s, *sums = replay_frame(sc.host, frame, [(time_s, energy, op_flops, True, op_hbm)])
    return tuple(x if isinstance(x, np.ndarray) and x.shape == shape else np.full(shape, x, dtype=np.float64)
                 for x in (end_s, *sums))


def replay_frame(host, frame: list, attention: list) -> tuple:
    """A frame's analytic replay: each op starting at the later of its stream and its predecessors, repeated
    layers back to back, the host's costs (``HostCosts.pass_time``); energy, FLOPs and bytes summed op by op.
    ``attention[slot]``: the (time s, dynamic J, FLOPs, matrix?, HBM bytes) of each attention slot, floats or
    arrays. Returns (end s, dynamic J, matrix FLOPs, FLOPs, HBM bytes, one span per segment).

    The maxima whose result is known are skipped (on arrays each is a numpy call): ``max(x, x)`` is ``x``; and
    where the segment's latest end so far (``first_end``) is among the values an op starts after, the op ends at
    or after it when its time is >= 0, so the new latest end is the op's end. The values are those of taking
    every maximum, bit for bit."""
    arrays = any(isinstance(x, np.ndarray) for slot in attention for x in slot)
    _max = _array_max if arrays else max  # max on two floats: Python's (cheaper; the same value)
    sure = all(bool(np.all(slot[0] >= 0)) if isinstance(slot[0], np.ndarray) else slot[0] >= 0 for slot in attention)
    now = host.step_s if host.step_s > 0 else 0.0
    device_start = now
    dynamic = matrix = flops = hbm = 0.0
    kernels = 0
    spans = []
    for repeat, nodes in frame:
        seg_start = first_end = now
        free = {False: seg_start, True: seg_start}
        end: list = []
        for preds, link, slot, *own in nodes:
            time_s, energy, op_flops, is_matrix, op_hbm = own if slot < 0 else attention[slot]
            if preds:  # max((end[p] for p in preds), default=seg_start)
                start = end[preds[0]]
                covers = start is first_end
                for p in preds[1:]:
                    e = end[p]
                    covers = covers or e is first_end
                    if e is not start:
                        start = _max(start, e)
            else:
                start = seg_start
                covers = start is first_end
            f = free[link]
            if f is not start:
                covers = covers or f is first_end
                start = _max(f, start)
            finish = free[link] = start + time_s
            end.append(finish)
            first_end = finish if covers and (sure if slot >= 0 else time_s >= 0) else _max(first_end, finish)
            dynamic = dynamic + energy * repeat
            flops = flops + op_flops * repeat
            if is_matrix:
                matrix = matrix + op_flops * repeat
            hbm = hbm + op_hbm * repeat
        now = seg_start + (first_end - seg_start) * repeat
        spans.append(first_end - seg_start)
        kernels += len(nodes) * repeat
    end_s = host.step_s + _max(now - device_start, kernels * host.dispatch_s)  # HostCosts.pass_time
    return (_max(end_s, now), dynamic, matrix, flops, hbm, *spans)


def _array_max(a, b):
    """``max(a, b)`` of floats or arrays (Python's on two floats: cheaper, and the same value)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.maximum(a, b)
    return max(a, b)
