"""A search from its overrides to its report: compose the recipe, run or resume the study, write the files.

``run_search`` is what ``llmsim-search`` (sim/cli/search.py) calls; benchmarks and tests call it too.

A recipe writes a space entry under its dotted key (``hardware.num_cores: {low: .., high: ..}``);
the command line cannot name a key with a dot in it, so ``search.space.hardware.num_cores={...}``
arrives nested (``hardware: {num_cores: {...}}``). ``flat_space`` puts such entries back under
their dotted keys, after the recipe's: a whole entry (``choices``, or ``low``/``high``) replaces
the recipe's, a part (``search.space.hardware.num_cores.high=256``) changes that field, ``null``
removes the entry. ``search.derived`` is flattened the same way.
"""


from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from sim.config.compose import compose_dict, without_hydra
from sim.config.paths import output_dir, presets
from sim.config.schema import run_fields
from sim.output.files import holding
from sim.studies.search import SearchError
from sim.studies.search.evaluate import Infeasible, evaluate
from sim.studies.search.report import pareto_set, write_report
from sim.studies.search.space import is_config_key
from sim.studies.search.study import Search, run_study, trial_rows


def _plain(overrides: list[str]) -> dict:
    """The composed config as a plain tree; interpolations kept (a searched ``hardware.*`` value
    then reaches ``system.scale_up``, which the presets interpolate from it)."""
    dcfg = without_hydra(compose_dict(overrides))
    return OmegaConf.to_container(dcfg, resolve=False)


SPEC_FIELDS = frozenset({"choices", "low", "high", "step", "log"})  # the fields of one space entry


def flat_space(space: dict | None) -> dict:
    """``search.space`` with nested entries (from the command line) put under dotted keys, in order."""
    flat: dict = {}

    def add(key: str, spec) -> None:
        if isinstance(spec, dict) and spec and not set(spec) & SPEC_FIELDS:
            for part, inner in spec.items():  # a level of a dotted key, not an entry
                add(f"{key}.{part}", inner)
            return
        if spec is None:
            flat.pop(key, None)
            return
        old = flat.get(key)
        if isinstance(old, dict) and isinstance(spec, dict):
            if "choices" in spec:  # a list replaces a range
                old = {}
            elif {"low", "high"} & set(spec):  # a range replaces a list
                old = {k: v for k, v in old.items() if k != "choices"}
            spec = {**old, **spec}
        flat[key] = spec

    for key, spec in (space or {}).items():
        add(str(key), spec)
    for key, spec in flat.items():
        for name in ("low", "high", "step"):
            value = spec.get(name) if isinstance(spec, dict) else None
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise SearchError(f"search.space.{key}.{name} must be a number (got {value!r})")
    return flat


def flat_derived(derived: dict | None) -> dict:
    """``search.derived`` with nested keys (from the command line) put under dotted keys; ``null`` removes one."""
    flat: dict = {}

    def add(key: str, value) -> None:
        if isinstance(value, dict):
            for part, inner in value.items():
                add(f"{key}.{part}", inner)
        elif value is None:
            flat.pop(key, None)
        else:
            flat[key] = value

    for key, value in (derived or {}).items():
        add(str(key), value)
    return flat


def _run_part(tree: dict) -> dict:
    """The run's part of a plain composed tree (the keys of RunConfig): what a design changes."""
    return {key: tree[key] for key in run_fields() if key in tree}


def run_search(overrides: list[str], out: Path | None = None) -> tuple[dict, pd.DataFrame, Path]:
    """Compose ``overrides``, run (or resume) the search, write its report; (best.json, Pareto rows, folder)."""
    tree = _plain(overrides)
    node = tree.pop("search")
    node["space"], node["derived"] = flat_space(node.get("space")), flat_derived(node.get("derived"))
    if not node["space"]:
        raise SearchError("search.space is empty: pick a recipe with +search=<name> (known: "
                          f"{', '.join(presets('search'))}) or give search.space")
    if int(node["trials"]) < 1:
        raise SearchError(f"search.trials must be >= 1 (got {node['trials']})")
    if int(node["jobs"]) < 0:
        raise SearchError(f"search.jobs must be >= 0 (0: one process per core; got {node['jobs']})")
    if int(node.get("batch") or 0) < 0:
        raise SearchError(f"search.batch must be >= 0 (0: an NSGA-II generation, 1 for TPE; got {node['batch']})")
    search = Search(_run_part(tree), node, int(node["seed"]))
    reference, ref_name = None, node.get("reference")
    if ref_name:
        ref_tree = _run_part(_plain([*overrides, f"hardware={ref_name}", *node.get("reference_overrides", [])]))
        try:
            reference = evaluate(ref_tree, {})
        except Infeasible as err:
            print(f"llmsim-search: note: the reference {ref_name} cannot run this workload ({err}); "
                  "no comparison", file=sys.stderr)
        else:
            search.check_metrics(reference)
            for key in [p.key for p in search.params] + list(search.derived):
                if is_config_key(key):
                    reference[key] = OmegaConf.select(OmegaConf.create(ref_tree), key)
    out = output_dir(out or node.get("out") or Path("results/search") / tree["name"])
    with holding(out):  # another search writing there meanwhile: one line (FolderInUse)
        study = run_study(search, out, int(node["trials"]), int(node["jobs"]), bool(node["fresh"]))
        df = pd.DataFrame(trial_rows(search, study))
        summary = write_report(out, df, search, reference, ref_name, f"{tree['name']}: {len(df)} designs")
    params = [p.key for p in search.params] + list(search.derived)
    return summary, pareto_set(df, search.objectives, params), out
