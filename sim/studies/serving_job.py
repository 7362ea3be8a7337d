"""A serving run as the ``llmsim`` command finishes it: summarise, write the files, print."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sim.metrics.serving_summary import request_columns, summarize_serving
from sim.output.serving_console import render_serving
from sim.output.serving_files import FILES, write_serving
from sim.plots.charts import CHARTS, Chart
from sim.serving.run import ServingResult


def draw_aside(chart, summary: dict, steps: dict, path: Path) -> Callable[[], None]:
    """Draw the chart in a forked process while this one writes the tables (Linux: a trace replay's plot and
    tables take a second or two each, on two cores at once); return the wait for it, which raises what went
    wrong there. Where processes are not forked, the chart is drawn now and the wait does nothing."""
    if not sys.platform.startswith("linux"):
        chart.draw(summary, steps, path)
        return lambda: None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: draw, say what went wrong, and leave without the parent's exit handlers
        os.close(read)
        code = 0
        try:
            chart.draw(summary, steps, path)
        except BaseException as err:  # noqa: BLE001 - reported by the parent
            os.write(write, f"{type(err).__name__}: {err}".encode()[:4096])
            code = 1
        os._exit(code)
    os.close(write)

    def wait() -> None:
        with os.fdopen(read, "rb") as said:
            message = said.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if status:
            raise RuntimeError(f"drawing {path.name} failed: {message or f'exit status {status}'}")

    return wait


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
        drawn = draw_aside(chart, summary, result.steps, out_dir / chart.file())
        write_serving(out_dir, summary, requests, result.steps, OmegaConf.to_yaml(dcfg, resolve=True), cfg.seed,
                      before_summary=drawn)  # the chart before summary.json, whose presence means done
        if finished is not None:
            finished()
    if output.print_summary and not quiet:
        print(render_serving(summary))
        if output.write_files:
            print(f"  outputs                 {out_dir}/ ({', '.join(FILES + (CHARTS[Chart.serving].file(),))})")
    return summary
