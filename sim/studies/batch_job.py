"""A single-batch run as the ``llmsim`` command finishes it: summarise, write the files, print."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sim.batch.run import RunResult
from sim.metrics.summary import breakdown_by_kind, ops_columns, summarize
from sim.output.console import render
from sim.output.files import write_run
from sim.output.trace import write_trace


def report_batch(result: RunResult, dcfg: DictConfig, out_dir: Path,
                 finished: Callable[[], None] | None = None, quiet: bool = False) -> dict:
    """Write the files of a single-batch run under ``out_dir``, print its summary, return summary.json's content.

    Args:
        finished: called once the files are written (a multirun marks the point done).
        quiet: print nothing, whatever ``output.print_summary`` says (a multirun point: the
            sweep's callback prints one line for it).
    """
    cfg = result.cfg
    summary = summarize(result)
    breakdown = breakdown_by_kind(result)
    output = dcfg.output  # the tool's settings, beside the run's config
    if output.write_files:
        ops = ops_columns(result)
        if output.trace:  # before write_run's summary.json, whose presence means the point's files are all there
            write_trace(ops, out_dir / "trace.json", title=f"{cfg.model.name} on {cfg.hardware.name}")
        write_run(out_dir, summary, breakdown, ops, OmegaConf.to_yaml(dcfg, resolve=True), cfg.seed)
        if finished is not None:  # the marker last: a point is finished only once all its files are
            finished()
    if output.print_summary and not quiet:
        print(render(summary, breakdown))
        if output.write_files:
            trace = ", trace.json" if output.trace else ""
            print(f"  outputs                 {out_dir}/ (summary.json, ops.parquet, ops.csv, config.yaml{trace})")
    return summary
