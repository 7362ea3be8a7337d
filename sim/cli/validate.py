"""``llmsim-validate``: the thin entry point of sim.studies.validate (parse, call, one-line error, exit 2)."""

from __future__ import annotations

import sys

import pandas as pd

from sim.cli.common import ArgumentParser, file_arg, one_line_errors
from sim.config.paths import OutputDirError, output_dir
from sim.output.files import atomic_write
from sim.studies.prefill_gap import gap_summary, prefill_gap
from sim.studies.transfer import medians_table, transfer_medians
from sim.studies.validate import COLUMNS, ValidationInputError, error_table, read_measurements, summary_line, validate


@one_line_errors("llmsim-validate")
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="llmsim-validate", description="Compare llmsim's predictions with "
                                     "measured rows (gemm, allreduce, memcpy, prefill, decode).")
    parser.add_argument("csv", type=file_arg, nargs="?", help="measured rows (default: the shipped A100 set, "
                        "data/validation/a100.csv); columns: " + ", ".join(COLUMNS)
                        + "; optional: runtime (conf/runtime preset), host (conf/host preset), layers")
    parser.add_argument("--out", type=file_arg, help="also write the rows with predictions to this CSV")
    parser.add_argument("--prefill-gap", action="store_true", help="instead, put each Llama-2-70B prefill "
                        "row of at most 4096 tokens beside the sum of its kernels as Vidur measured them on A100 "
                        "(--out writes that table)")
    args = parser.parse_args(argv)
    try:
        if args.out is not None:  # checked before any work: a file path in a writable folder
            if args.out.is_dir():
                raise ValidationInputError(f"--out {args.out} is a folder; give the CSV file to write")
            output_dir(args.out.parent, create=False)
        frame = None if args.prefill_gap and args.csv is None else read_measurements(args.csv)
    except (ValidationInputError, OutputDirError) as err:
        _fail(str(err))
    if args.prefill_gap:
        gap = _print_gap(frame)
        if args.out:
            output_dir(args.out.parent)
            atomic_write(args.out, lambda p: gap.to_csv(p, index=False))
        return
    out, problems = validate(frame)
    if out["error_pct"].dropna().empty:  # nothing to tabulate: one line, with the first row's reason
        first = problems[0] if problems else next((f"row {i + 1} (id {r['id']}): {r['prediction_note']}" for i, r in
                                                   enumerate(out.to_dict("records")) if r["prediction_note"]), "")
        more = f" (and {len(out) - 1:,} more row{'s' if len(out) > 2 else ''})" if len(out) > 1 else ""
        _fail(f"no row could be validated{f'; skipped {first}' if first else ''}{more}")
    for problem in problems:
        print(f"llmsim-validate: skipped {problem}", file=sys.stderr)
    shown = out.copy()
    shown["predicted_ms"] = shown["predicted_ms"].round(4)
    shown["error_pct"] = shown["error_pct"].round(1)
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        print(shown.dropna(axis=1, how="all").to_string(index=False))
    if args.out:
        output_dir(args.out.parent)  # the CSV's folder, relative to the working directory
        atomic_write(args.out, lambda p: out.to_csv(p, index=False))
    for by in ("kind", "hardware"):
        print(f"\n|error| % by {by}:\n{error_table(out, by).to_string()}")
    gemms = out[(out["kind"] == "gemm") & out["error_pct"].notna()]
    if not gemms.empty:
        print(f"\nmedian |error| of GEMMs by M band:\n{medians_table(transfer_medians(gemms))}")
    noted = out[out["prediction_note"].astype(str).str.len() > 0]
    if not noted.empty:
        print(f"\nnotes ({len(noted)} row{'s' if len(noted) != 1 else ''}):")
        for row in noted.to_dict("records"):
            print(f"  {row['id']}: {row['prediction_note']}")
    print(summary_line(out))


def _print_gap(frame: pd.DataFrame | None) -> pd.DataFrame:
    gap = prefill_gap(frame)
    if gap.empty:
        _fail("no llama2_70b prefill row of at most 4096 tokens to compare with its kernels")
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(gap.round(2).to_string(index=False))
    print("\n".join(gap_summary(gap)))
    return gap


def _fail(message: str) -> None:
    print(f"llmsim-validate: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
