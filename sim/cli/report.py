"""``llmsim-report``: the thin entry point of sim.studies.sweep.report (parse, call, one-line error, exit 2)."""

from __future__ import annotations

import sys

import sim.studies.sweep.report as _study
from sim.cli.common import ArgumentParser, folder_arg, one_line_errors
from sim.config.paths import OutputDirError, output_dir
from sim.output.files import holding
from sim.studies.sweep import ReportError
from sim.studies.sweep.report import make_report, print_written


@one_line_errors("llmsim-report")
def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``llmsim-report``."""
    parser = ArgumentParser(prog="llmsim-report", description=_study.__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=folder_arg,
                        help="a sweep folder (results/sweeps/<name>/<timestamp>) or a run folder")
    parser.add_argument("--x", help="regime-map x axis (a swept key; default: the first swept)")
    parser.add_argument("--y", help="regime-map y axis (default: the second swept)")
    parser.add_argument("--metric", help="regime-map contours (default: sweep.metric or output_tokens_per_s)")
    parser.add_argument("--pareto", nargs=2, metavar=("X", "Y"), help="the two metrics of the Pareto front")
    parser.add_argument("--point", type=int, help="the point whose roofline and timeline to draw")
    parser.add_argument("--out", type=folder_arg,
                        help="output folder (default <dir>/report for a sweep, <dir> for a run)")
    args = parser.parse_args(argv)
    try:
        if not args.dir.is_dir():
            raise ReportError(f"no folder at {args.dir}")
        if (args.dir / "requests.parquet").exists() and not (args.dir / "ops.parquet").exists():
            raise ReportError(f"{args.dir} is a serving run: its report is serving.png and requests.csv there; "
                              "llmsim-report draws sweeps and single-batch runs")
        out = output_dir(args.out) if args.out else None
        with holding(out or args.dir):  # a sweep still running there holds its folder: one line (FolderInUse)
            written = make_report(args.dir, out, x=args.x, y=args.y, metric=args.metric, pareto=args.pareto,
                                  point=args.point)
    except (ReportError, OutputDirError) as err:
        print(f"llmsim-report: error: {err}", file=sys.stderr)
        sys.exit(2)
    print_written(written)
    table = next((path for path in written.values() if path.name == "points.parquet"), None)
    if table is not None:  # a sweep: say how much of it the report covers
        import pandas as pd

        status = pd.read_parquet(table, columns=["status"])["status"].value_counts()
        if status.get("ok", 0) < status.sum():
            parts = [f"{status.get(s, 0)} {what}" for s, what in (("ok", "ok"), ("failed", "failed"),
                                                                  ("missing", "missing (not finished)"))
                     if status.get(s, 0)]
            print(f"llmsim-report: {status.sum()} points: {', '.join(parts)}")


if __name__ == "__main__":
    main()
