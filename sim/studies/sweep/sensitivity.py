"""What buys the most: the change in one metric for +-10% of each hardware parameter and for
each software option, for one configuration, ranked.

Hardware parameters are scaled by ``1 +- step`` one at a time (whole numbers rounded, by at
least one: 4 cores +-10% is 3 and 5 cores, and the table says so). Software options are
switched one at a time to their next choice: weights and KV cache one format narrower,
the other attention kernel, twice (and half) the tensor-parallel degree, twice the batch. A
variant that cannot run (the model no longer fits, a degree that does not divide the heads)
is a row with its reason. Rows are ranked by ``gain_pct``, the change in the better
direction of the metric (higher tokens/s, lower latency, cost or energy).

Each hardware row carries what the change costs: ``d_area_mm2`` (die area), ``d_power_W`` (the
chip's maximum power: static plus its arrays and its HBM flat out at once)
and ``d_cost_usd`` (cost to make), and the gain per $1,000 and per 100 mm^2 of it
(``gain_per_kusd``, ``gain_per_100mm2``; empty where the change costs nothing or saves).
``rankings`` orders the rows by raw gain, by gain per dollar and by gain per mm^2.

    llmsim-sensitivity hardware=teaching_npu workload.batch=1 --metric tpot_s
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from hwmodels.area import die_area
from hwmodels.cost import chip_cost
from hwmodels.energy import chip_energy
from hwmodels.numerics import DType
from sim.config.schema import RunConfig, WorkloadKind
from sim.metrics.catalog import CATALOG, UnknownMetric, higher_is_better
from sim.studies.kinds import WORKLOADS
from sim.studies.sweep import FAILURES, ReportError
from sim.studies.sweep.table import flatten
from workloads.graph import AttentionKernel

HARDWARE = (  # (config key, what it is)
    ("hardware.num_cores", "compute (cores of arrays)"),
    ("hardware.freq_GHz", "clock"),
    ("hardware.vector_lanes", "vector unit (lanes)"),
    ("hardware.hbm_bandwidth_GBps", "HBM bandwidth"),
    ("hardware.hbm_capacity_GB", "HBM capacity"),
    ("hardware.sram_MiB", "SRAM"),
    ("hardware.link_bandwidth_GBps", "link bandwidth"),
    ("hardware.link_latency_us", "link latency"),
    ("hardware.kernel_overhead_us", "kernel launch overhead"),
)
NARROWER = {DType.fp32: DType.bf16, DType.tf32: DType.bf16, DType.bf16: DType.fp8, DType.fp16: DType.fp8,
            DType.fp8: DType.int4, DType.int8: DType.int4}


def _scaled(value, factor: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, int):
        new = round(value * factor)
        if new == value:
            new = value + (1 if factor > 1 else -1)
        return max(new, 1) if value >= 1 else new
    return value * factor


def hardware_variants(cfg: RunConfig, step: float) -> list[dict]:
    """(+step and -step) of each hardware parameter that is not zero."""
    out = []
    for key, what in HARDWARE:
        field = key.split(".", 1)[1]
        base = getattr(cfg.hardware, field)
        if not base:
            continue
        for sign in (+1, -1):
            new = _scaled(base, 1 + sign * step)
            if new == base:
                continue
            out.append({"parameter": key, "what": what, "kind": "hardware", "change": f"{sign * step:+.0%}",
                        "base_value": base, "new_value": new,  # a chip its checks reject is a failed row
                        "make": lambda field=field, new=new: dataclasses.replace(
                            cfg, hardware=dataclasses.replace(cfg.hardware, **{field: new}))})
    return out


def software_variants(cfg: RunConfig) -> list[dict]:
    """Each software option switched to its next choice."""
    out = []

    def add(key, what, base, new, make):
        out.append({"parameter": key, "what": what, "kind": "software", "change": f"{base} -> {new}",
                    "base_value": str(base), "new_value": str(new), "make": make})

    p = cfg.precision
    for role in ("weights", "kv_cache"):
        old = getattr(p, role)
        if old in NARROWER:
            new = NARROWER[old]
            add(f"precision.{role}", f"{role.replace('_', ' ')} format", old.value, new.value,
                lambda role=role, new=new: dataclasses.replace(cfg, precision=dataclasses.replace(p, **{role: new})))
    kernel = cfg.attention.kernel
    other = AttentionKernel.fused if kernel is AttentionKernel.unfused else AttentionKernel.unfused
    add("attention.kernel", "attention kernel", kernel.value, other.value,
        lambda: dataclasses.replace(cfg, attention=dataclasses.replace(cfg.attention, kernel=other)))
    tp = cfg.parallel.tp
    for new_tp in (tp * 2, tp // 2):
        if new_tp >= 1 and new_tp != tp:
            add("parallel.tp", "tensor-parallel degree", tp, new_tp,
                lambda n=new_tp: dataclasses.replace(cfg, parallel=dataclasses.replace(cfg.parallel, tp=n)))
    batch = cfg.workload.batch
    add("workload.batch", "batch", batch, batch * 2,
        lambda: dataclasses.replace(cfg, workload=dataclasses.replace(cfg.workload, batch=batch * 2)))
    return out


def price_tags(cfg: RunConfig) -> dict:
    """What the chip of ``cfg`` takes: area, maximum power (static, arrays at their sustained rate and
    HBM streaming, all at once) and cost to make."""
    chip = cfg.hardware
    area = die_area(chip)
    energy = chip_energy(chip, area.total_mm2)
    act = cfg.precision.activations
    flat_out = energy.work(matrix_flops=chip.peak_flops(act) * chip.matmul_efficiency,  # one second of it
                           matrix_dtype=chip.matmul_dtype(act), hbm_bytes=chip.hbm_bandwidth_Bps * chip.hbm_efficiency)
    flat_out = flat_out.total_J
    return {"area": area.total_mm2, "power": energy.static_W + flat_out, "cost": chip_cost(chip, area).total_usd}


def _priced(row: dict, base: dict, new: dict) -> None:
    """Fill ``row``'s cost columns from the base chip's and the variant's price tags."""
    row.update(d_area_mm2=new["area"] - base["area"], d_power_W=new["power"] - base["power"],
               d_cost_usd=new["cost"] - base["cost"])
    if row["gain_pct"] is not None and row["d_cost_usd"] > 1e-9:
        row["gain_per_kusd"] = row["gain_pct"] / (row["d_cost_usd"] / 1000)
    if row["gain_pct"] is not None and row["d_area_mm2"] > 1e-9:
        row["gain_per_100mm2"] = row["gain_pct"] / (row["d_area_mm2"] / 100)


def metric_of(cfg: RunConfig, metric: str) -> float:
    """Simulate ``cfg`` and return ``metric`` from its flattened summary."""
    kind = WORKLOADS[cfg.workload.kind]
    flat = flatten(kind.summarize(kind.simulate(cfg)).as_dict())
    value = flat.get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _not_a_metric(metric, cfg, [k for k, v in flat.items()
                                          if isinstance(v, (int, float)) and not isinstance(v, bool)])
    return float(value)


def _not_a_metric(metric: str, cfg: RunConfig, known: list[str]) -> ReportError:
    """The one line for a metric this run has not: the run's numeric figures, and where a known one comes from."""
    other = "serving" if cfg.workload.kind is WorkloadKind.single_batch else "single_batch"
    elsewhere = f" (a metric of workload={other} runs)" if metric in CATALOG else ""
    return ReportError(f"'{metric}' is not a metric of this {cfg.workload.kind.value} run{elsewhere}; known: "
                       f"{', '.join(known)}")


def metric_of_many(cfg: RunConfig, makers: list, metric: str) -> tuple[list, list]:
    """(configs, values): ``cfg`` and each variant ``makers[i]()``, and ``metric`` of each (or the exception
    it fails with).

    Single-batch runs go through the vectorised path together (sim/batch/vector.py), others one by one."""
    if cfg.workload.kind is not WorkloadKind.single_batch:
        built = [cfg] + [_try(m) for m in makers]
        return built, [c if isinstance(c, Exception) else _try(lambda c=c: metric_of(c, metric)) for c in built]
    from sim.batch.vector import simulate_points
    from sim.studies.sweep.vector_table import result_table

    built = [cfg] + [_try(m) for m in makers]
    ok = [i for i, c in enumerate(built) if not isinstance(c, Exception)]
    result = simulate_points([built[i] for i in ok])
    table = result_table(result)
    known = [c for c in table.columns if c not in ("status", "reason", "bound") and not c.startswith("time_by_op_s.")
             and not any(isinstance(v, (str, bool, np.bool_)) for v in table[c].dropna())]  # all None: a metric
    if metric not in known:
        raise _not_a_metric(metric, cfg, known)
    out = list(built)
    for j, i in enumerate(ok):
        err = result.failed.get(j)
        value = table.loc[j, metric] if err is None else None
        if err is None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            err = ReportError(f"'{metric}' is not a metric of this run")
        out[i] = err if err is not None else float(value)
    return built, out


def _try(fn):
    try:
        return fn()
    except FAILURES as err:
        return err


def sensitivities(cfg: RunConfig, metric: str = "output_tokens_per_s", step: float = 0.1) -> pd.DataFrame:
    """The ranked table of changes in ``metric`` for each variant of ``cfg``.

    Columns: parameter, what, kind (hardware/software), change, base_value, new_value,
    metric, base, value, delta (value - base, in the metric's unit), delta_pct, gain_pct (the
    change in the metric's better direction, %), status (ok/failed), reason, and for hardware
    rows d_area_mm2, d_power_W, d_cost_usd, gain_per_kusd, gain_per_100mm2 (module docstring).
    """
    try:
        sign = 1.0 if higher_is_better(metric) else -1.0
    except UnknownMetric as err:
        raise ReportError(str(err)) from None
    variants = hardware_variants(cfg, step) + software_variants(cfg)
    built, values = metric_of_many(cfg, [v.pop("make") for v in variants], metric)
    base = values[0]
    if isinstance(base, Exception):
        raise base
    tags = price_tags(cfg)
    rows = []
    for variant, changed, value in zip(variants, built[1:], values[1:], strict=True):
        row = {**variant, "metric": metric, "base": base, "value": None, "delta": None, "delta_pct": None,
               "gain_pct": None, "status": "ok", "reason": None, "d_area_mm2": None, "d_power_W": None,
               "d_cost_usd": None, "gain_per_kusd": None, "gain_per_100mm2": None}
        if isinstance(value, FAILURES):
            row.update(status="failed", reason=str(value))
        elif isinstance(value, Exception):
            raise value
        else:
            delta = value - base
            pct = 100.0 * delta / base if base else float("nan")
            row.update(value=value, delta=delta, delta_pct=pct + 0.0, gain_pct=sign * pct + 0.0)
            if row["kind"] == "hardware":
                _priced(row, tags, price_tags(changed))
        rows.append(row)
    table = pd.DataFrame(rows)
    best = table.groupby("parameter")["gain_pct"].transform(lambda g: g.abs().max()).fillna(-1)
    table = table.assign(_rank=best).sort_values(["_rank", "parameter", "gain_pct"], ascending=[False, True, False],
                                                 kind="stable").drop(columns="_rank").reset_index(drop=True)
    for col in ("base_value", "new_value"):
        table[col] = table[col].map(lambda v: f"{v:.6g}" if isinstance(v, float) else str(v))
    return table


RANKINGS = {"gain": "gain_pct", "per $1,000": "gain_per_kusd", "per 100 mm^2": "gain_per_100mm2"}
NOISE_PCT = 1e-6  # a change below this (one part in 1e8) is float rounding between two runs, not a gain


def rankings(table: pd.DataFrame, top: int = 5) -> dict[str, pd.DataFrame]:
    """The ok rows that gain (by more than ``NOISE_PCT``), best first: by raw gain, by gain per $1,000 and by gain
    per 100 mm^2 (the hardware changes that cost more), and, by gain, the hardware changes that gain at no extra cost
    to make and no extra area (their gain per unit is infinite, so they are listed apart rather than above a change
    worth its price)."""
    gaining = table[(table["status"] == "ok") & (table["gain_pct"] > NOISE_PCT)]
    out = {name: gaining.dropna(subset=[column]).sort_values(column, ascending=False, kind="stable").head(top)
           for name, column in RANKINGS.items()}
    priced = gaining.dropna(subset=["d_cost_usd", "d_area_mm2"])
    free = priced[(priced["d_cost_usd"] <= 1e-9) & (priced["d_area_mm2"] <= 1e-9)]
    out["gain at no extra cost or area"] = free.sort_values("gain_pct", ascending=False, kind="stable").head(top)
    return out


def write_sensitivity(table: pd.DataFrame, out: Path, cfg: RunConfig) -> None:
    """The table (CSV and Parquet) and its chart under ``out``."""
    from sim.plots.charts import CHARTS, Chart
    from sim.studies.sweep.table import write_table

    write_table(table, out, "sensitivity")
    title = f"What buys the most: {cfg.model.name} on {cfg.hardware.name}, batch {cfg.workload.batch}"
    chart = CHARTS[Chart.sensitivity]
    chart.draw(table, out / chart.file(), title)

