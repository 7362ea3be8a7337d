"""A serving run as the ``llmsim`` command finishes it: summarise, write the files, print."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sim.metrics.serving_summary import request_columns, summarize_serving
from sim.output.serving_console import render_serving
from sim.output.serving_files import FILES, write_summary, write_tables
from sim.plots.charts import CHARTS, Chart
from sim.serving.run import ServingResult

_OS_ERROR, _INTERRUPTED = 3, 130  # the forked work's exit codes: a file it could not write, Ctrl-C


def aside(work: Callable[[], None], what: str) -> Callable[..., None]:
    """Do ``work`` in a forked process while this one goes on (Linux: a trace replay's chart takes a second or
    two, while this process computes the summary and writes the tables); return the wait for it, which raises
    what went wrong there (``what`` names the work): an OSError for a file that could not be written, a
    KeyboardInterrupt for Ctrl-C, a RuntimeError for anything else. Where processes are not forked, the work is
    done now and the wait does nothing."""
    if not sys.platform.startswith("linux"):
        work()
        return lambda: None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: work, say what went wrong, and leave without the parent's exit handlers
        os.close(read)
        code = 0
        try:
            work()
        except BaseException as err:  # noqa: BLE001 - reported by the parent
            os.write(write, f"{type(err).__name__}: {err}".encode()[:4096])
            code = _INTERRUPTED if isinstance(err, KeyboardInterrupt) else _OS_ERROR if isinstance(err, OSError) else 1
        os._exit(code)
    os.close(write)

    def wait(check: bool = True) -> None:
        """Wait for the work; ``check``: raise what went wrong there (False: something already went wrong here,
        which is what gets reported)."""
        with os.fdopen(read, "rb") as said:
            message = said.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if status and check:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            if code == _INTERRUPTED:
                raise KeyboardInterrupt
            failed = OSError if code == _OS_ERROR else RuntimeError
            raise failed(f"{what} failed: {message or f'exit status {status}'}")

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
    output = dcfg.output  # the tool's settings, beside the run's config
    config_yaml = OmegaConf.to_yaml(dcfg, resolve=True)
    chart = CHARTS[Chart.serving]

    def draw() -> None:  # the chart shows no p99 interval: its summary skips the bootstrap
        chart.draw(summarize_serving(result, requests, intervals=False), result.steps, out_dir / chart.file())

    drawn = aside(draw, f"drawing {chart.file()}") if output.write_files else None
    try:
        summary = summarize_serving(result, requests)
        if drawn is not None:
            write_tables(out_dir, requests, result.steps, config_yaml)
    except BaseException:
        if drawn is not None:
            drawn(check=False)  # the chart's process waited for; what went wrong here is what is reported
        raise
    if drawn is not None:
        drawn()
        write_summary(out_dir, summary, config_yaml, cfg.seed)  # last: its presence means done
        if finished is not None:
            finished()
    if output.print_summary and not quiet:
        print(render_serving(summary))
        if output.write_files:
            print(f"  outputs                 {out_dir}/ ({', '.join(FILES + (CHARTS[Chart.serving].file(),))})")
    return summary
