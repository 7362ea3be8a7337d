"""Run the default ``llmsim``, mask what varies, and keep it as the golden file and in the README.

``.venv/bin/python -m tests.golden.update`` (from the repository root) rewrites
``tests/golden/default_run.txt``, every README block marked ``<!-- golden: ... -->`` (the whole
file) and every line of a block marked ``<!-- golden excerpt: ... -->`` (each replaced by the golden
line with the same label). Run it only when printed numbers change on purpose, and say why.

Masked, because they vary from run to run and machine to machine: the wall time of the
``simulated`` line and the run folder of the ``outputs`` line.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import tempfile
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "default_run.txt"
README = REPO / "README.md"
RUN_FOLDER = "results/runs/<timestamp>/"  # what the golden file shows in place of the run folder
LABEL_CHARS = 26  # "  time per output token   ": the label column of the summary lines
_WALL = re.compile(r"\b\d+(\.\d+)? s wall\b")
_OUTPUTS = re.compile(r"^(  outputs +)\S+/ ", re.MULTILINE)
_BLOCK = re.compile(r"(?P<open><!-- golden(?P<excerpt> excerpt)?: (?P<file>\S+) -->\n```\n)(?P<body>.*?)"
                    r"(?P<close>```\n<!-- /golden -->)", re.DOTALL)


def default_run_output(run_dir: Path) -> str:
    """What ``llmsim hydra.run.dir=<run_dir>`` prints, run in this process through its console entry point."""
    from sim.cli.llmsim import main

    printed = io.StringIO()
    with mock.patch.object(sys, "argv", ["llmsim", f"hydra.run.dir={run_dir}"]), contextlib.redirect_stdout(printed):
        main()
    return printed.getvalue()


def normalise(text: str) -> str:
    """The run folder shown as ``results/runs/<timestamp>/`` (where a plain ``llmsim`` writes)."""
    return _OUTPUTS.sub(lambda m: m.group(1) + RUN_FOLDER + " ", text)


def mask(text: str) -> str:
    """``text`` with what legitimately varies replaced by placeholders, for comparing."""
    return _WALL.sub("<wall> s wall", normalise(text))


def readme_blocks(readme: str) -> list[tuple[bool, str, str]]:
    """(is an excerpt, golden file named, block text) for each marked block of the README."""
    return [(bool(m.group("excerpt")), m.group("file"), m.group("body")) for m in _BLOCK.finditer(readme)]


def missing_from(excerpt: str, golden: str) -> list[str]:
    """Lines of ``excerpt`` that are not lines of ``golden`` in the same order (empty: it is an excerpt)."""
    lines, at, missing = golden.splitlines(), 0, []
    for line in excerpt.splitlines():
        try:
            at = lines.index(line, at) + 1
        except ValueError:
            missing.append(line)
    return missing


def _refresh(readme: str, golden: str) -> str:
    by_label = {line[:LABEL_CHARS]: line for line in golden.splitlines() if line.strip()}

    def block(m: re.Match) -> str:
        if not m.group("excerpt"):
            return m.group("open") + golden + m.group("close")
        lines = [by_label.get(line[:LABEL_CHARS], line) for line in m.group("body").splitlines()]
        return m.group("open") + "\n".join(lines) + "\n" + m.group("close")

    return _BLOCK.sub(block, readme)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        golden = normalise(default_run_output(Path(tmp) / "run"))
    if GOLDEN.exists() and (kept := _WALL.search(GOLDEN.read_text())):  # no churn from the wall time alone
        golden = _WALL.sub(kept.group(0), golden)
    GOLDEN.write_text(golden)
    README.write_text(_refresh(README.read_text(), golden))
    print(f"wrote {GOLDEN.relative_to(REPO)} and the README blocks made from it; review with git diff")


if __name__ == "__main__":
    main()
