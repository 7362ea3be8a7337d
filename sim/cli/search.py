"""``llmsim-search +search=<recipe> [overrides]``: the best designs for a workload under budgets.

The recipe (conf/search/<recipe>.yaml, ``# @package _global_``) picks the base chip, model and
workload like an experiment does, and fills the ``search`` node: the space, objectives,
constraints and reference. Any override of ``llmsim`` works here too (``search.trials=N``,
``workload.rate_per_s=2``). The composition is Hydra's (sim/sweep/compose.py), but the command
is not a Hydra app: the trials run in this process (or ``search.jobs`` worker processes), not as
Hydra jobs, and the output folder is fixed (``--out DIR`` as for the other commands, or the
recipe's ``search.out``; default results/search/<name>, relative to the working directory) so
that running the command again resumes the search.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sim.config.compose import compose_dict, without_hydra
from sim.config.overrides import EXIT_BAD_INPUT, InputError, check_override
from sim.config.paths import OutputDirError, output_dir, presets
from sim.config.schema import run_fields
from sim.studies.search import SearchError
from sim.studies.search.evaluate import Infeasible, evaluate
from sim.studies.search.report import pareto_set, render, write_report
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


def _take_out(args: list[str]) -> tuple[list[str], Path | None]:
    """(the overrides, the folder of ``--out DIR`` or ``--out=DIR`` or None)."""
    rest, out = [], None
    it = iter(args)
    for arg in it:
        if arg == "--out":
            out = next(it, None)
            if not out:
                raise InputError("--out needs a folder: --out DIR")
        elif arg.startswith("--out="):
            out = arg.removeprefix("--out=")
        else:
            rest.append(arg)
    return rest, Path(out) if out else None


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return
    started = time.perf_counter()
    try:
        args, out = _take_out(args)
        for arg in args:
            key, _, value = arg.partition("=")
            if key.lstrip("+") == "search":
                known = presets("search")
                if value not in known:
                    raise InputError(f"unknown search recipe '{value}'; known: {', '.join(known)}")
            else:
                check_override(arg)
        args = [a if not a.startswith("search=") else "+" + a for a in args]
        summary, front, out = run_search(args, out)
    except (InputError, SearchError, OutputDirError, OmegaConfBaseException, HydraException) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        hint = f"; {lines[1]}" if len(lines) > 1 and lines[1].startswith("To append") else ""
        print(f"llmsim-search: error: {lines[0] if lines else err}{hint}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    print(render(summary, front, None, out))
    print(f"  wall time    {time.perf_counter() - started:.1f} s")
