"""Fuzzing the config layer (issue 14): random overrides drawn from every field of the config (valid values,
out of range, wrong types, misspelt keys, removed keys) end in a result or in one of the project's input
errors, never in a bare Python exception; through the real ``llmsim``: exit 0 with a complete result
folder, or exit 2 with one line on stderr, and never a partial result."""

from __future__ import annotations

import dataclasses
import enum
import json
import typing

import pandas as pd
import pytest
import yaml
from hydra.errors import HydraException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

from hwmodels.calibration import CalibrationError
from hwmodels.chip import HardwareError
from sim.config.compose import compose_dict, to_run_config, with_resolved_model
from sim.config.errors import RunError
from sim.config.overrides import InputError, check_override
from sim.config.schema import AppConfig
from sim.studies.kinds import WORKLOADS
from tests.conftest import run_cli
from workloads.model import ModelError

# A small, fast run that the drawn overrides change: the teaching chip, two layers, a few tokens.
BASE = ("hardware=teaching_npu", "fidelity=analytic", "model.num_layers=2", "workload.prompt_tokens=16",
        "workload.decode_tokens=4", "workload.num_requests=4", "output.print_summary=false")
# What the commands reduce to one line and exit 2 (sim/cli/llmsim.py, sim/cli/common.py, sim/studies/job.py).
INPUT_ERRORS = (InputError, RunError, HardwareError, ModelError, CalibrationError, HydraException,
                OmegaConfBaseException)
SKIP = ("search",)  # llmsim-search's settings (tests/test_search.py); a search recipe is refused by llmsim


def leaf_fields(cls: type = AppConfig, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, type hint) of every plain field under ``cls``, dataclasses walked."""
    found = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        key, hint = f"{prefix}{field.name}", hints[field.name]
        if key in SKIP:
            continue
        if dataclasses.is_dataclass(hint):
            found += leaf_fields(hint, f"{key}.")
        else:
            found.append((key, hint))
    return found


FIELDS = leaf_fields()


def _plain(hint: object) -> object:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args and typing.get_origin(hint) is not dict and typing.get_origin(hint) is not list else hint


def valid_values(hint: object) -> st.SearchStrategy[str]:
    hint = _plain(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from([m.name for m in hint])
    if hint is bool:
        return st.sampled_from(["true", "false"])
    if hint is int:
        return st.sampled_from(["1", "2", "4"])
    if hint is float:
        return st.sampled_from(["0.5", "1.0", "2", "3.5"])
    return st.sampled_from(["abc", "null"])


BAD = st.sampled_from(["0", "-1", "1e30", "1" + "0" * 30, "-1e30", "abc", "1.5", "true", "", "nan", "inf"])


@st.composite
def override(draw) -> str:
    key, hint = draw(st.sampled_from(FIELDS))
    how = draw(st.sampled_from(["valid", "bad", "misspelt", "removed", "added"]))
    if how == "misspelt":
        i = draw(st.integers(0, len(key) - 1))
        return f"{key[:i]}{draw(st.sampled_from('xq_'))}{key[i + 1:]}={draw(valid_values(hint))}"
    if how == "removed":
        return f"~{key}"
    if how == "added":
        return f"+{key}={draw(valid_values(hint))}"
    return f"{key}={draw(valid_values(hint) if how == 'valid' else BAD)}"


def simulate(overrides: list[str]) -> None:
    """What ``llmsim`` does with ``overrides``, in this process: check, compose, check the run, simulate."""
    for arg in overrides:
        check_override(arg, multirun=False)
    dcfg = with_resolved_model(compose_dict([*BASE, *overrides]))
    cfg = to_run_config(dcfg)
    WORKLOADS[cfg.workload.kind].simulate(cfg)  # sim/config/checks.check_run first


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(override(), min_size=1, max_size=3))
def test_random_overrides_end_in_a_result_or_an_input_error(overrides):
    try:
        simulate(overrides)
    except INPUT_ERRORS:
        pass


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(st.lists(override(), min_size=1, max_size=2))
def test_llmsim_with_random_overrides_is_a_result_or_one_line(tmp_path_factory, overrides):
    out = tmp_path_factory.mktemp("run")
    proc = run_cli(*BASE, *overrides, f"hydra.run.dir={out}")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*.tmp"))
    if proc.returncode == 0:
        for name in ("summary.json", "config.yaml"):
            assert (out / name).exists(), name
        json.loads((out / "summary.json").read_text())
        yaml.safe_load((out / "config.yaml").read_text())
        for table in out.glob("*.parquet"):
            pd.read_parquet(table)
        for table in out.glob("*.csv"):
            pd.read_csv(table)
    else:
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (out / "summary.json").exists() and not list(out.glob("ops.*"))
