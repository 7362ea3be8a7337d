"""Shared helpers: compose configs through Hydra exactly as the CLI does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from sim.config.compose import to_run_config
from sim.config.paths import CONF_DIR
from sim.config.schema import RunConfig, register_configs

REPO = Path(__file__).resolve().parent.parent


def make_config(*overrides: str) -> RunConfig:
    """The typed RunConfig for ``overrides``, composed from conf/ like the CLI does."""
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        dcfg = compose("config", overrides=list(overrides))
    return to_run_config(dcfg)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``llmsim`` console script (from the same environment as the tests)."""
    exe = Path(sys.executable).parent / "llmsim"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd or REPO, env=env, timeout=300)


@pytest.fixture
def config():
    return make_config


def serve(*overrides: str):
    """A serving run of ``overrides``: its result, per-request columns and summary (the serving tests' helper)."""
    from sim.metrics.serving_summary import request_columns, summarize_serving
    from sim.serving.run import simulate_serving

    result = simulate_serving(make_config(*overrides))
    cols = request_columns(result)
    return result, cols, summarize_serving(result, cols)
