"""``llmsim-calibrate``: the thin entry point of sim.studies.calibrate (parse, call, one-line error, exit 2)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import sim.studies.calibrate as study
from sim.cli.common import ArgumentParser, folder_arg, one_line_errors
from sim.config.paths import OutputDirError, output_dir
from sim.output.files import atomic_write
from sim.studies.holdout import holdout_table, leave_one_group_out


@one_line_errors("llmsim-calibrate")
def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``llmsim-calibrate [--out DIR] [--dry-run] [--holdout]``."""
    parser = ArgumentParser(prog="llmsim-calibrate", description=study.__doc__.splitlines()[0])
    parser.add_argument("--out", type=folder_arg, help="output folder (default results/calibration/<timestamp>)")
    parser.add_argument("--dry-run", action="store_true", help="fit and print, write nothing")
    parser.add_argument("--holdout", action="store_true", help="also refit without each source (and each Vidur "
                        "model) and predict it: the leave-one-group-out report, <out>/holdout.csv (takes minutes)")
    args = parser.parse_args(argv)
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    try:
        out_dir = output_dir(args.out or Path("results/calibration") / stamp, create=False)  # made when written:
        print("llmsim-calibrate: fitting the shared parameters on the A100 measurements of data/calibration "
              "(a few minutes)", flush=True)  # an interrupted fit leaves no empty folder
        cal = study.calibrate()
    except (OutputDirError, study.FitError) as err:
        print(f"llmsim-calibrate: error: {err}", file=sys.stderr)
        sys.exit(2)
    for key, value in cal.values.items():
        print(f"  {key:<22} {value}")
    if args.dry_run:
        if args.holdout:
            _holdout(cal, None)
        return
    out = study.validate_calibration(cal)
    for kind, line in study.errors_by(out, "kind").items():
        print(f"  {kind:<10} {line}")
    paths = study.write_fit(cal, out, out_dir)
    print(f"wrote {', '.join(study.FILES.values())} ({len(cal.frame)} validation rows) in {out_dir}/")
    print(f"  use this fit: llmsim calibration={paths['calibration']}")
    if args.holdout:
        _holdout(cal, out_dir)


def _holdout(cal: study.Calibration, out_dir: Path | None) -> None:
    """Print the leave-one-group-out report and write it to ``out_dir``/holdout.csv (None: write nothing)."""
    report = leave_one_group_out(cal.frame, (cal.fitted, cal.runtime),
                                 lambda group: print(f"  holding out {group}", file=sys.stderr, flush=True))
    print("leave-one-group-out (median |error| %, in-sample: the full fit; held out: a fit without the group)")
    print(holdout_table(report))
    if out_dir is not None:
        atomic_write(out_dir / "holdout.csv", lambda p: report.to_csv(p, index=False))
        print(f"wrote holdout.csv in {out_dir}/")


if __name__ == "__main__":
    main()
