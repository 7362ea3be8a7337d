"""The README's default-run output, produced by a test: golden file, run and README agree.

The default run (``llmsim``, in this process through its console entry point) must print exactly
``tests/golden/default_run.txt``, apart from the wall time and the run folder (masked). The
README's block marked ``<!-- golden: tests/golden/default_run.txt -->`` must be the golden file,
and a block marked ``<!-- golden excerpt: ... -->`` must be golden lines, in order.

When printed numbers change on purpose, regenerate both and say why in the commit:
``.venv/bin/python -m tests.golden.update``.
"""

from __future__ import annotations

from tests.golden.update import GOLDEN, README, REPO, default_run_output, mask, missing_from, readme_blocks

UPDATE = "numbers changed? if on purpose: .venv/bin/python -m tests.golden.update, and say why in the commit"


def test_the_default_run_prints_the_golden_file(tmp_path):
    printed = default_run_output(tmp_path / "run")
    assert mask(printed) == mask(GOLDEN.read_text()), UPDATE


def test_the_readme_shows_the_golden_file():
    blocks = readme_blocks(README.read_text())
    assert any(not excerpt for excerpt, _, _ in blocks), "README has no <!-- golden: ... --> block"
    for excerpt, name, text in blocks:
        golden = (REPO / name).read_text()
        if excerpt:
            assert missing_from(text, golden) == [], UPDATE
        else:
            assert text == golden, UPDATE


def test_an_excerpt_must_keep_the_order():
    golden = "a\nb\nc\n"
    assert missing_from("a\nc\n", golden) == []
    assert missing_from("c\na\n", golden) == ["a"]
    assert missing_from("b\nx\n", golden) == ["x"]
