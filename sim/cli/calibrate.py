"""``llmsim-calibrate``: the thin entry point of sim.studies.calibrate (parse, call, one-line error, exit 2)."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from pathlib import Path

import sim.studies.calibrate as _study
from sim.cli.common import one_line_errors
from sim.config.paths import OutputDirError, output_dir
from sim.config.schema import RuntimeConfig
from sim.output.files import atomic_write
from sim.studies.calibrate import (
    FILES,
    _errors_by,
    build_validation_set,
    fit,
    fit_runtime,
    write_calibration,
    write_runtime,
)
from sim.studies.validate import validate


@one_line_errors("llmsim-calibrate")
def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``llmsim-calibrate [--out DIR] [--dry-run]``."""
    parser = argparse.ArgumentParser(prog="llmsim-calibrate", description=_study.__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder (default results/calibration/<timestamp>)")
    parser.add_argument("--dry-run", action="store_true", help="fit and print, write nothing")
    args = parser.parse_args(argv)
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    try:
        out_dir = output_dir(args.out or Path("results/calibration") / stamp, create=not args.dry_run)
    except OutputDirError as err:
        print(f"llmsim-calibrate: error: {err}", file=sys.stderr)
        sys.exit(2)
    frame = build_validation_set()
    fitted, _ = fit(frame)
    runtime = fit_runtime(frame, fitted)
    if not all(math.isfinite(v) for v in {**fitted, **runtime}.values()):
        raise SystemExit("llmsim-calibrate: error: the fit did not converge")
    for key, value in {**fitted, **runtime}.items():
        print(f"  {key:<22} {value}")
    if args.dry_run:
        return
    eager = RuntimeConfig(name="vllm_eager", fused_elementwise=False, **runtime)
    out, _ = validate(frame, fitted, {"vllm_eager": eager})  # end-to-end rows with the runtime just fitted
    for kind, line in _errors_by(out, "kind").items():
        print(f"  {kind:<10} {line}")
    paths = {what: out_dir / name for what, name in FILES.items()}
    atomic_write(paths["validation"], lambda p: frame.to_csv(p, index=False))
    write_runtime(runtime, out, paths["runtime"])
    write_calibration(fitted, out, paths["calibration"])
    print(f"wrote {', '.join(FILES.values())} ({len(frame)} validation rows) in {out_dir}/")
    print(f"  use this fit: llmsim calibration={paths['calibration']}")
