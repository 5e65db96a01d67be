"""The layers stay one-way and no module imports itself round a circle (read with ``ast``).

planner <- retrieval <- generator <- montage: ``planner`` imports none of the other three,
``retrieval`` only ``planner``, ``generator`` only ``retrieval`` and ``planner``; nothing imports
the command line (``montage.cli``). Every import counts, also those inside functions and under
``TYPE_CHECKING``: a circle that only closes at run time is still a circle to a reader.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("planner", "retrieval", "generator", "montage")
ALLOWED = {
    "planner": set(),
    "retrieval": {"planner"},
    "generator": {"retrieval", "planner"},
    "montage": {"generator", "retrieval", "planner"},
}
COMMAND_LINE = "montage.cli"
MAX_LINES = 500


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the four packages, by dotted name."""
    found = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            found[_module_name(root, path)] = path
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the project modules it imports (a name imported from a package counts as its
    submodule when there is one)."""
    mods = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in mods else stem
                           for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:  # `import a.b.c` of a non-module attribute
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that point the wrong way between packages, and imports of the command line."""
    bad = []
    for src, targets in sorted(graph.items()):
        top = src.split(".")[0]
        for t in sorted(targets):
            t_top = t.split(".")[0]
            if t_top != top and t_top not in ALLOWED[top]:
                bad.append(f"{src} imports {t} ({top} may import only {sorted(ALLOWED[top]) or 'nothing'})")
            if (t == COMMAND_LINE or t.startswith(COMMAND_LINE + ".")) and not src.startswith(COMMAND_LINE):
                bad.append(f"{src} imports the command line ({t})")
    return bad


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_layers_point_one_way():
    assert layer_violations(import_graph(ROOT)) == []


def test_no_import_circles():
    assert circles(import_graph(ROOT)) == []


def test_no_module_over_the_size_limit():
    long = {n: len(p.read_text().splitlines()) for n, p in modules(ROOT).items()}
    assert {n: k for n, k in long.items() if k > MAX_LINES} == {}


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + "\n" + line + "\n")


@pytest.mark.parametrize("module, line, expected", [
    ("planner/shots.py", "from retrieval.types import Hit", "planner.shots imports retrieval.types"),
    ("retrieval/search.py", "import generator.types", "retrieval.search imports generator.types"),
    ("generator/cast.py", "    from montage.pipeline import Recutter",
     "generator.cast imports montage.pipeline"),
    ("montage/pipeline.py", "from montage.cli import main", "montage.pipeline imports the command line"),
])
def test_a_wrong_import_is_caught(tree: Path, module: str, line: str, expected: str):
    path = tree / module
    if line.startswith(" "):  # a lazy import inside a function counts too
        line = "def _late():\n" + line
    _append(path, line)
    assert any(v.startswith(expected) for v in layer_violations(import_graph(tree)))


def test_a_circle_is_caught(tree: Path):
    _append(tree / "retrieval/types.py", "from .search import hits_to_json  # closes types -> search -> types")
    assert any({"retrieval.types", "retrieval.search"} <= set(g) for g in circles(import_graph(tree)))


def test_a_relative_import_resolves_to_its_module(tree: Path):
    graph = import_graph(tree)
    assert "retrieval.types" in graph["retrieval.search"]
