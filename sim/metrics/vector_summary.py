"""The summary of many points at once: ``summary.json``'s figures as columns, one entry per point.

The twin of sim/metrics/summary.py's ``batch_summary`` (with shared.py's energy, utilisation and
pricing) over one group of a ``sim.batch.vector.PointsResult``: the same formulas on arrays,
flattened to the dotted names of a sweep table (``sim.studies.sweep.table.summary_row``), plus
``time_by_op_s.<kind>`` and ``bound``. Figures of the chip alone (area, cost to make, peaks, static
power) come from the scalar functions, once per distinct chip.
"""

from __future__ import annotations

import numpy as np

from hwmodels.cost import chip_cost, usd_per_chip_hour
from sim.batch.vector import Group
from sim.metrics.shared import API_2023_USD_PER_M_OUTPUT, API_2023_USD_PER_M_PROMPT, ChipEconomics, ChipFacts, run_info
from workloads.graph import Phase

GB = 1e9
BOUND_NAMES = ("compute", "memory", "interconnect", "overhead")
RESOURCE_NAMES = ("matrix", "vector", "hbm", "link")


def flatten_arrays(tree: dict, prefix: str = "") -> dict:
    """Nested dicts to dotted names; leaves are arrays (one entry per point) or per-group constants."""
    flat = {}
    for key, item in tree.items():
        if isinstance(item, dict):
            flat.update(flatten_arrays(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def _first_of_each(group: Group) -> list:
    """A config of each distinct chip of the group (``group.chips.unique``): the first point with it."""
    _, first = np.unique(group.chips.where, return_index=True)  # every distinct chip has a point
    return [group.cfgs[i] for i in first]


def _per_chip(group: Group, fn, what: str = ""):
    """``fn(cfg)`` of each point, computed once per distinct chip (once per batch when ``what`` names it),
    stacked as a column (``_stack``) and spread to the points."""
    if what:  # the batch's groups of the same chips (a grid's batches) share the stacked column
        column = group.rows.once(what, group.chips.unique, lambda chips: _stack(
            [group.rows.once(what, chip, lambda _chip, cfg=cfg: fn(cfg)) for chip, cfg in zip(chips, _first_of_each(
                group), strict=True)]))
    else:
        column = _stack([fn(cfg) for cfg in _first_of_each(group)])
    return _spread(column, group.chips.where)


def _spread(column, where: np.ndarray):
    """A column of the distinct chips' values as one of the points' (dicts recursively)."""
    if isinstance(column, dict):
        return {k: _spread(v, where) for k, v in column.items()}
    if isinstance(column, np.ndarray):
        return column[where]
    picked = np.empty(len(column), dtype=object)
    picked[:] = column
    return picked[where].tolist()


def _chip_columns(group: Group) -> dict:
    """Figures of each point's chip: peaks, area, cost to make, static and board power."""
    act = group.cfgs[0].precision.activations

    def facts(cfg):
        chip = cfg.hardware
        area, energy = group.rows.economics(chip)
        econ = ChipEconomics(area, energy, chip_cost(chip, area))
        peak = chip.peak_flops(act)
        run_as = chip.matmul_dtype(act)
        fc = ChipFacts(econ, cfg)
        return {"peak": peak, "vector": chip.vector_flops, "hbm": chip.hbm_bandwidth_Bps,
                "link": chip.link_bandwidth_Bps, "capacity": chip.hbm_capacity_bytes,
                "peaks": {"matrix_TFLOPS": peak / 1e12, "matrix_dtype": run_as.value if run_as else "vector",
                          "hbm_GBps": chip.hbm_bandwidth_GBps, "link_GBps_per_direction": chip.link_bandwidth_GBps,
                          "ridge_flop_per_byte": peak / chip.hbm_bandwidth_Bps},
                "static_W": econ.energy.static_W, "board_W": chip.board_power_W or None,
                "chip_usd": econ.cost.total_usd, "area_mm2": econ.area.total_mm2,
                "area": fc.area(), "cost": fc.cost(), "name": chip.name,
                "freq_GHz": chip.freq_GHz, "board_power_W": float(chip.board_power_W)}

    return _per_chip(group, facts, f"facts {act.value} {group.cfgs[0].cost!r}")


def _stack(values: list):
    """A column of per-point values (numbers as an array; dicts recursively; others as a list)."""
    first = values[0]
    if isinstance(first, dict):
        return {k: _stack([v[k] for v in values]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool) and None not in values:
        return np.array(values, dtype=float) if isinstance(first, float) else np.array(values)
    return values


def group_columns(group: Group) -> dict:
    """Every summary figure of the group's points, flattened: {dotted name: array or list}."""
    cfg, tl, mem = group.cfgs[0], group.timeline, group.memory
    w, dp, chips, size = cfg.workload, cfg.parallel.dp, cfg.parallel.tp, len(group.cfgs)
    c = _chip_columns(group)
    total, ttft, produced = tl.end_s, tl.ttft_s, float(w.decode_tokens - 1)
    work = {name: group.work[name] for name in RESOURCE_NAMES}
    matrix, vector, hbm, wire = (work[n][1] for n in RESOURCE_NAMES)
    out_tokens, prompt_tokens = w.batch * (1 + produced), w.batch * w.prompt_tokens
    bounds = {name: tl.bound_s[i] for i, name in enumerate(BOUND_NAMES)}
    bounds["overhead"] = bounds["overhead"] + tl.host_overhead_s
    bounds["idle"] = np.zeros(size)
    peak_of = {"matrix": c["peak"], "vector": c["vector"], "hbm": c["hbm"], "link": c["link"]}
    capacity = c["capacity"]
    figures = {
        "ttft_s": ttft, "tpot_s": (total - ttft) / produced if produced else [None] * size, "total_s": total,
        "output_tokens_per_s": w.batch * (1 + produced) / total * dp,
        "prefill_tokens_per_s": w.batch * w.prompt_tokens / ttft * dp,
        "time_by_bound_s": bounds, "host_overhead_s": tl.host_s, "flops_per_chip": matrix + vector,
        "matrix_flops_per_chip": matrix, "hbm_bytes_per_chip": hbm, "link_bytes_per_chip": wire,
        "busy_fraction": {n: work[n][0] / total for n in RESOURCE_NAMES},
        "utilisation_by_resource": {n: work[n][1] / (peak_of[n] * total) for n in RESOURCE_NAMES},
        "hbm_GB_per_chip": {"weights": np.full(size, mem.weights / GB), "kv_cache": np.full(size, mem.kv_cache / GB),
                            "activations": np.full(size, mem.activations / GB),
                            "used": np.full(size, (mem.weights + mem.kv_cache + mem.activations) / GB),
                            "capacity": capacity / GB},
        "peaks": c["peaks"],
        "utilisation": {"compute_arrays": matrix / (c["peak"] * total), "hbm_bandwidth": hbm / (c["hbm"] * total),
                        "links": wire / (c["link"] * total) if chips > 1 else np.zeros(size)},
    }
    return flatten_arrays({**figures, **_energy_and_price(group, c, total, out_tokens, prompt_tokens),
                           "run": _run(group)}) | _kinds_and_bound(group, bounds)


def _energy_and_price(group: Group, c: dict, wall, out_tokens: float, prompt_tokens: float) -> dict:
    cfg, tl = group.cfgs[0], group.timeline
    dp = cfg.parallel.dp  # shared.energy and pricing over a span of every replica (sim/metrics/summary.py)
    chips = cfg.parallel.tp * dp
    share = cfg.parallel.tp * dp / chips
    out_tokens, prompt_tokens = out_tokens * dp, prompt_tokens * dp
    parts = {name: joules * share for name, joules in group.energy_parts.items()}
    parts["static_J"] = c["static_W"] * wall
    per_chip = parts["compute_J"] + parts["sram_J"] + parts["hbm_J"] + parts["link_J"] + parts["host_J"] \
        + parts["static_J"]
    energy_J, avg = chips * per_chip, per_chip / wall
    by_phase = {}
    for phase in (Phase.prefill, Phase.decode):
        seconds = tl.phase_s[phase]
        with np.errstate(divide="ignore", invalid="ignore"):
            value = group.by_phase_J[phase] * share / seconds + c["static_W"]
        by_phase[phase.value] = [v if s else None for v, s in zip(value.tolist(), seconds.tolist(), strict=True)]
    price, source = _chip_hour(group, c, avg)
    freq = c["freq_GHz"]
    lowest, peak = tl.extra["clock_lowest"], tl.peak_J_per_s + c["static_W"]
    board = c["board_power_W"]
    clock = {"sustained_clock_GHz": freq * tl.extra["clock_mean"], "min_clock_GHz": freq * lowest,
             "boost_clock_GHz": freq, "power_limited": list(lowest < 1.0),
             "power_cap": [cfg.power.cap] * len(freq)}
    run_usd = chips * price * wall / 3600
    rate = out_tokens / wall
    return {"energy_J": energy_J, "avg_power_W": avg, "joules_per_output_token": energy_J / out_tokens,
            "peak_power_W": peak, "sustained_clock_GHz": clock["sustained_clock_GHz"], "chip_area_mm2": c["area_mm2"],
            "chip_cost_usd": c["chip_usd"], "usd_per_chip_hour": price,
            "usd_per_million_output_tokens": run_usd / out_tokens * 1e6,
            "usd_per_million_tokens": run_usd / (out_tokens + prompt_tokens) * 1e6,
            "output_tokens_per_s_per_usd": rate / (chips * c["chip_usd"]),
            "output_tokens_per_s_per_W": rate / (chips * avg),
            "energy": {"convention": "energy_J: whole run, all chips; power: per chip", "energy_J_per_chip": per_chip,
                       "avg_power_W_all_chips": chips * avg, "static_power_W": c["static_W"],
                       "board_power_W": c["board_W"], "by_component_J_per_chip": parts,
                       "power_W_by_phase": by_phase, **clock,
                       "over_budget": list((board != 0) & (peak > board * (1 + 1e-9)))},
            "area": c["area"],
            "cost": {**c["cost"], "usd_per_chip_hour_source": source, "run_usd": run_usd,
                     "api_2023_usd_for_this_run": (prompt_tokens * API_2023_USD_PER_M_PROMPT
                                                   + out_tokens * API_2023_USD_PER_M_OUTPUT) / 1e6,
                     "api_2023_usd_per_million_output_tokens": API_2023_USD_PER_M_OUTPUT,
                     "api_2023_usd_per_million_prompt_tokens": API_2023_USD_PER_M_PROMPT}}


def _chip_hour(group: Group, c: dict, avg) -> tuple:
    """(USD per chip-hour, its source) per point: shared.pricing's rule."""
    prices = group.cfgs[0].cost
    if prices.usd_per_chip_hour is not None:
        return np.full(len(avg), float(prices.usd_per_chip_hour)), "cost.usd_per_chip_hour"
    per_hour = usd_per_chip_hour(c["chip_usd"], avg, usd_per_kWh=prices.usd_per_kWh,
                                 amortisation_years=prices.amortisation_years, utilisation=prices.utilisation,
                                 price_markup=prices.price_markup)
    head = (f"derived: cost to make x {prices.price_markup:g} over {prices.amortisation_years:g} years at "
            f"{prices.utilisation:.0%} use, plus ")
    return per_hour, [f"{head}{w:,.0f} W at ${prices.usd_per_kWh:g}/kWh" for w in avg]


def _run(group: Group) -> dict:
    cfg, w = group.cfgs[0], group.cfgs[0].workload
    own = {"replicas": cfg.parallel.dp, "batch": w.batch, "prompt_tokens": w.prompt_tokens,
           "decode_tokens": w.decode_tokens, "fidelity": cfg.fidelity.value, "passes": group.timeline.passes,
           "prefill_passes": 1, "decode_steps": group.timeline.passes - 1}  # one prefill pass, no drafts or pp
    wall = group.wall_s / len(group.cfgs)
    return _per_chip(group, lambda c: run_info(c, c.parallel.tp * c.parallel.dp, own, 0, len(group.table.ops), wall))


def _kinds_and_bound(group: Group, bounds: dict) -> dict:
    """``time_by_op_s.<kind>`` (prefill and decode together) and the dominant bound of each point."""
    cols = {f"time_by_op_s.{kind}": group.timeline.kind_s[:, i] for i, kind in enumerate(group.table.kinds)}
    stacked = np.stack([bounds[b] for b in BOUND_NAMES])
    cols["bound"] = np.array(BOUND_NAMES, dtype=object)[np.argmax(stacked, axis=0)].tolist()
    return cols
