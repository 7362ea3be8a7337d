"""A search from its overrides to its report: compose the recipe, run or resume the study, write the files.

``run_search`` is what ``llmsim-search`` (sim/cli/search.py) calls; benchmarks and tests call it too.
"""


from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from sim.config.compose import compose_dict, without_hydra
from sim.config.paths import output_dir, presets
from sim.config.schema import run_fields
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


def _run_part(tree: dict) -> dict:
    """The run's part of a plain composed tree (the keys of RunConfig): what a design changes."""
    return {key: tree[key] for key in run_fields() if key in tree}


def run_search(overrides: list[str], out: Path | None = None) -> tuple[dict, pd.DataFrame, Path]:
    """Compose ``overrides``, run (or resume) the search, write its report; (best.json, Pareto rows, folder)."""
    tree = _plain(overrides)
    node = tree.pop("search")
    if not node.get("space"):
        raise SearchError("search.space is empty: pick a recipe with +search=<name> (known: "
                          f"{', '.join(presets('search'))}) or give search.space")
    if int(node["trials"]) < 1:
        raise SearchError(f"search.trials must be >= 1 (got {node['trials']})")
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
    study = run_study(search, out, int(node["trials"]), int(node["jobs"]), bool(node["fresh"]))
    df = pd.DataFrame(trial_rows(search, study))
    summary = write_report(out, df, search, reference, ref_name, f"{tree['name']}: {len(df)} designs")
    params = [p.key for p in search.params] + list(search.derived)
    return summary, pareto_set(df, search.objectives, params), out
