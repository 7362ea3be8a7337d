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
    form = sc.decode_form(decodes, int(pair_keys[0]), int(cached_keys[0]))
    if form is None:
        return None
    frame = sc.frame_for(((), decodes, int(pairs[0]), int(cached[0]), 0, decodes), form.names)
    node = form(pair_keys, cached_keys) if frame is not None else None
    if node is None:
        return None
    return _replay(sc, frame, node)


class DecodeForm:
    """A step's decode attention op, for one number of decodes, as a function of its summed keys and the keys it
    reads from the cache: its (time s, dynamic J, FLOPs, HBM bytes), from ints or int arrays. ``Coster._cost`` on
    its published-efficiency branch and ``op_energy`` with the full clock, in their order of operations (on ints,
    Python's ``max`` as theirs; on arrays, numpy's, the same value elementwise). Made from one op built for that
    number of decodes (``decode_form``), whose own figures it must reproduce; ``names``: the attention ops of a
    decode-only step."""

    def __init__(self, sc: StepCoster, op, names: tuple[str, ...]) -> None:
        chip, model, ex, power, energy = sc.coster.chip, sc.model, sc.ex, sc.coster.power, sc.energy
        self.names = names
        self.run_as = run_as = chip.matmul_dtype(op.dtype)
        self.heads, self.kv_heads, self.hd = model.num_heads // ex.tp, model.num_kv_heads // ex.tp, model.head_dim
        self.kv_bytes = ex.kv_cache.bytes
        # the reads in order, the KV cache's (None) sized per signature (_decode_attention's kv_cache tensor)
        self.reads = [None if t.name == "kv_cache" else t.nbytes for t in op.reads if t.role is not Role.kv_host]
        self.writes = sum(t.nbytes for t in op.writes if t.role is not Role.kv_host)
        published = attention_efficiency(op.kernel, chip.architecture, run_as or op.dtype)
        self.peak = chip.peak_flops(op.dtype) * published
        self.hbm_latency, self.hbm_rate = chip.hbm_latency_s, chip.hbm_bandwidth_Bps * chip.hbm_efficiency
        self.mac_core_J, self.byte_J = power.matmul_core_J(2.0, run_as), power.memory_J(1.0)
        self.budget_W, self.spare_W = power.budget_W, power.budget_W - power.static_W
        self.overhead = chip.kernel_overhead_s + chip.matmul_overhead_s
        self.mac_J, self.sram_J, self.hbm_J = energy.mac_J[run_as], energy.sram_J_per_byte, energy.hbm_J_per_byte
        self.link_J, self.host_J = energy.link_J_per_byte, energy.host_J_per_byte
        self.sram_per_mac = run_as.bytes * (1 / SRAM_TILE_M + 1 / SRAM_TILE_N)

    def __call__(self, pairs, cached) -> Arrays | tuple[float, ...] | None:
        """(time s, dynamic J, FLOPs, HBM bytes) of the op with ``pairs`` summed keys and ``cached`` read from the
        cache (ints, or arrays of them), or None where some signature's attention runs below the boost clock."""
        arrays = isinstance(pairs, np.ndarray)
        mx = np.maximum if arrays else max
        flops = 4.0 * self.hd * (pairs.astype(np.float64) if arrays else float(pairs)) * self.heads
        kv = cached * 2 * self.kv_heads * self.hd * self.kv_bytes
        reads = 0
        for nbytes in self.reads:
            reads = reads + (kv if nbytes is None else nbytes)
        hbm = ((reads + self.writes).astype(np.float64) if arrays else float(reads + self.writes)) + 0.0
        compute = flops / self.peak
        late = self.hbm_latency + hbm / self.hbm_rate
        memory = np.where(hbm <= 0, 0.0, late) if arrays else (0.0 if hbm <= 0 else late)
        core_J = flops / 2 * self.mac_core_J  # macs * (per-MAC core energy)
        memory_J = hbm * self.byte_J
        seconds = mx(compute, memory)
        room = self.spare_W * seconds - memory_J
        fits = (seconds <= 0) | (core_J <= 0) | (room >= core_J)
        if self.budget_W > 0 and not (np.all(fits) if arrays else fits):
            return None  # some signature's attention runs below the boost clock
        time_s = (self.overhead + 0.0) + mx(mx(compute, memory), 0.0)
        macs = flops / 2  # EnergyParts from ChipEnergy.work, summed as EnergyParts.total_J
        compute_J = 0.0 + macs * self.mac_J
        sram_bytes = SRAM_PASSES_PER_HBM_BYTE * hbm + macs * self.sram_per_mac
        total_J = compute_J + sram_bytes * self.sram_J + hbm * self.hbm_J
        total_J = total_J + 0.0 * self.link_J + 0 * self.host_J
        return time_s, total_J, flops, hbm


def decode_form(sc: StepCoster, op, names: tuple[str, ...], pairs: int, cached: int, node: tuple) -> DecodeForm | None:
    """The closed form of ``op``, the decode attention of a decode-only step with ``pairs`` summed keys and ``cached``
    read from the cache, whose attention ops are ``names``; or None where not covered, or where the form does not
    reproduce ``node``, the op's (time s, dynamic J, FLOPs, matrix?, HBM bytes) as the step coster costs it."""
    chip = sc.coster.chip
    if not supported(sc) or op.unit is not Unit.matrix or op.kind is not OpKind.attention or op.groups == 1 \
            or op.dequant_flops or op.host_bytes or sum(t.name == "kv_cache" for t in op.reads) != 1:
        return None
    run_as = chip.matmul_dtype(op.dtype)
    if run_as is None or attention_efficiency(op.kernel, chip.architecture, run_as) is None:
        return None
    form = DecodeForm(sc, op, names)
    if form(pairs, cached) != (node[0], node[1], node[2], node[4]) or not node[3]:
        return None  # the op's formula moved away from this copy: price one at a time
    return form


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
