"""The pruned tile choice (sim/engine/vector_tiling.py) is the dense one (vector_parts.tile_matmul), bit for bit."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hwmodels.numerics import DType
from sim.config.compose import compose_config
from sim.engine.vector_chips import chip_arrays
from sim.engine.vector_parts import tile_matmul
from sim.engine.vector_tiling import choose_tiles


@functools.cache
def _chip(preset: str):
    return compose_config([f"hardware={preset}"])[1].hardware


def _inputs(preset, schedule, scales, shapes):
    rep = _chip(preset)
    if schedule:
        rep = dataclasses.replace(rep, gemm_schedule=schedule)
    chips = [dataclasses.replace(rep, freq_GHz=rep.freq_GHz * f, hbm_bandwidth_GBps=rep.hbm_bandwidth_GBps * b,
                                 num_cores=max(1, int(rep.num_cores * c))) for f, b, c in scales]
    arrays = chip_arrays(chips)
    m, n, k, g = (np.array([s[i] for s in shapes], dtype=np.int64) for i in range(4))
    dtype = rep.matmul_dtype(DType.bf16)
    rates = np.stack([arrays.rate[dtype.value]] * len(shapes), axis=1)
    widths = np.full(len(shapes), float(dtype.bytes))
    return arrays, m, n, k, g, widths, widths, rates


shapes = st.tuples(st.integers(1, 9000), st.integers(1, 30000), st.integers(1, 30000), st.sampled_from([1, 1, 8, 64]))
scales = st.tuples(st.sampled_from([0.5, 1.0, 1.3]), st.floats(0.2, 2.0), st.sampled_from([0.1, 0.5, 1.0, 1.0, 2.0]))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["h100_sxm", "a100_80gb", "tpu_v5e", "mi300x"]), st.sampled_from([None, "stream_k"]),
       st.lists(scales, min_size=1, max_size=6), st.lists(shapes, min_size=1, max_size=5))
def test_pruned_tile_choice_is_the_dense_one(preset, schedule, chip_scales, mm):
    try:
        args = _inputs(preset, schedule, chip_scales, mm)
    except Exception:  # noqa: BLE001 - a drawn chip the schema rejects is not a case
        assume(False)
    dense, pruned = tile_matmul(*args), choose_tiles(*args)
    for a, b in zip(dense, pruned, strict=True):
        assert a.shape == b.shape and np.array_equal(a, b), (a, b)


SIZES = (1, 16, 128, 1000, 4096, 28672)


def test_pruned_tile_choice_is_the_dense_one_on_square_and_skinny_shapes():
    """Equal sides, powers of two and decode's m = 1, where candidates tie most."""
    mm = [(m, n, k, g) for m in SIZES for n in SIZES for k in (64, 4096) for g in (1, 8)]
    for preset in ("h100_sxm", "teaching_npu"):
        for schedule in (None, "stream_k"):
            args = _inputs(preset, schedule, [(1.0, 1.0, 1.0), (0.5, 2.0, 0.1), (1.3, 0.3, 0.5)], mm)
            for a, b in zip(tile_matmul(*args), choose_tiles(*args), strict=True):
                assert np.array_equal(a, b), (preset, schedule)
