"""``llmsim-grid`` on the batch path: every point's config built in place, all simulated at once.

For each combination of swept presets (config groups) the composed config is converted once
(``point_configs.ConfigBuilder``); each part is built once per combination of its own swept values
(``point_configs.PartTable``) and each point's config is the base with those parts in place; the
points go through ``sim.batch.vector.simulate_points`` together, and the table has the columns and
rows the point-by-point grid gives (``tests/test_vector_grid.py`` compares the two). Points the
batch path does not vectorise run on the scalar path inside it and are counted in
``attrs["fallbacks"]``. Returns None where the configs cannot be built in place exactly, or where no
point can be vectorised (a discrete-event grid): the grid then runs each point as before (with
``--jobs``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from hwmodels.chip import AT_CLOCK
from sim.config.compose import to_run_config
from sim.studies.sweep.point_configs import ConfigBuilder, PartTable, equivalent, settable
from sim.studies.sweep.table import failed_bound, make_table
from sim.studies.sweep.vector_table import result_table


def point_at(axes: dict[str, list], keys: list[str], i: int) -> dict:
    """Point ``i`` of the product of ``axes`` (the first axis slowest), as ``grid_points`` lists it."""
    codes = np.unravel_index(i, [len(axes[k]) for k in keys])
    return {k: axes[k][int(c)] for k, c in zip(keys, codes, strict=True)}


def _builders(base: DictConfig, axes: dict, groups: dict, keys: list[str], is_group) -> tuple | None:
    """({group key: (ConfigBuilder, point positions)} for each combination of swept presets, in point
    order; the points' value indices, axes x points), or None when a swept field cannot be set in place."""
    group_axes = [a for a, k in enumerate(keys) if is_group(k)]
    size = int(np.prod([len(axes[k]) for k in keys]))
    codes = np.indices([len(axes[k]) for k in keys]).reshape(len(keys), size)
    out = {}
    for combo in itertools.product(*(range(len(axes[keys[a]])) for a in group_axes)):
        key = tuple((keys[a], axes[keys[a]][c]) for a, c in zip(group_axes, combo, strict=True))
        members = np.flatnonzero(np.all([codes[a] == c for a, c in zip(group_axes, combo, strict=True)], axis=0)) \
            if group_axes else np.arange(size)
        try:
            builder = ConfigBuilder(to_run_config(groups.get(key, base)))
        except Exception:  # noqa: BLE001 - the group's own error is reported point by point, as before
            return None
        if not all(settable(k, builder.base) for k in keys if not is_group(k)):
            return None
        out[key] = (builder, members)
    return out, codes


RATES_AT_CLOCK = tuple(f"hardware.{rate}" for rate in AT_CLOCK)  # made per cycle at the point's clock


def _rate_at_clock(base: DictConfig, axes: dict, groups: dict) -> bool:
    """Whether a point's chip takes a rate given at its clock (turned into a per-cycle figure when the chip is
    made): swept itself, or given with a swept clock. Setting fields one after another on a made chip would keep
    the base clock's figure (independent review), so such grids are composed point by point."""
    if any(k in axes for k in RATES_AT_CLOCK):
        return True
    return "hardware.freq_GHz" in axes and any(OmegaConf.select(cfg, k) is not None
                                               for cfg in [base, *groups.values()] for k in RATES_AT_CLOCK)


CHECKED = 16  # points tried at each end of the grid for one that builds, to hold building in place to composing


def run_vectorised(base: DictConfig, axes: dict[str, list], groups: dict, params: list[str]) -> pd.DataFrame | None:
    """The grid's table over the product of ``axes``, or None when a swept key cannot be set in place exactly."""
    from sim.batch.vector import scalar_reasons, simulate_points
    from sim.studies.sweep.grid import is_group as group_key

    keys = list(axes)
    if _rate_at_clock(base, axes, groups):
        return None
    groups_of = {k for k in keys if group_key(k)}

    def is_group(key: str) -> bool:
        return key in groups_of if key in keys else group_key(key)

    made = _builders(base, axes, groups, keys, is_group)
    if made is None:
        return None
    builders, codes = made
    first, last = next(iter(builders)), list(builders)[-1]  # the keys map alike in every group
    # checked at both ends, on the first points either path accepts (a bad value on an axis fails its points only)
    for key, order in ((first, builders[first][1][:CHECKED]), (last, builders[last][1][::-1][:CHECKED])):
        if not equivalent(builders[key][0], groups.get(key, base), [point_at(axes, keys, int(i)) for i in order],
                          is_group):
            return None
    fields = [k for k in keys if not is_group(k)]
    field_codes = codes[[keys.index(k) for k in fields]]
    cfgs, failed, where = [], {}, []
    for builder, members in builders.values():
        built, made_cfgs, rejected = PartTable(builder, fields, [axes[k] for k in fields]).configs(
            field_codes[:, members])
        cfgs.extend(made_cfgs)
        where.extend(members[built].tolist())
        failed.update({int(members[j]): reason for j, reason in rejected.items()})
    if all(scalar_reasons(cfgs)):  # nothing to vectorise: the point-by-point grid (--jobs, progress)
        return None
    result = simulate_points(cfgs)
    table = result_table(result)
    table.index = np.asarray(where)[table.index.to_numpy()]
    if failed:
        extra = pd.DataFrame([{"status": "failed", "reason": r, "bound": failed_bound(r)} for r in failed.values()],
                             index=list(failed))
        table = pd.concat([table, extra])
    values = pd.DataFrame({k: [axes[k][int(c)] for c in codes[a]] for a, k in enumerate(keys)})
    table = pd.concat([values, table.sort_index()], axis=1)
    table.insert(0, "point", range(codes.shape[1]))
    attrs = {"fallbacks": dict(result.fallbacks), "vectorised": result.vectorised}
    table = make_table(table.reset_index(drop=True), params)
    table.attrs.update(attrs)
    return table
