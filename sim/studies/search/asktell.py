"""Search at batch speed: trials asked, evaluated and told in batches (Optuna's ask/tell).

A batch of designs is built, then simulated together: single-batch designs on the vectorised
analytic path (``sim.batch.vector.simulate_points``; a design it does not vectorise runs on the
scalar path inside it), other kinds one by one as before. Each design's metrics are what
``evaluate`` gives it (tests/test_search_batch.py compares them). The batch is one NSGA-II
generation (its population: the sampler breeds a generation from the ones before it) and one trial
for TPE, whose proposals depend on every earlier result; ``search.batch`` sets it. The trials are
reproducible from the seed and the batch size; after the first generation they differ from those of
one-at-a-time asking (Optuna's NSGA-II sees the batch's trials still running when it breeds).
"""

from __future__ import annotations

import math

import numpy as np
import optuna

from hwmodels.chip import HardwareError
from sim.config.schema import RunError, WorkloadKind
from sim.studies.search.evaluate import Infeasible, build, design_metrics, evaluate
from workloads.model import ModelError

FAILURES = (HardwareError, ModelError, RunError)


def batch_size(search_node: dict, trials: int) -> int:
    """Trials per batch: ``search.batch``, else an NSGA-II generation, else 1."""
    size = int(search_node.get("batch") or 0)
    if size > 0:
        return size
    if str(search_node.get("sampler", "nsga2")) == "nsga2":
        return max(8, min(50, trials // 5))  # the population size Search.sampler gives NSGA-II
    return 1


def _metrics(row: dict, cfg) -> dict:
    """A design's metrics from its sweep row: the summary's numeric figures, then the design's own."""
    skip = ("run.", "time_by_op_s.")
    metrics = {k: float(v) for k, v in row.items()  # numbers and flags, as evaluate() flattens a summary
               if isinstance(v, (int, float, np.bool_, np.integer, np.floating)) and not k.startswith(skip)
               and k != "point" and not (isinstance(v, float) and math.isnan(v))}
    metrics.update(design_metrics(cfg))
    chips = cfg.parallel.tp * cfg.parallel.pp
    metrics["chips"] = float(chips)
    metrics["system_cost_usd"] = chips * metrics["chip_cost_usd"]
    return metrics


def evaluate_many(base: dict, overrides: list[dict]) -> list[dict | Infeasible]:
    """Metrics (or the Infeasible reason) of each design ``overrides[i]`` applied to ``base``."""
    from sim.batch.vector import simulate_points
    from sim.studies.sweep.vector_table import result_table

    out: list = [None] * len(overrides)
    cfgs, where = [], []
    for i, ov in enumerate(overrides):
        try:
            cfg = build(base, ov)
        except Infeasible as err:
            out[i] = err
            continue
        if cfg.workload.kind is not WorkloadKind.single_batch:
            try:
                out[i] = evaluate(base, ov)
            except Infeasible as err:
                out[i] = err
            continue
        cfgs.append(cfg)
        where.append(i)
    if not cfgs:
        return out
    result = simulate_points(cfgs)
    for j, err in result.failed.items():
        if not isinstance(err, FAILURES):
            raise err
        out[where[j]] = Infeasible(str(err))
    table = result_table(result)
    for j, row in zip(table.index, table.to_dict("records"), strict=True):
        if row.get("status") == "ok":
            out[where[j]] = _metrics(row, cfgs[j])
    return out


def optimize_batched(study: optuna.Study, search, trials: int, size: int, finished) -> None:
    """Ask ``size`` trials, evaluate their designs together, tell each; until ``trials`` have finished."""
    while (left := trials - finished(study)) > 0:
        asked = [study.ask() for _ in range(min(size, left))]
        values = [{p.key: p.suggest(t) for p in search.params} for t in asked]
        outcomes = search.designs(values)
        for trial, value, (metrics, reason) in zip(asked, values, outcomes, strict=True):
            try:
                objectives = search.record(trial, value, metrics, reason)
            except Infeasible:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            study.tell(trial, objectives)
