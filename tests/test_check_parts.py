"""``sim.config.checks.CHECKS`` names every part of the run config each check reads.

The batch path (sim/batch/vector.py ``check_points``) runs each check once per distinct set of the
parts it declares, so a part a check reads but does not declare would let two points that differ in it
share an outcome. Each check runs here on a config that records the fields read through it (methods
such as ``attention_kernel`` included), over configs that take its branches, passing and failing.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest

from sim.config.checks import CHECKS, check_run
from sim.config.compose import compose_config
from sim.config.schema import RunConfig

FIELDS = {f.name for f in dataclasses.fields(RunConfig)}
# (preset overrides, {part: {field: value}} set on the composed config): passing and failing each check
CONFIGS = [
    (("model=llama2_70b", "hardware=h100_sxm"), {"parallel": {"tp": 8}}),
    (("model=llama2_7b", "hardware=h100_sxm"), {"parallel": {"tp": 3}}),
    (("model=llama2_7b", "hardware=h100_sxm"), {"parallel": {"pp": 2}, "fidelity": "analytic"}),
    (("model=llama2_7b", "hardware=h100_sxm"), {"parallel": {"pp": 2}, "workload": {"batch": 1}}),
    (("model=llama2_7b", "hardware=h100_sxm"), {"workload": {"prompt_tokens": 8000}}),
    (("model=llama2_7b", "hardware=h100_sxm"), {"parallel": {"cp": 2, "tp": 2}}),
    (("model=llama2_7b", "hardware=h100_sxm"), {"parallel": {"cp": 2}, "attention": {"kernel": "unfused"}}),
    (("model=llama2_7b", "hardware=h100_sxm"), {"parallel": {"cp": 2}, "workload": {"prompt_tokens": 2}}),
    (("model=llama2_7b", "hardware=h100_sxm"), {"hardware": {"board_power_W": 10.0}}),
    (("model=llama2_7b", "hardware=h100_sxm"), {"precision": {"activations": "int4", "weights": "int4"}}),
    (("model=mixtral_8x7b", "hardware=h100_sxm"), {"parallel": {"tp": 2, "ep": 4}}),
]


@functools.cache
def _composed(overrides: tuple) -> RunConfig:
    return compose_config(list(overrides))[1]


def _config(overrides: tuple, changes: dict) -> RunConfig:
    cfg = _composed(overrides)
    parts = {}
    for part, value in changes.items():
        if isinstance(value, dict):
            node = getattr(cfg, part)
            typed = {k: type(getattr(node, k))(v) if isinstance(v, str) else v for k, v in value.items()}
            parts[part] = dataclasses.replace(node, **typed)
        else:
            parts[part] = type(getattr(cfg, part))(value)
    return dataclasses.replace(cfg, **parts)


class _Reads:
    """A RunConfig's copy that records the names of its fields read (directly or by its methods)."""

    def __init__(self, cfg: RunConfig) -> None:
        cls = type("Recording", (type(cfg),), {"__getattribute__": _recording})
        self.cfg = object.__new__(cls)
        self.cfg.__dict__.update(cfg.__dict__)
        self.cfg.__dict__["_reads"] = set()

    @property
    def read(self) -> set:
        return self.cfg.__dict__["_reads"] & FIELDS


def _recording(self, name):
    if name in FIELDS:
        object.__getattribute__(self, "__dict__")["_reads"].add(name)
    return object.__getattribute__(self, name)


def test_each_check_reads_only_the_parts_it_declares():
    for overrides, changes in CONFIGS:
        _reads_within_declared(_config(overrides, changes))


def _reads_within_declared(cfg: RunConfig) -> None:
    for check, parts in CHECKS:
        reads = _Reads(cfg)
        try:
            check(reads.cfg)
        except Exception:  # noqa: BLE001 - a failing check's reads count too
            pass
        assert reads.read <= set(parts), (check.__name__, reads.read - set(parts))


def test_check_run_is_its_checks_in_order():
    cfg = _config(*CONFIGS[1])
    with pytest.raises(Exception) as whole:
        check_run(cfg)
    for check, _ in CHECKS:
        try:
            check(cfg)
        except Exception as err:  # noqa: BLE001
            assert str(err) == str(whole.value)
            break


def test_a_batch_checks_each_config_as_check_run_does():
    """sim/batch/vector_checks.py runs each check once per distinct parts; each config still gets check_run's
    outcome (the first failing check's error), configs sharing parts included."""
    from sim.batch.vector_checks import PartCodes, check_points

    cfgs = [_config(*c) for c in CONFIGS]
    chip = dataclasses.replace(cfgs[0].hardware, board_power_W=10.0)  # fails the power check
    cfgs += [dataclasses.replace(c, hardware=chip) for c in cfgs[:3]] + cfgs[:2]
    for cfg, got in zip(cfgs, check_points(PartCodes(cfgs)), strict=True):
        try:
            check_run(cfg)
            want = None
        except Exception as err:  # noqa: BLE001
            want = err
        assert (got is None) == (want is None) and str(got) == str(want)
