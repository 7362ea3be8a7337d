"""``llmsim-sensitivity``: the thin entry point of sim.studies.sweep.sensitivity (parse, call, one-line
error, exit 2)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import sim.studies.sweep.sensitivity as _study
from sim.cli.common import ArgumentParser, folder_arg, hydra_split, one_line_errors, print_notes
from sim.studies.kinds import WORKLOADS
from sim.studies.sweep import ReportError
from sim.studies.sweep.sensitivity import FAILURES, rankings, sensitivities, write_sensitivity


@one_line_errors("llmsim-sensitivity")
def main(argv: list[str] | None = None) -> None:
    """``llmsim-sensitivity [overrides...] [--metric M] [--step 0.1] [--out DIR]``."""
    from sim.config.compose import compose_config
    from sim.config.overrides import EXIT_BAD_INPUT, InputError, check_override
    from sim.config.paths import OutputDirError, output_dir
    from sim.output.files import holding, remove_stale_temps

    parser = ArgumentParser(prog="llmsim-sensitivity", description=_study.__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the base configuration")
    parser.add_argument("--metric", default="output_tokens_per_s", help="summary metric (dotted for nested keys)")
    parser.add_argument("--step", type=float, default=0.1, help="relative change of each hardware parameter")
    parser.add_argument("--out", type=folder_arg, help="output folder (default results/sensitivity/<name>/<timestamp>)")
    args = parser.parse_intermixed_args(argv)
    try:
        overrides, hydra = hydra_split("llmsim-sensitivity", args.overrides)
        for arg in overrides:
            check_override(arg, multirun=False)
        if not 0 < args.step < 1:
            raise ReportError(f"--step must be between 0 and 1, a relative change (got {args.step})")
        dcfg, cfg = compose_config(overrides)
        print_notes("llmsim-sensitivity", hydra)
        if not WORKLOADS[cfg.workload.kind].one_config_studies:
            raise ReportError("llmsim-sensitivity ranks single-batch runs; for serving, sweep with llmsim -m")
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
        out = output_dir(args.out or Path("results/sensitivity") / dcfg.name / stamp, create=False)
        with holding(out):  # from the start: another llmsim command there meanwhile is refused (FolderInUse)
            table = sensitivities(cfg, args.metric, args.step)  # the folder goes again if this fails
            remove_stale_temps(out)  # a run killed mid-write into this folder before
            write_sensitivity(table, out, cfg)
    except (InputError, ReportError, OutputDirError, *FAILURES) as err:  # Hydra's own errors: one_line_errors
        print(f"llmsim-sensitivity: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    shown = table[["parameter", "change", "new_value", "gain_pct", "d_area_mm2", "d_power_W", "d_cost_usd",
                   "gain_per_kusd", "gain_per_100mm2", "status"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:+.2f}", na_rep="-"))
    for row in table[table["status"] == "failed"].itertuples():
        print(f"  failed  {row.parameter} {row.change}: {row.reason}")
    print("\n  gain_pct: % better; d_*: what the change costs (die area, maximum power, cost to make);"
          "\n  gain_per_kusd / gain_per_100mm2: % gained per $1,000 / per 100 mm^2 it costs; each best-by list gives "
          "the gain in brackets")
    for name, rows in rankings(table).items():
        listed = ", ".join(f"{r.parameter.removeprefix('hardware.')} {r.change} ({r.gain_pct:+.3g} %)"
                           for r in rows.itertuples())
        print(f"  best by {name}: {listed or '-'}")
    print(f"\n  outputs  {out}/ (sensitivity.csv, sensitivity.parquet, sensitivity.png)")


if __name__ == "__main__":
    main()
