"""The architecture as a test: every import in sim/ points down a floor, never up.

Floors, lowest first (sim/__init__.py and docs/architecture.md state the same rule):
config → engine → batch | serving → metrics → output → plots → studies → cli.
``batch`` and ``serving`` share a floor and do not import each other. ``hwmodels`` and
``workloads`` never import ``sim``; ``hwmodels`` never imports ``workloads``.

Sizes and names, the house rules of issue 11: no module in sim/, hwmodels/ or workloads/ over
400 lines, no function over 60, no module or package name used twice with different meanings.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = [("config",), ("engine",), ("batch", "serving"), ("metrics",), ("output",), ("plots",), ("studies",),
          ("cli",)]
LEVEL = {pkg: i for i, floor in enumerate(FLOORS) for pkg in floor}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if name == "sim"]
    return found


def _floor(module: str) -> str | None:
    """The sim floor a module belongs to (None: sim/__init__ itself or outside sim)."""
    parts = module.split(".")
    if parts[0] != "sim" or len(parts) < 2:
        return None
    return parts[1]


def _violations() -> list[str]:
    bad = []
    for path in sorted(ROOT.glob("sim/**/*.py")) + sorted(ROOT.glob("hwmodels/**/*.py")) + sorted(
            ROOT.glob("workloads/**/*.py")):
        rel = path.relative_to(ROOT)
        me = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        top = rel.parts[0]
        for line, target in _imports(path):
            where = f"{rel}:{line} imports {target}"
            if top in ("hwmodels", "workloads"):
                if target.split(".")[0] == "sim":
                    bad.append(f"{where}: {top} must not import sim")
                if top == "hwmodels" and target.split(".")[0] == "workloads":
                    bad.append(f"{where}: hwmodels must not import workloads")
                continue
            mine, theirs = _floor(me), _floor(target)
            if mine is None:  # sim/__init__.py re-exports the public API
                continue
            if mine not in LEVEL:
                bad.append(f"{rel}: sim/{mine} is on no floor; add it to FLOORS")
                continue
            if theirs is None or theirs == mine:
                continue
            if theirs not in LEVEL:
                bad.append(f"{where}: sim/{theirs} is on no floor")
            elif LEVEL[theirs] >= LEVEL[mine]:
                bad.append(f"{where}: sim/{mine} may not import sim/{theirs} (same floor or above)")
    return bad


def test_imports_point_down_the_floors():
    assert _violations() == []


def test_the_checker_catches_an_upward_import(tmp_path):
    fake = tmp_path / "sim" / "engine"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from sim.studies.sweep import ReportError\nimport sim.cli.llmsim\n")
    (tmp_path / "hwmodels").mkdir()
    (tmp_path / "hwmodels" / "bad.py").write_text("from workloads.ops import Op\nfrom ..sim import x\n")
    globals()["ROOT"], saved = tmp_path, ROOT
    try:
        found = _violations()
    finally:
        globals()["ROOT"] = saved
    assert len([v for v in found if "sim/engine may not import" in v]) == 2
    assert any("hwmodels must not import workloads" in v for v in found)


@pytest.mark.slow
def test_public_api_is_reexported_lazily():
    import subprocess
    import sys

    code = ("import sys, sim; assert 'sim.batch.run' not in sys.modules; "  # `import sim` stays cheap
            "from sim import RunConfig, simulate, simulate_serving; "
            "assert callable(simulate) and callable(simulate_serving) and RunConfig.__name__ == 'RunConfig'; "
            "assert {'simulate', 'simulate_serving', 'RunConfig'} <= set(sim.__all__)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


SOURCE_TOPS = ("sim", "hwmodels", "workloads")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Names used more than once on purpose, with the one meaning their places share.
SAME_MEANING = {
    "run": (("sim/batch/run.py", "sim/serving/run.py"), "one run of a workload kind"),
    "report": (("sim/studies/search/report.py", "sim/studies/sweep/report.py"), "what a study writes"),
}


def _sources() -> list[Path]:
    return [p for top in SOURCE_TOPS for p in sorted(ROOT.glob(f"{top}/**/*.py"))]


def _long_functions() -> dict[str, int]:
    """``"<path> <function>"`` -> lines, for every function or method over the limit."""
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT).as_posix()} {node.name}"] = lines
    return long


def _duplicate_names() -> dict[str, tuple[str, ...]]:
    """Module stems and package folders (``__init__.py`` aside) found at more than one place.

    sim/cli/ is left out: each of its modules is named after the command's study it fronts
    (sim/cli/grid.py runs sim/studies/sweep/grid.py), one meaning by construction.
    """
    places = defaultdict(list)
    for top in SOURCE_TOPS:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("sim/cli/"):
                continue
            if path.is_dir() and (path / "__init__.py").exists():
                places[path.name].append(rel + "/")
            elif path.suffix == ".py" and path.name != "__init__.py":
                places[path.stem].append(rel)
    return {name: tuple(sorted(where)) for name, where in places.items() if len(where) > 1}


@pytest.mark.parametrize("top", SOURCE_TOPS)
def test_no_module_over_400_lines(top):
    long = {p.relative_to(ROOT).as_posix(): n for p in sorted(ROOT.glob(f"{top}/**/*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_over_60_lines():
    assert _long_functions() == {}


def test_no_name_used_twice_with_different_meanings():
    found = _duplicate_names()
    assert {name: where for name, where in found.items() if SAME_MEANING.get(name, ((),))[0] != where} == {}


def test_the_size_checks_see_a_long_function(tmp_path):
    pkg = tmp_path / "workloads"
    pkg.mkdir()
    (pkg / "big.py").write_text("def f():\n" + "    x = 1\n" * 70)
    (pkg / "run.py").write_text("")
    globals()["ROOT"], saved = tmp_path, ROOT
    try:
        assert _long_functions() == {"workloads/big.py f": 71}
        assert _duplicate_names() == {}
        (tmp_path / "sim" / "batch").mkdir(parents=True)
        (tmp_path / "sim" / "batch" / "run.py").write_text("")
        assert _duplicate_names() == {"run": ("sim/batch/run.py", "workloads/run.py")}
    finally:
        globals()["ROOT"] = saved


@pytest.mark.slow
def test_the_llmsim_command_imports_no_plotting_until_it_draws():
    """Every run imports sim.cli.llmsim; matplotlib (about 1 s) must wait for a chart to be drawn."""
    import subprocess
    import sys

    code = "import sys, sim.cli.llmsim; assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
