"""A serving run as the ``llmsim`` command finishes it: summarise, write the files, print."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sim.metrics.serving_summary import request_columns, summarize_serving
from sim.output.serving_console import render_serving
from sim.output.serving_files import FILES, write_serving
from sim.plots.charts import CHARTS, Chart
from sim.serving.run import ServingResult


def report_serving(result: ServingResult, dcfg: DictConfig, out_dir: Path,
                   finished: Callable[[], None] | None = None, quiet: bool = False) -> dict:
    """Write the files of a serving run under ``out_dir``, print its summary, return summary.json's content.

    ``dcfg`` is the composed config: its ``output`` settings say what to write and print, and the
    whole of it goes into config.yaml.

    Args:
        finished: called once the files are written (a multirun marks the point done).
        quiet: print nothing, whatever ``output.print_summary`` says (a multirun point: the
            sweep's callback prints one line for it).
    """
    cfg = result.cfg
    requests = request_columns(result)
    summary = summarize_serving(result, requests)
    output = dcfg.output  # the tool's settings, beside the run's config
    if output.write_files:
        chart = CHARTS[Chart.serving]
        chart.draw(summary, result.steps, out_dir / chart.file())  # before summary.json, whose presence means done
        write_serving(out_dir, summary, requests, result.steps, OmegaConf.to_yaml(dcfg, resolve=True), cfg.seed)
        if finished is not None:
            finished()
    if output.print_summary and not quiet:
        print(render_serving(summary))
        if output.write_files:
            print(f"  outputs                 {out_dir}/ ({', '.join(FILES + (CHARTS[Chart.serving].file(),))})")
    return summary
