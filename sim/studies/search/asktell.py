"""Search at batch speed: trials asked, evaluated and told in batches (Optuna's ask/tell).

A batch of designs is built, then simulated together: single-batch designs on the vectorised
analytic path (``sim.batch.vector.simulate_points``; a design it does not vectorise runs on the
scalar path inside it), other kinds (serving) one by one, on ``search.jobs`` worker processes
where that is more than one. Designs are built from the base config's Template
(sim/config/template.py), not through OmegaConf each. Each design's metrics are what
``evaluate`` gives it (tests/test_search_batch.py compares them). The batch is one NSGA-II
generation (its population: the sampler breeds a generation from the ones before it) and one trial
for TPE, whose proposals depend on every earlier result; ``search.batch`` sets it. The trials are
reproducible from the seed and the batch size; after the first generation they differ from those of
one-at-a-time asking (Optuna's NSGA-II sees the batch's trials still running when it breeds).
"""

from __future__ import annotations

import math
import multiprocessing
import signal

import numpy as np
import optuna

from hwmodels.chip import HardwareError
from sim.config.schema import RunError, WorkloadKind
from sim.config.template import Template
from sim.plots.charts import CHARTS, Chart
from sim.studies.search.evaluate import Infeasible, build, design_metrics, evaluate, evaluate_config, rule_out
from workloads.model import ModelError

FAILURES = (HardwareError, ModelError, RunError)
_WORKER: dict = {}  # in a pool's worker process: the base config and its Template


def _start_worker(base: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle: one line, no traceback
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's (sim/cli/common.py): stop_workers ends it quietly
    _WORKER.update(base=base, template=Template(base))


def _evaluate_in_worker(overrides: dict) -> dict | Infeasible:
    try:
        return evaluate(_WORKER["base"], overrides, _WORKER["template"])
    except Infeasible as err:
        return err


def _while_workers_run() -> None:
    """What this process does while its workers simulate: import the Pareto chart's module
    (matplotlib, about a second) that the report would import at the end. Once per process."""
    import importlib

    importlib.import_module(CHARTS[Chart.pareto].target.split(":")[0])


def stop_workers(pool) -> None:
    """End ``pool`` now: queued designs dropped, the worker processes terminated, not waited for."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the executor has no public handle
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)


def worker_pool(base: dict, jobs: int):
    """``jobs`` worker processes that evaluate designs of ``base`` (forked where the system can:
    they start with everything imported), or None for one job."""
    if jobs <= 1:
        return None
    from concurrent.futures import ProcessPoolExecutor

    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_start_worker, initargs=(base,))


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
    chips = cfg.parallel.tp * cfg.parallel.pp * cfg.parallel.dp  # the summary's run.chips: every replica
    metrics["chips"] = float(chips)
    metrics["system_cost_usd"] = chips * metrics["chip_cost_usd"]
    return metrics


def evaluate_many(base: dict, overrides: list[dict], template: Template | None = None,
                  pool=None, limits=()) -> list[dict | Infeasible]:
    """Metrics (or the Infeasible reason) of each design ``overrides[i]`` applied to ``base``
    (built through ``template`` where given; designs other than single batches simulated in
    ``pool``'s processes where given, each as ``evaluate`` would; one that breaks ``limits``,
    constraints on its own figures, is not simulated: ``rule_out``)."""
    from sim.batch.vector import simulate_points
    from sim.studies.sweep.vector_table import result_table

    out: list = [None] * len(overrides)
    cfgs, where, apart = [], [], []
    for i, ov in enumerate(overrides):
        try:
            cfg = build(base, ov, template)
            rule_out(cfg, limits)
        except Infeasible as err:
            out[i] = err
            continue
        if cfg.workload.kind is not WorkloadKind.single_batch:
            apart.append((i, cfg))
            continue
        cfgs.append(cfg)
        where.append(i)
    if pool is not None and len(apart) > 1:
        running = pool.map(_evaluate_in_worker, [overrides[i] for i, _ in apart])  # submitted: the workers run them
        _while_workers_run()
        for (i, _), got in zip(apart, running, strict=True):
            out[i] = got
    else:
        for i, cfg in apart:
            try:
                out[i] = evaluate_config(cfg)
            except Infeasible as err:
                out[i] = err
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


def optimize_batched(study: optuna.Study, search, trials: int, size: int, finished, jobs: int = 1) -> None:
    """Ask ``size`` trials, evaluate their designs together (on ``jobs`` processes), tell each; until
    ``trials`` have finished.

    The trials are asked and told on an in-memory copy of ``study`` (its finished trials, the
    same sampler and seed: the same proposals) and each finished batch is then stored in
    ``study`` at once (``add_trials``): a trial asked on the stored study costs some twenty
    writes, its parameters and attributes one by one. A run stopped mid-batch loses that batch.
    """
    mem = optuna.create_study(directions=study.directions, sampler=study.sampler)
    mem.add_trials(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                            optuna.trial.TrialState.FAIL)))
    pool = worker_pool(search.base, jobs)
    try:
        while (left := trials - finished(study)) > 0:
            mem.sampler = search.sampler(trials, 0, len(mem.trials))  # resumed or not, the same draws
            asked = [mem.ask() for _ in range(min(size, left))]
            values = [{p.key: p.suggest(t) for p in search.params} for t in asked]
            outcomes = search.designs(values, pool)
            for trial, value, (metrics, reason) in zip(asked, values, outcomes, strict=True):
                try:
                    objectives = search.record(trial, value, metrics, reason)
                except Infeasible:
                    mem.tell(trial, state=optuna.trial.TrialState.FAIL)
                    continue
                mem.tell(trial, objectives)
            done = mem.get_trials(deepcopy=False)
            study.add_trials([done[t.number] for t in asked])
    except BaseException:  # Ctrl-C or an error: the workers' designs are not waited for (a wait could hang)
        if pool is not None:
            stop_workers(pool)
        raise
    if pool is not None:
        pool.shutdown(cancel_futures=True)
