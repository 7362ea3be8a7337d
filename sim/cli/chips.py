"""``llmsim-chips``: the thin entry point of sim.studies.chips (parse, call, one-line error, exit 2)."""

from __future__ import annotations

import argparse
import sys

import sim.studies.chips as study
from sim.cli.common import file_arg, one_line_errors
from sim.config.overrides import EXIT_BAD_INPUT
from sim.config.paths import OutputDirError, output_dir
from sim.output.files import atomic_write


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        _fail(f"{message} (see llmsim-chips --help)")


@one_line_errors("llmsim-chips")
def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``llmsim-chips [--csv PATH] [--measured PATH]``."""
    parser = _Parser(prog="llmsim-chips", description=study.__doc__.splitlines()[0].split(": ", 1)[-1])
    parser.add_argument("--csv", type=file_arg, help="also write the table to this CSV file")
    parser.add_argument("--measured", type=file_arg, help="measured achievable figures (default: the shipped "
                        f"data/published/achievable.csv); columns: {', '.join(study.ACHIEVABLE_COLUMNS)}")
    args = parser.parse_args(argv)
    try:
        if args.csv is not None:  # checked before any work: a file path in a writable folder
            if args.csv.is_dir():
                raise study.ChipsInputError(f"--csv {args.csv} is a folder; give the CSV file to write")
            output_dir(args.csv.parent, create=False)
        measured = study.read_achievable(args.measured or study.ACHIEVABLE)
        table = study.chip_table(achievable=measured)
    except (study.ChipsInputError, OutputDirError) as err:
        _fail(str(err))
    print(study.format_table(table))
    if args.csv is not None:
        output_dir(args.csv.parent)
        atomic_write(args.csv, lambda p: table.to_csv(p, index=False))
        print(f"wrote {args.csv}")


def _fail(message: str) -> None:
    print(f"llmsim-chips: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
