"""``llmsim-capacity``: the thin entry point of sim.studies.capacity (parse, call, one-line error, exit 2).

    llmsim-capacity [overrides...] slo.ttft_p99_s=2 slo.tpot_p99_s=0.2 [--offline] [--search]
                    [--max-layouts N] [--requests N] [--max-requests N] [--out DIR]

The overrides are ``llmsim``'s (``workload=serving`` is implied). ``--offline`` runs ``--requests``
requests at t = 0 once and prints the throughput, no targets needed. ``--search`` tries the
layouts of the config's chips as replicas of TP x PP groups in the config's and fp8 weight/KV
formats (pruned by memory before probing, at most ``--max-layouts`` probed), then max sequences and
max batched tokens around the best (sim/studies/capacity_search.py), and ranks them by capacity,
per dollar and per watt.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

from sim.cli.common import ArgumentParser, folder_arg, hydra_split, one_line_errors, print_notes
from sim.config.workload import MOST_REQUESTS, MOST_REQUESTS_WHY


@one_line_errors("llmsim-capacity")
def main(argv: list[str] | None = None) -> None:
    from sim.config.compose import compose_config
    from sim.config.overrides import EXIT_BAD_INPUT, InputError, check_override
    from sim.config.paths import OutputDirError, output_dir
    from sim.output.files import holding
    from sim.studies import capacity as study
    from sim.studies.capacity_report import FILES, describe, probe_line, render_capacity, write_capacity
    from sim.studies.sweep import FAILURES

    parser = ArgumentParser(prog="llmsim-capacity", description=study.__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the serving configuration")
    parser.add_argument("--offline", action="store_true", help="every request at t = 0: throughput over the "
                        "makespan, the drain of the last outputs included (not an upper bound on the capacity: a "
                        "steady stream can exceed it)")
    parser.add_argument("--search", action="store_true", help="rank the layouts of the chips (replicas x TP x PP, "
                        "weight/KV formats), then max sequences and chunk size around the best, by capacity")
    parser.add_argument("--max-layouts", type=int, default=8,
                        help="--search: layouts probed at most (those that fit in memory, fewest stages first)")
    parser.add_argument("--requests", type=int, default=study.BASE_REQUESTS, help="requests of a probe at first")
    parser.add_argument("--max-requests", type=int, default=study.MAX_REQUESTS,
                        help="requests of a probe at most (doubled until its p99s are precise)")
    parser.add_argument("--out", type=folder_arg, help="output folder (default results/capacity/<name>/<timestamp>)")
    args = parser.parse_intermixed_args(argv)
    overrides, hydra = hydra_split("llmsim-capacity", args.overrides, out=not (args.offline or args.search))
    if not any(o.partition("=")[0].lstrip("+") == "workload" for o in overrides):
        overrides.insert(0, "workload=serving")
    try:
        if args.max_layouts < 1:  # before the search's banner, as every argument is checked before any work
            raise InputError(f"--max-layouts must be >= 1 (got {args.max_layouts})")
        if not 1 <= args.requests <= args.max_requests:
            raise InputError(f"--requests must be >= 1 and at most --max-requests (got {args.requests}, "
                             f"{args.max_requests})")
        if args.max_requests > MOST_REQUESTS:  # a probe's workload.num_requests: named as the user gave it
            raise InputError(f"--max-requests={args.max_requests:,} is out of range: at most {MOST_REQUESTS:,} "
                             f"({MOST_REQUESTS_WHY})")
        for arg in overrides:
            check_override(arg, multirun=False)
        dcfg, cfg = compose_config(overrides)
        print_notes("llmsim-capacity", hydra + _unused(args, overrides))
        if args.offline:  # writes nothing: --out is not checked (the note above says it is not used)
            _offline(cfg, args.requests)
            return
        study.check_capacity_config(cfg)
        if args.search:  # writes nothing either
            _search(cfg, args.requests, args.max_requests, args.max_layouts)
            return
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
        out = output_dir(args.out or Path("results/capacity") / dcfg.name / stamp, create=False)
        with holding(out):  # from the start: another llmsim command there meanwhile is refused (FolderInUse)
            print(f"llmsim-capacity: {cfg.model.name} on {cfg.hardware.name}: searching the highest "
                  f"{study.offered(cfg)} rate within the p99 targets", flush=True)
            found = study.find_capacity(cfg, args.requests, args.max_requests,
                                        progress=lambda p: print(probe_line(p), flush=True))
            print(f"  system                   {describe(found)}")
            print(render_capacity(found))
            write_capacity(found, out, OmegaConf.to_yaml(dcfg, resolve=True))
    except (InputError, OutputDirError, *FAILURES) as err:  # Hydra's own errors: one_line_errors
        print(f"llmsim-capacity: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    print(f"  outputs                  {out}/ ({', '.join(FILES)})")


def _offline(cfg, requests: int) -> None:
    from sim.studies import capacity as study
    from sim.studies.capacity_report import probe_line

    study.check_capacity_config(cfg, targets=False)
    probe = study.Prober(cfg, requests, requests)(0.0)
    print(probe_line(probe))
    s = probe.summary
    print(f"  offline throughput       {s['requests_per_s']:,.4g} requests/s, {s['output_tokens_per_s']:,.0f} "
          f"output tokens/s over {probe.requests:,} requests, ${s['usd_per_million_output_tokens']:.3g} per "
          f"million output tokens, {s['joules_per_output_token']:.3g} J per output token")


def _search(cfg, base: int, most: int, max_layouts: int) -> None:
    from sim.studies.capacity_search import render_search, search_layouts

    chips = cfg.parallel.tp * cfg.parallel.pp * cfg.parallel.dp
    print(f"llmsim-capacity --search: {cfg.model.name} on {chips}x {cfg.hardware.name}: layouts as replicas of "
          f"TP x PP groups in each weight/KV format (those that do not fit in memory pruned before probing, at most "
          f"{max_layouts} probed), then max sequences and max batched tokens (chunk) around the best", flush=True)
    cands = search_layouts(cfg, base, most, progress=lambda c: print(
        f"  {c.name}: {c.capacity:.4g} requests/s" + (f" ({c.failure})" if c.failure else ""), flush=True),
        max_layouts=max_layouts)
    print(render_search(cands))
    ran = [c for c in cands if c.found]
    print(f"  probes                   {sum(c.probes for c in ran)} serving runs over {len(ran)} capacity searches "
          f"(plus {len(cands) - len(ran)} candidates not probed), at most "
          f"{max((p.requests for c in ran for p in c.found.probes), default=0):,} requests per probe, "
          f"{sum(c.found.wall_s for c in ran):.1f} s wall")


def _unused(args, overrides: list[str]) -> list[str]:
    """What the command was given and does not read, each in words (the run goes on)."""
    notes = []
    if args.out is not None and (args.offline or args.search):
        notes.append(f"--out is not used: --{'offline' if args.offline else 'search'} prints its result and writes "
                     "no files")
    if any(o.partition("=")[0].lstrip("+") == "workload.num_requests" for o in overrides):
        notes.append("workload.num_requests is not used: each probe's requests are --requests (up to "
                     "--max-requests)")
    return notes


if __name__ == "__main__":
    main()
