"""The lessons under docs/lessons/ cannot go stale: their commands are run and every quoted figure checked.

Each lesson's ```bash blocks hold ``llmsim`` commands; they are run in this process the way the
command runs them (compose, calibration fill-in, typed config, simulate, summarize: the same
numbers it prints). Its check table quotes, per row, a hand calculation and the simulator's
figure; tests/lessons_spec.py says how each is derived. A row passes when the quoted simulator
figure is the run's (to the digits quoted), the quoted hand figure is the spec's, and the two agree
within 2 % (the lesson names what makes up any larger part, and the hand figure includes it).
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.lessons_spec import LESSONS

ROOT = Path(__file__).resolve().parent.parent
LESSON_DIR = ROOT / "docs" / "lessons"
AGREE = 0.02
ROW = re.compile(r"^\|\s*`?([a-z0-9_]+)`?\s*\|(.*)\|(.*)\|(.*)\|(.*)\|\s*$")
NUMBER = re.compile(r"^([-+]?[\d,]*\.?\d+)\s*(.*)$")


@dataclass
class Run:
    overrides: list[str]
    summary: dict
    ops: pd.DataFrame | None


def commands(text: str) -> list[list[str]]:
    """The overrides of every ``llmsim`` line in the lesson's ```bash blocks, in order."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("llmsim "):
                found.append(shlex.split(line)[1:])
    return found


def simulate(overrides: list[str]) -> Run:
    """What ``llmsim <overrides>`` computes (sim/studies/job.py: compose, calibrate, simulate, summarize)."""
    from sim.config.compose import compose_dict, to_run_config
    from sim.metrics.summary import ops_columns
    from sim.studies.kinds import workload

    assert "-m" not in overrides, "a lesson command is one run"
    cfg = to_run_config(compose_dict(overrides))
    entry = workload(cfg.workload.kind)
    result = entry.simulate(cfg)
    ops = pd.DataFrame(ops_columns(result)) if cfg.workload.kind.value == "single_batch" else None
    return Run(overrides, entry.summarize(result).as_dict(), ops)


@functools.cache
def lesson_runs(name: str) -> list[Run]:
    return [simulate(o) for o in commands((LESSON_DIR / name).read_text())]


def quoted_rows(text: str) -> dict[str, tuple[str, str, str]]:
    """{check id: (hand calculation, hand figure, simulator figure)} from the lesson's check table."""
    rows = {}
    for line in text.splitlines():
        m = ROW.match(line.strip())
        if m and m.group(1) not in ("check", "id"):
            rows[m.group(1)] = (m.group(2).strip(), m.group(3).strip(), m.group(4).strip())
    return rows


def parse(cell: str, unit: str) -> tuple[float, float]:
    """(value, half a unit of its last quoted digit) of a cell like ``13.88 ms``."""
    m = NUMBER.match(cell.replace("\u2009", ""))
    assert m, f"'{cell}' is not a number with a unit"
    number, got = m.group(1).replace(",", ""), m.group(2).strip()
    assert got == unit, f"'{cell}': expected the unit {unit!r}"
    decimals = len(number.split(".")[1]) if "." in number else 0
    return float(number), 0.5 * 10 ** -decimals + 1e-12


def same(cell: str, value: float, unit: str) -> bool:
    quoted, half = parse(cell, unit)
    return abs(quoted - value) <= half * 1.0001


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LESSONS))
def test_lesson_figures(name):
    text = (LESSON_DIR / name).read_text()
    rows = quoted_rows(text)
    assert set(rows) == set(LESSONS[name]), "the lesson's check table and tests/lessons_spec.py name the same rows"
    runs = lesson_runs(name)
    for key, check in LESSONS[name].items():
        _, hand_cell, sim_cell = rows[key]
        sim, hand = check.sim(runs), check.hand_value(runs)
        assert same(sim_cell, sim, check.unit), f"{name} {key}: quotes {sim_cell}, the simulator gives {sim:.6g}"
        assert same(hand_cell, hand, check.unit), f"{name} {key}: quotes {hand_cell}, by hand {hand:.6g}"
        assert abs(sim - hand) <= AGREE * abs(hand), (
            f"{name} {key}: simulator {sim:.6g} and hand {hand:.6g} differ by more than 2 %")


def test_every_lesson_has_a_spec_and_commands():
    found = sorted(p.name for p in LESSON_DIR.glob("[0-9][0-9]_*.md"))
    assert found == sorted(LESSONS)
    for name in found:
        cmds = commands((LESSON_DIR / name).read_text())
        assert cmds and all("hardware=teaching_npu" in c for c in cmds), f"{name}: commands on the teaching NPU"


def test_the_checker_catches_a_stale_figure():
    assert same("13.88 ms", 13.876, "ms") and not same("13.88 ms", 13.9, "ms")
    with pytest.raises(AssertionError):
        parse("13.88 us", "ms")
    rows = quoted_rows("| tpot | 13.2 GB / 1000 GB/s | 13.78 ms | 13.88 ms | +0.7 % |")
    assert rows == {"tpot": ("13.2 GB / 1000 GB/s", "13.78 ms", "13.88 ms")}
