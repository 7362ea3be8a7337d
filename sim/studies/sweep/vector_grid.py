"""``llmsim-grid`` on the batch path: every point's config built in place, all simulated at once.

For each combination of swept presets (config groups) the composed config is converted once
(``point_configs.ConfigBuilder``); each point's swept fields are set on it; the points go through
``sim.batch.vector.simulate_points`` together, and the table has the columns and rows the point-by-
point grid gives (``tests/test_vector_grid.py`` compares the two). Points the batch path does not
vectorise run on the scalar path inside it and are counted in ``attrs["fallbacks"]``. Returns None
where the configs cannot be built in place exactly, or where no point can be vectorised (a
discrete-event grid): the grid then runs each point as before (with ``--jobs``).
"""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig

from sim.config.compose import to_run_config
from sim.studies.sweep.point_configs import ConfigBuilder, equivalent, settable
from sim.studies.sweep.table import failed_bound, make_table
from sim.studies.sweep.vector_table import result_table


def run_vectorised(base: DictConfig, points: list[dict], groups: dict, params: list[str]) -> pd.DataFrame | None:
    """The grid's table, or None when a swept key cannot be set in place exactly."""
    from sim.batch.vector import simulate_points, why_scalar
    from sim.studies.sweep.grid import is_group as group_key

    keys = {k for point in points[:1] for k in point}
    groups_of = {k for k in keys if group_key(k)}

    def is_group(key: str) -> bool:
        return key in groups_of if key in keys else group_key(key)

    builders: dict[tuple, ConfigBuilder] = {}
    by_group: dict[tuple, list[int]] = {}
    for i, point in enumerate(points):
        by_group.setdefault(tuple((k, point[k]) for k in point if is_group(k)), []).append(i)
    for key, members in by_group.items():
        dcfg = groups.get(key, base)
        try:
            builder = builders[key] = ConfigBuilder(to_run_config(dcfg))
        except Exception:  # noqa: BLE001 - the group's own error is reported point by point, as before
            return None
        fields = [k for k in points[members[0]] if not is_group(k)]
        if not all(settable(k, builder.base) for k in fields):
            return None
    first, last = next(iter(by_group)), list(by_group)[-1]  # the keys map alike in every group
    for key, i in ((first, by_group[first][0]), (last, by_group[last][-1])):
        if not equivalent(builders[key], groups.get(key, base), [points[i]], is_group):
            return None
    cfgs, failed, where = [], {}, []
    for key, members in by_group.items():
        for i in members:
            try:
                cfgs.append(builders[key].build({k: v for k, v in points[i].items() if not is_group(k)}))
                where.append(i)
            except Exception as err:  # noqa: BLE001 - a point its checks reject is a failed row
                failed[i] = str(err).splitlines()[0] if str(err) else type(err).__name__
    if all(why_scalar(c) for c in cfgs):  # nothing to vectorise: the point-by-point grid (--jobs, progress)
        return None
    result = simulate_points(cfgs)
    table = result_table(result)
    table.index = [where[j] for j in table.index]
    if failed:
        extra = pd.DataFrame([{"status": "failed", "reason": r, "bound": failed_bound(r)} for r in failed.values()],
                             index=list(failed))
        table = pd.concat([table, extra])
    axes = pd.DataFrame(points)
    table = pd.concat([axes, table.sort_index()], axis=1)
    table.insert(0, "point", range(len(points)))
    attrs = {"fallbacks": dict(result.fallbacks), "vectorised": result.vectorised}
    table = make_table(table.reset_index(drop=True), params)
    table.attrs.update(attrs)
    return table
