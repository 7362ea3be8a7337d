"""``llmsim-grid``: the thin entry point of sim.studies.sweep.grid (parse, call, one-line error, exit 2)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import sim.studies.sweep.grid as _study
from sim.cli.common import ArgumentParser, folder_arg, hydra_split, one_line_errors, print_notes
from sim.config.compose import compose_dict
from sim.config.schema import WorkloadKind
from sim.studies.sweep import ReportError
from sim.studies.sweep.grid import run_grid, split_arguments
from sim.studies.sweep.report import print_written, report_sweep


def _paths(table) -> str:
    """``; 998 on the batch path, 2 on the scalar path (discrete-event fidelity: 2)`` where it ran."""
    if "vectorised" not in table.attrs:
        return ""
    fallbacks = table.attrs.get("fallbacks") or {}
    scalar = sum(fallbacks.values())
    why = f" ({', '.join(f'{k}: {v}' for k, v in fallbacks.items())})" if scalar else ""
    return f"; {table.attrs['vectorised']} on the batch path, {scalar} on the scalar path{why}"


def _one_config(kind) -> bool:
    """Whether runs of ``kind`` can be grid points. The registry (sim.studies.kinds) is asked only for a kind
    other than single-batch runs: it imports every kind's simulator (about 0.8 s)."""
    if WorkloadKind(getattr(kind, "value", kind)) is WorkloadKind.single_batch:
        return True
    from sim.studies.kinds import workload

    return workload(kind).one_config_studies


@one_line_errors("llmsim-grid")
def main(argv: list[str] | None = None) -> None:
    """``llmsim-grid [overrides and axes...] [--out DIR] [--jobs N] [--no-report]``."""
    from sim.config.overrides import EXIT_BAD_INPUT, InputError, check_override
    from sim.config.paths import OutputDirError, output_dir
    from sim.output.files import holding

    parser = ArgumentParser(prog="llmsim-grid", description=_study.__doc__.split("\n\n")[0])
    parser.add_argument("arguments", nargs="*", help="overrides and swept axes, as for llmsim -m")
    parser.add_argument("--out", type=folder_arg, help="output folder (default results/sweeps/<name>/<timestamp>_grid)")
    parser.add_argument("--jobs", type=int, default=1, help="processes to spread the points over")
    parser.add_argument("--no-report", action="store_true", help="write the table only, no charts")
    args = parser.parse_intermixed_args(argv)
    try:
        arguments, hydra = hydra_split("llmsim-grid", args.arguments)
        for arg in arguments:
            check_override(arg)
        fixed, axes = split_arguments(arguments)
        print_notes("llmsim-grid", hydra)
        composed = compose_dict(fixed)
        name = composed.name
        out = output_dir(args.out or Path("results/sweeps") / name / (datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
                                                                        + "_grid"), create=False)  # made as written
        if args.jobs < 1:
            raise ReportError(f"--jobs must be >= 1 (got {args.jobs})")
        if not _one_config(composed.workload.kind):
            raise ReportError("llmsim-grid sweeps single-batch runs; sweep serving runs with llmsim -m")
        if (out / "multirun.yaml").exists():  # its table and report would replace the sweep's
            raise ReportError(f"{out} holds an llmsim -m sweep (multirun.yaml): a grid there would replace its "
                              "report with the grid's; choose another --out")
        with holding(out):  # another llmsim command writing there meanwhile: one line (FolderInUse)
            table = run_grid(fixed, axes, out, args.jobs)
            failed = int((table["status"] != "ok").sum())
            print(f"llmsim-grid: {len(table)} points ({failed} failed) in {out}/{_paths(table)}")
            if failed and failed < len(table):
                reasons = table.loc[table["status"] != "ok", "reason"].astype(str)
                print(f"  why, e.g. point {reasons.index[0]}: {reasons.iloc[0].splitlines()[0]}"
                      f"{f' ({reasons.nunique()} distinct reasons)' if reasons.nunique() > 1 else ''}; every point's "
                      "reason is in the table's reason column")
            if failed == len(table):
                raise ReportError(f"every point failed; first reason: {table['reason'].iloc[0]}")
            if not args.no_report:
                print_written(report_sweep(out))
    except (InputError, ReportError, OutputDirError) as err:  # Hydra's own: one_line_errors
        print(f"llmsim-grid: error: {str(err).splitlines()[0]}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
