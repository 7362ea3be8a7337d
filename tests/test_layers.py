"""The architecture as a test: every import in sim/ points down a floor, never up.

Floors, lowest first (sim/__init__.py and docs/architecture.md state the same rule):
config → engine → batch | serving → metrics → output → plots → studies → cli.
``batch`` and ``serving`` share a floor and do not import each other. ``hwmodels`` and
``workloads`` never import ``sim``; ``hwmodels`` never imports ``workloads``.
"""

from __future__ import annotations

import ast
from pathlib import Path

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


def test_public_api_is_reexported_lazily():
    import subprocess
    import sys

    code = ("import sys, sim; assert 'sim.batch.run' not in sys.modules; "  # `import sim` stays cheap
            "from sim import RunConfig, simulate, simulate_serving; "
            "assert callable(simulate) and callable(simulate_serving) and RunConfig.__name__ == 'RunConfig'; "
            "assert {'simulate', 'simulate_serving', 'RunConfig'} <= set(sim.__all__)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
