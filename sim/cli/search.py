"""``llmsim-search +search=<recipe> [overrides]``: the best designs for a workload under budgets.

The recipe (conf/search/<recipe>.yaml, ``# @package _global_``) picks the base chip, model and
workload like an experiment does, and fills the ``search`` node: the space, objectives,
constraints and reference. Any override of ``llmsim`` works here too (``search.trials=N``,
``workload.rate_per_s=2``). The composition is Hydra's (sim/config/compose.py), but the command
is not a Hydra app: the trials run in this process (or ``search.jobs`` worker processes), not as
Hydra jobs, and the output folder is fixed (``--out DIR`` as for the other commands, or the
recipe's ``search.out``; default results/search/<name>, relative to the working directory) so
that running the command again resumes the search.

One entry of the recipe's space is changed or added from the command line by its key under
``search.space`` (``search.space.hardware.num_cores={low:8,high:64,step:8}``, or one field:
``search.space.hardware.num_cores.high=256``; ``=null`` removes it); ``+`` and ``++`` forms
mean the same. Likewise ``search.derived.<key>=<expression>``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from sim.cli.common import hydra_split, one_line_errors, print_notes
from sim.config.overrides import EXIT_BAD_INPUT, InputError, check_override, hydra_error_line
from sim.config.paths import OutputDirError, presets
from sim.studies.search import SearchError
from sim.studies.search.report import render
from sim.studies.search.runner import run_search


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


def _composable(arg: str, recipe: bool) -> str | None:
    """``arg`` as Hydra takes it: a recipe is added (``+search=``); an entry of ``search.space`` or
    ``search.derived`` is added or overridden (``++``), as the recipe may or may not have it.
    ``search.space={}`` without a recipe changes nothing (None: left out)."""
    key, _, value = arg.partition("=")
    bare = key.lstrip("+")
    if bare == "search":
        return f"+search={value}"
    if bare in ("search.space", "search.derived") and value.replace(" ", "") == "{}":
        if not recipe:
            return None
        raise InputError(f"{bare}={{}} leaves the recipe's {bare.split('.')[1]} as it is (Hydra merges maps); "
                         f"change one entry with {bare}.<key>=..., or remove one with {bare}.<key>=null")
    if bare.startswith(("search.space.", "search.derived.")):
        return f"++{bare}={value}"
    return arg


@one_line_errors("llmsim-search", resumable=True)
def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return
    started = time.perf_counter()
    try:
        args, out = _take_out(args)
        args, hydra = hydra_split("llmsim-search", args)
        for arg in args:
            key, _, value = arg.partition("=")
            if key.lstrip("+") == "search":
                known = presets("search")
                if value not in known:
                    raise InputError(f"unknown search recipe '{value}'; known: {', '.join(known)}")
            else:
                check_override(arg)
        print_notes("llmsim-search", hydra)
        recipe = any(a.partition("=")[0].lstrip("+") == "search" for a in args)
        args = [c for c in (_composable(a, recipe) for a in args) if c is not None]
        summary, front, out = run_search(args, out)
    except (OmegaConfBaseException, HydraException) as err:  # Hydra's parse errors run over several lines
        print(f"llmsim-search: error: {hydra_error_line(err)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except (InputError, SearchError, OutputDirError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        print(f"llmsim-search: error: {lines[0] if lines else err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    print(render(summary, front, None, out))
    print(f"  wall time    {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
