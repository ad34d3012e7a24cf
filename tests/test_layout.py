"""The layout's promises, checked on the source: one home per concern, data flowing one way.

- every package under edgekit/ ships (pyproject's package list);
- no import circle between edgekit's packages (imports inside functions count too);
- the library never imports the CLI, and nothing inside edgekit imports the `edgekit.api` facade;
- only `edgekit/targets/` (the adapters) and `edgekit/openers.py` (the runtime table) compare runtime names;
- no library file over 400 lines.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "edgekit"
RUNTIME_NAMES = {"onnxruntime", "openvino", "paddle-inference", "paddle-lite"}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.startswith("edgekit")}


def _unit(module: str) -> str:
    """The package (edgekit.X) or top-level module a module belongs to, for the package graph."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_every_package_ships():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(p.parent.relative_to(REPO).parts) for p in LIBRARY.rglob("__init__.py")}
    assert packages <= listed, f"packages missing from pyproject.toml: {sorted(packages - listed)}"


def test_no_import_circles_between_packages():
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        unit = _unit(name)
        targets = {_unit(m) for m in _imports(path) if _unit(m) in {_unit(n) for n in modules}}
        graph.setdefault(unit, set()).update(targets - {unit, "edgekit"})
    # Depth-first search for a cycle, reporting its path.
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join(trail[trail.index(nxt):] + [node, nxt]
                                                           if nxt in trail else [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_library_never_imports_the_cli_and_only_the_cli_imports_the_facade():
    for name, path in _modules().items():
        imported = {_unit(m) for m in _imports(path)}
        if not name.startswith("edgekit.cli"):
            assert "edgekit.cli" not in imported, f"{name} imports the CLI"
            assert "edgekit.api" not in imported or name == "edgekit.api", f"{name} imports edgekit.api"


def test_only_the_adapters_and_the_runtime_table_compare_runtime_names():
    allowed = {LIBRARY / "openers.py", *(LIBRARY / "targets").glob("*.py")}
    offenders = []
    for path in _modules().values():
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                values = [node.left, *node.comparators]
                names = [v.value for v in values if isinstance(v, ast.Constant)]
                for v in values:
                    if isinstance(v, (ast.Tuple, ast.List, ast.Set)):
                        names += [e.value for e in v.elts if isinstance(e, ast.Constant)]
                if RUNTIME_NAMES & set(names):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"runtime names compared outside edgekit/targets/: {offenders}"


def test_no_library_file_is_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in LIBRARY.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these along their concerns: {long}"
