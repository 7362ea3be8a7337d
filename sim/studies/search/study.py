"""The Optuna study of a search: sampling, constraints, storage, resuming, parallel workers.

Optuna is used directly (not through ``hydra-optuna-sweeper``): that plugin pins Optuna 2.x,
whose SQLite storage breaks with SQLAlchemy 2, and a sweeper would launch one Hydra job (a
folder, a composition) per trial, which costs more than an analytic trial itself. Here each
trial sets its values on the composed config and simulates in-process.

* samplers: ``nsga2`` (``NSGAIISampler``) or ``tpe`` (multi-objective ``TPESampler``), seeded
  with ``search.seed``; constraints are set on each trial (``Trial.set_constraint``, Optuna >= 5) so an
  infeasible design stays in the study, marked, and steers the sampler away;
* a design the model code rejects (over the reticle, does not fit) is a failed trial whose
  ``reason`` is kept; it is reported as infeasible, never dropped;
* with NSGA-II, a design whose own figures (area, cost, maximum power: ``evaluate.DESIGN_FIGURES``)
  break a constraint is not simulated (no run could make it feasible): a failed trial, its reason
  naming the constraint, its figures kept for the report. TPE simulates every design: it learns
  where the feasible region lies from the infeasible trials' violations, which a failed trial lacks;
* storage: ``<out>/study.journal`` (Optuna's journal file: a trial stored is one appended line,
  where SQLite took some 36 ms of ORM work per trial); a ``study.db`` (SQLite) left by an
  earlier version is resumed as it is. Running the same command again resumes the study and
  runs only the trials missing to reach ``search.trials``; a study made with other settings is
  refused (``search.fresh=true`` starts over);
* ``search.jobs=N``: in batches (NSGA-II, or ``search.batch``), each batch's designs are simulated
  on N worker processes and told in order: the same trials as one job. One trial at a time
  (TPE), N worker processes (``spawn``) share the study through its file; their order (and so
  what the sampler proposes) then depends on timing. Processes, not threads: a trial is pure
  Python (the GIL would serialise threads).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from omegaconf import OmegaConf
from sqlalchemy.exc import SQLAlchemyError

from sim.config.template import Template
from sim.engine.model_version import MODEL_VERSION
from sim.metrics.catalog import UnknownMetric, higher_is_better
from sim.output.files import OutputWriteError
from sim.studies.search import SearchError
from sim.studies.search.evaluate import DESIGN_FIGURES, Infeasible, evaluate, space_errors
from sim.studies.search.space import Param, check_derived, config_overrides, is_config_key, parse_space, resolve
from sim.studies.sweep.points import input_digests

STUDY = "search"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # "<=" or ">="
    limit: float

    def violation(self, value: float) -> float:
        """> 0 when violated (Optuna's convention), by how much."""
        return value - self.limit if self.op == "<=" else self.limit - value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.limit:g}"


def parse_constraints(spec: dict) -> list[Constraint]:
    out = []
    for metric, rule in (spec or {}).items():
        if isinstance(rule, (int, float)) and not isinstance(rule, bool):
            out.append(Constraint(metric, "<=", float(rule)))
            continue
        text = str(rule).strip()
        op, number = text[:2], text[2:]
        try:
            if op not in ("<=", ">="):
                raise ValueError(op)
            out.append(Constraint(metric, op, float(number)))
        except ValueError:
            raise SearchError(f"search.constraints.{metric}: expected '<= limit' or '>= limit' (got "
                              f"{rule!r})") from None
    for a in out:
        for b in out:
            if a.metric == b.metric and a.op == "<=" and b.op == ">=" and a.limit < b.limit:
                raise SearchError(f"contradictory constraints: {b} and {a} leave no value of {a.metric}")
    return out


def parse_objectives(names: list[str]) -> list[tuple[str, bool]]:
    """``[(metric, maximize)]``; a name may start with ``max:`` or ``min:``, else the metric catalog
    (sim/metrics/catalog.py) decides, and a name it lacks is a SearchError."""
    if not names:
        raise SearchError("search.objectives is empty; name at least one metric, e.g. [output_tokens_per_s_per_usd]")
    out = []
    for name in names:
        if name.startswith(("max:", "min:")):
            out.append((name[4:], name.startswith("max:")))
        else:
            try:
                out.append((name, higher_is_better(name)))
            except UnknownMetric as err:
                raise SearchError(f"search.objectives: {err}; or name its direction: max:<metric> or min:<metric>") \
                    from None
    return out


@dataclass
class Search:
    base: dict  # the run's part of the composed config (plain, interpolations kept; no tool settings)
    search: dict  # the search node
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**31:
            raise SearchError(f"search.seed must be a whole number from 0 to 2^31 - 1 (got {self.seed!r}): it seeds "
                              "the sampler (each worker adds 1,000)")
        self.params: list[Param] = parse_space(self.search.get("space") or {})
        self.derived: dict = dict(self.search.get("derived") or {})
        check_derived(self.derived, self.params)
        ends = {p.key: list(p.choices) if p.choices is not None else [p.low, p.high] for p in self.params
                if is_config_key(p.key)}
        why = space_errors(ends, self.base)
        if why:
            raise SearchError(why)
        self.objectives = parse_objectives(list(self.search.get("objectives") or []))
        self.constraints = parse_constraints(self.search.get("constraints") or {})
        # constraints checked before simulating (NSGA-II: a design they rule out is a failed trial, which costs its
        # generations nothing measurable; TPE learns the feasible region from infeasible trials' violations, so
        # there every design is simulated)
        nsga2 = str(self.search.get("sampler", "nsga2")) == "nsga2"
        self.limits = [c for c in self.constraints if c.metric in DESIGN_FIGURES] if nsga2 else []
        self._cache: dict = {}
        self._template: Template | None = None

    def check_metrics(self, known: dict) -> None:
        """SearchError for an objective or constraint that names no metric of ``known``."""
        names = sorted(known)
        for what, metric in ([("objective", m) for m, _ in self.objectives]
                             + [("constraint", c.metric) for c in self.constraints]):
            if metric not in known:
                import difflib

                close = difflib.get_close_matches(metric, names, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise SearchError(f"{what} '{metric}' is not a metric{hint}; known metrics: {', '.join(names)}")

    def fingerprint(self) -> str:
        keep = {k: v for k, v in self.search.items() if k not in ("trials", "jobs", "out", "fresh", "batch")}
        inputs = input_digests(OmegaConf.create(self.base))  # an edited config.json or trace is another search
        text = json.dumps({"base": self.base, "search": keep, "inputs": inputs, "model_version": MODEL_VERSION},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def design(self, values: dict) -> tuple[dict | None, str | None]:
        """(metrics, None) or (the design's own figures or None, reason) for the space values ``values`` (cached
        per process)."""
        key = json.dumps(values, sort_keys=True, default=str)
        if key not in self._cache:
            try:
                full = resolve(values, self.derived)
                self._cache[key] = (evaluate(self.base, config_overrides(full), self.template, self.limits), None)
            except Infeasible as err:
                self._cache[key] = (err.figures, str(err))
            except (ArithmeticError, TypeError, ValueError) as err:
                self._cache[key] = (None, f"{type(err).__name__}: {err}")
        return self._cache[key]

    @property
    def template(self) -> Template:
        """The base config's Template (sim/config/template.py), made on first use."""
        if self._template is None:
            self._template = Template(self.base)
        return self._template

    def designs(self, batch: list[dict], pool=None) -> list[tuple[dict | None, str | None]]:
        """``design`` of each space values of ``batch``, the uncached ones simulated together."""
        from sim.studies.search.asktell import evaluate_many

        keys = [json.dumps(values, sort_keys=True, default=str) for values in batch]
        todo, overrides = [], []
        for key, values in zip(keys, batch, strict=True):
            if key in self._cache or key in todo:
                continue
            try:
                overrides.append(config_overrides(resolve(values, self.derived)))
                todo.append(key)
            except (ArithmeticError, TypeError, ValueError) as err:
                self._cache[key] = (None, f"{type(err).__name__}: {err}")
        outcomes = evaluate_many(self.base, overrides, self.template, pool, self.limits)
        for key, outcome in zip(todo, outcomes, strict=True):
            self._cache[key] = (outcome.figures, str(outcome)) if isinstance(outcome, Infeasible) else (outcome, None)
        return [self._cache[key] for key in keys]

    def objective(self, trial: optuna.Trial) -> tuple[float, ...]:
        values = {p.key: p.suggest(trial) for p in self.params}
        metrics, reason = self.design(values)
        return self.record(trial, values, metrics, reason)

    def record(self, trial: optuna.Trial, values: dict, metrics: dict | None, reason: str | None) -> tuple:
        """Set the trial's attributes and constraints from its design's outcome; its objectives (or Infeasible:
        ``reason`` set, ``metrics`` then the design's own figures where they were worked out, or None)."""
        try:
            full = resolve(values, self.derived) if self.derived else values
        except (ArithmeticError, TypeError, ValueError):  # a formula that fails for these values: the reason says so
            full = values
        for key in self.derived:
            trial.set_user_attr(f"derived:{key}", full.get(key))
        if reason is not None:
            trial.set_user_attr("reason", reason)
            if metrics:
                trial.set_user_attr("design", metrics)
            raise Infeasible(reason)
        self.check_metrics(metrics)
        trial.set_user_attr("metrics", metrics)
        violations = [c.violation(metrics[c.metric]) for c in self.constraints]
        trial.set_user_attr("violations", violations)
        for c, v in zip(self.constraints, violations, strict=True):  # the samplers read these (Optuna >= 5)
            trial.set_constraint(str(c), v)
        return tuple(metrics[m] for m, _ in self.objectives)

    def sampler(self, trials: int, worker: int = 0, done: int = 0) -> optuna.samplers.BaseSampler:
        """The sampler of ``worker``; ``done``: trials the study holds when it starts asking (a batched search takes
        a sampler seeded afresh per batch from the seed and that count, so a resumed search asks what the run
        straight through asked: its state is the study's trials and this seed, not the draws of a process)."""
        seed = self.seed + 1000 * worker if not done else int(np.random.SeedSequence([self.seed, worker, done])
                                                               .generate_state(1)[0])
        name = str(self.search.get("sampler", "nsga2"))
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed,
                                                 population_size=max(8, min(50, trials // 5)))
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                              n_startup_trials=max(10, min(50, trials // 5)))
        raise SearchError(f"search.sampler={name} is not one of: nsga2, tpe")


JOURNAL, LEGACY = "study.journal", "study.db"  # Optuna's journal file; the SQLite file of earlier versions


def store_file(out: Path) -> Path:
    """The study's file: ``<out>/study.journal``, or a ``<out>/study.db`` (SQLite) left by an
    earlier version, which is resumed as it is."""
    legacy, journal = out / LEGACY, out / JOURNAL
    return legacy if legacy.exists() and not journal.exists() else journal


def storage(out: Path) -> optuna.storages.BaseStorage | str:
    """The study's storage (Optuna's journal file, or the SQLite URL of an earlier study.db)."""
    path = store_file(out)
    if path.name == LEGACY:
        return f"sqlite:///{path.resolve()}"
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as err:  # a folder in its place: one line (sim/cli/common.py)
        raise OutputWriteError(f"{path} could not be opened: {err.strerror or err}") from err


def _drop_partial_line(path: Path) -> None:
    """Cut a journal's last line if a killed write left it unfinished (no newline): that record was never
    committed, and Optuna would append the next one to it, leaving a line that no later run can read. Only before
    the study's processes start (``run_study``): a worker writing its record at that moment holds Optuna's lock."""
    try:
        data = path.read_bytes() if path.is_file() else b""
        if data and not data.endswith(b"\n"):
            with open(path, "rb+") as f:
                f.truncate(data.rfind(b"\n") + 1)
    except OSError as err:  # one line (sim/cli/common.py)
        raise OutputWriteError(f"{path} could not be opened: {err.strerror or err}") from err


def open_study(search: Search, out: Path, fresh: bool, trials: int, worker: int = 0) -> optuna.Study:
    if fresh and worker == 0:
        for name in (JOURNAL, LEGACY):
            (out / name).unlink(missing_ok=True)
    directions = ["maximize" if up else "minimize" for _, up in search.objectives]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        db = store_file(out)
        try:
            study = optuna.create_study(storage=storage(out), study_name=STUDY, directions=directions,
                                        sampler=search.sampler(trials, worker), load_if_exists=True)
        except (ValueError, SQLAlchemyError) as err:  # a journal cut short mid-line, a file that is no database
            raise SearchError(f"{db} could not be read as this search's study ({str(err).splitlines()[0][:120]}); "
                              "use search.fresh=true to start over or search.out=<another folder>") from None
    mark = study.user_attrs.get("fingerprint")
    if mark is None and worker == 0:
        study.set_user_attr("fingerprint", search.fingerprint())
    elif mark is not None and mark != search.fingerprint():
        raise SearchError(f"{db} holds a search with other settings (workload, space, objectives, seed, input "
                          "files or model version); "
                          "use search.out=<another folder> or search.fresh=true to start over")
    return study


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _optimize(study: optuna.Study, search: Search, trials: int, jobs: int = 1) -> None:
    left = trials - finished(study)
    if left <= 0:
        return
    from sim.studies.search.asktell import batch_size, optimize_batched

    stop = optuna.study.MaxTrialsCallback(trials, states=FINISHED)
    size = batch_size(search.search, trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if size > 1:
            optimize_batched(study, search, trials, size, finished, jobs)
        else:
            study.optimize(search.objective, n_trials=left, catch=(Infeasible,), callbacks=[stop])


def _worker(args) -> None:
    """One process of a TPE study run on several: exactly its ``share`` of the trials left (no stop rule that
    counts the others' finished trials: two workers finishing at once both went on, one trial too many)."""
    base, search_node, seed, out, trials, worker, share = args
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    search = Search(base, search_node, seed)
    study = open_study(search, Path(out), False, trials, worker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(search.objective, n_trials=share, catch=(Infeasible,))


def cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this system
        return max(1, os.cpu_count() or 1)


def run_study(search: Search, out: Path, trials: int, jobs: int = 1, fresh: bool = False) -> optuna.Study:
    """Run (or resume) the study in ``out`` until it holds ``trials`` finished trials."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out.mkdir(parents=True, exist_ok=True)
    if not fresh and store_file(out).name == JOURNAL:
        _drop_partial_line(store_file(out))
    study = open_study(search, out, fresh, trials)
    from sim.studies.search.asktell import batch_size

    size = batch_size(search.search, trials)
    batched = size > 1
    if jobs == 0:  # a batch's designs on every core (the same trials as one process); TPE in one process
        jobs = min(cores(), size) if batched else 1
    if jobs <= 1 or batched:  # a batch's designs go to `jobs` processes
        _optimize(study, search, trials, jobs)
        return study
    left = trials - finished(study)
    if left <= 0:
        return study
    jobs = min(jobs, left)
    ctx = multiprocessing.get_context("spawn")
    args = [(search.base, search.search, search.seed, str(out), trials, w, left // jobs + (w < left % jobs))
            for w in range(jobs)]
    with ctx.Pool(jobs) as pool:
        pool.map(_worker, args)
    return open_study(search, out, False, trials)


def trial_rows(search: Search, study: optuna.Study) -> list[dict]:
    """One row per finished trial: status, reason, parameters, derived values, metrics."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        row = {"trial": t.number}
        metrics = t.user_attrs.get("metrics")
        if metrics is None:
            row.update(status="infeasible", reason=t.user_attrs.get("reason", "failed"))
            metrics = t.user_attrs.get("design")  # a design its own figures ruled out: those figures
        else:
            violations = t.user_attrs.get("violations", [])  # none recorded: a failed or pruned trial
            broken = [str(c) for c, v in zip(search.constraints, violations, strict=False) if v > 0]
            row.update(status="infeasible" if broken else "feasible",
                       reason=("violates " + ", ".join(broken)) if broken else "")
        row.update({p.key: _tidy(t.params.get(p.key)) for p in search.params})
        row.update({k: t.user_attrs.get(f"derived:{k}") for k in search.derived})
        if metrics:
            row.update({k: v for k, v in metrics.items() if math.isfinite(v)})
        rows.append(row)
    return rows


def _tidy(value):
    """A stepped float as typed (1.7, not Optuna's 1.7000000000000002)."""
    return round(value, 10) if isinstance(value, float) else value
