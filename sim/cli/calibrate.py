"""``llmsim-calibrate``: the thin entry point of sim.studies.calibrate (parse, call, one-line error, exit 2)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import sim.studies.calibrate as study
from sim.cli.common import one_line_errors
from sim.config.paths import OutputDirError, output_dir


@one_line_errors("llmsim-calibrate")
def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``llmsim-calibrate [--out DIR] [--dry-run]``."""
    parser = argparse.ArgumentParser(prog="llmsim-calibrate", description=study.__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder (default results/calibration/<timestamp>)")
    parser.add_argument("--dry-run", action="store_true", help="fit and print, write nothing")
    args = parser.parse_args(argv)
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    try:
        out_dir = output_dir(args.out or Path("results/calibration") / stamp, create=not args.dry_run)
        cal = study.calibrate()
    except (OutputDirError, study.FitError) as err:
        print(f"llmsim-calibrate: error: {err}", file=sys.stderr)
        sys.exit(2)
    for key, value in cal.values.items():
        print(f"  {key:<22} {value}")
    if args.dry_run:
        return
    out = study.validate_calibration(cal)
    for kind, line in study.errors_by(out, "kind").items():
        print(f"  {kind:<10} {line}")
    paths = study.write_fit(cal, out, out_dir)
    print(f"wrote {', '.join(study.FILES.values())} ({len(cal.frame)} validation rows) in {out_dir}/")
    print(f"  use this fit: llmsim calibration={paths['calibration']}")
