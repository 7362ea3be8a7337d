"""A serving run as the ``llmsim`` command does it: simulate, summarise, write the files, print."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from sim.config.schema import RunConfig
from sim.metrics.serving import request_columns, summarize_serving
from sim.output.serving_files import FILES, write_serving
from sim.output.serving_console import render_serving
from sim.plots.serving import plot_serving
from sim.serving.run import simulate_serving


def serve_job(cfg: RunConfig, dcfg: DictConfig, out_dir: Path, finished: Callable[[], None] | None = None) -> dict:
    """Simulate ``cfg`` (workload.kind=serving), write its files under ``out_dir`` and print its summary.

    ``dcfg`` is the composed config: its ``output`` settings say what to write and print, and the
    whole of it goes into config.yaml.

    Args:
        finished: called once the files are written (a multirun marks the point done).

    Raises:
        RunError: a config that cannot be served.
    """
    result = simulate_serving(cfg)
    requests = request_columns(result)
    summary = summarize_serving(result, requests)
    output = dcfg.output  # the tool's settings, beside the run's config
    if output.write_files:
        plot_serving(summary, result.steps, out_dir / "serving.png")  # before summary.json, whose presence means done
        write_serving(out_dir, summary, requests, result.steps, OmegaConf.to_yaml(dcfg, resolve=True), cfg.seed)
        if finished is not None:
            finished()
    if output.print_summary:
        print(render_serving(summary))
        if output.write_files:
            print(f"  outputs                 {out_dir}/ ({', '.join(FILES + ('serving.png',))})")
    return summary
