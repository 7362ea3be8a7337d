"""Every number in a chip, host or system preset names its source, and no preset sets a fitted value.

The A100-fitted parameters (hwmodels/calibration.yaml) are the only fitted numbers in the repo
(issue 12): a preset's figures are datasheet facts, published measurements of a kernel family or
a memory generation, or marked ESTIMATE, each with a comment on its line or on the comment
paragraph right above it. An ``ideal`` chip (the teaching NPU) sets round design values instead.
"""

from __future__ import annotations

import re

import pytest
import yaml

from hwmodels.calibration import FITTED_KEYS
from sim.config.paths import CONF_DIR, presets

NUMBER = re.compile(r"^\s*[\w.]+:\s*-?\d[\d_.eE+-]*\s*(#.*)?$")


def unsourced(text: str) -> list[str]:
    """Lines holding a number with no comment on them and none in the paragraph above."""
    missing, paragraph_commented = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            paragraph_commented = False
            continue
        if stripped.startswith("#"):
            paragraph_commented = True
            continue
        if NUMBER.match(line) and "#" not in line and not paragraph_commented:
            missing.append(stripped)
    return missing


PRESETS = [(group, name) for group in ("hardware", "host", "system", "runtime", "model") for name in presets(group)]


@pytest.mark.parametrize(("group", "name"), PRESETS)
def test_every_number_has_a_source(group, name):
    text = (CONF_DIR / group / f"{name}.yaml").read_text()
    assert unsourced(text) == [], f"conf/{group}/{name}.yaml: numbers without a source comment"


@pytest.mark.parametrize("name", presets("hardware"))
def test_no_preset_sets_a_fitted_key(name):
    values = yaml.safe_load((CONF_DIR / "hardware" / f"{name}.yaml").read_text())
    if values.get("ideal"):
        return  # an idealised teaching chip sets round design values, not measurements
    assert not set(values) & set(FITTED_KEYS), f"conf/hardware/{name}.yaml sets fitted keys"


def test_the_check_catches_a_bare_number():
    assert unsourced("a: 1  # datasheet\n\n# source\nb: 2\nc: 3\n\nd: 4\n") == ["d: 4"]
