"""The layers stay one-way, the rooms keep their floors, and nothing imports itself round a circle.

Read with ``ast``, so every import counts, also those inside functions and under
``TYPE_CHECKING``: a circle that only closes at run time is still a circle to a reader.

- Packages: planner <- retrieval <- generator <- montage. ``planner`` imports none of the other
  three, ``retrieval`` only ``planner``, ``generator`` only ``retrieval`` and ``planner``; nothing
  imports the command line (``montage.cli``).
- Rooms: ``retrieval/`` and ``montage/`` hold only sub-packages (rooms), besides their
  ``__init__`` and ``retrieval/types.py``. Each room has a floor; a room imports its own modules
  and rooms on lower floors, never a room on its own floor or above.
- Doors: from outside a room's package (another package, or another room of ``montage``), a room
  is entered by its ``__init__`` (its documented API), never by one of its modules. Inside
  ``retrieval`` a room may use a lower room's public modules directly. A name or module that
  starts with ``_`` is private to its room.
"""
from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
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
# room -> floor; a room may import rooms on lower floors only
FLOORS = {
    "retrieval": {"types": 0, "media": 1, "models": 1, "analysis": 2, "embed": 3, "index": 4, "search": 5},
    "montage": {"optimize": 1, "film": 2, "sound": 3, "project": 3, "pipeline": 4, "studio": 5,
                "cli": 6},
}
LOOSE_ALLOWED = {"retrieval": {"__init__.py", "types.py"}, "montage": {"__init__.py", "__main__.py"}}
# packages whose rooms are entered only through their __init__ from outside the room
DOORS_FROM_OUTSIDE = {"retrieval", "montage"}
# packages whose rooms may use each other's (lower) modules directly
OPEN_INSIDE = {"retrieval"}


@dataclass(frozen=True)
class Edge:
    target: str  # the project module imported
    names: tuple[str, ...]  # the names taken from it ("" for `import a.b`)


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


def import_edges(root: Path) -> dict[str, list[Edge]]:
    """module -> the project modules it imports, with the names taken (a name imported from a
    package counts as its submodule when there is one)."""
    mods = modules(root)
    graph: dict[str, list[Edge]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        edges: list[Edge] = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                pairs = [(a.name, "") for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                pairs = [(f"{stem}.{a.name}", "") if f"{stem}.{a.name}" in mods else (stem, a.name)
                         for a in node.names]
            else:
                continue
            for t, imported in pairs:
                while t and t not in mods:  # `import a.b.c` of a non-module attribute
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.append(Edge(t, (imported,) if imported else ()))
        graph[name] = edges
    return graph


def import_graph(root: Path) -> dict[str, set[str]]:
    return {src: {e.target for e in edges} for src, edges in import_edges(root).items()}


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


def room_of(module: str) -> tuple[str, str] | None:
    """(package, room) of a module inside a package with rooms; None for the package itself."""
    parts = module.split(".")
    if parts[0] not in FLOORS or len(parts) < 2:
        return None
    return parts[0], parts[1]


def loose_modules(root: Path) -> list[str]:
    """Modules lying directly in a package with rooms, beside its sub-packages."""
    return [f"{pkg}/{p.name}" for pkg, allowed in LOOSE_ALLOWED.items()
            for p in sorted((root / pkg).glob("*.py")) if p.name not in allowed]


def room_violations(edges: dict[str, list[Edge]]) -> list[str]:
    """Imports that climb a floor, cross on one floor, go through a room's wall instead of its
    door, or take a private name or module from another room."""
    bad = []
    for src, targets in sorted(edges.items()):
        mine = room_of(src)
        for edge in targets:
            t = edge.target
            theirs = room_of(t)
            if theirs is None or theirs == mine:
                continue
            pkg, room = theirs
            if room not in FLOORS[pkg]:
                bad.append(f"{src} imports {t}, which is in no room of {pkg} ({sorted(FLOORS[pkg])})")
                continue
            same_pkg = mine is not None and mine[0] == pkg
            if same_pkg and mine[1] in FLOORS[pkg] and FLOORS[pkg][room] >= FLOORS[pkg][mine[1]]:
                bad.append(f"{src} imports {t}: room {room} (floor {FLOORS[pkg][room]}) is not "
                           f"below {mine[1]} (floor {FLOORS[pkg][mine[1]]})")
            inner = t.split(".")[2:]  # the module path inside the room
            if inner and pkg in DOORS_FROM_OUTSIDE and not (same_pkg and pkg in OPEN_INSIDE) \
                    and room != "types":
                bad.append(f"{src} imports {t}: enter room {pkg}.{room} by its __init__ "
                           f"(from {pkg}.{room} import ...), not through one of its modules")
            private = [n for n in edge.names if n.startswith("_")] + \
                [p for p in inner if p.startswith("_")]
            if private:
                bad.append(f"{src} imports {', '.join(private)} from {t}: private to room {pkg}.{room}")
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


def test_rooms_keep_their_floors_and_doors():
    assert room_violations(import_edges(ROOT)) == []


def test_no_module_lies_loose_beside_the_rooms():
    assert loose_modules(ROOT) == []


def test_every_room_says_what_it_owns_and_may_import():
    for pkg, floors in FLOORS.items():
        rooms = {p.parent.name for p in (ROOT / pkg).glob("*/__init__.py")}
        assert rooms == set(floors) - {"types"}, f"{pkg}: rooms on disk {sorted(rooms)}, floors for {sorted(floors)}"
        for room in rooms:
            doc = " ".join((ast.get_docstring(ast.parse((ROOT / pkg / room / "__init__.py").read_text())) or "").split())
            assert "Owns" in doc and "May import" in doc, f"{pkg}/{room}/__init__.py: docstring must say what it owns and may import"


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


def _with(line: str) -> str:
    return "def _late():\n" + line if line.startswith(" ") else line  # lazy imports count too


@pytest.mark.parametrize("module, line, expected", [
    ("planner/shots.py", "from retrieval.types import Hit", "planner.shots imports retrieval.types"),
    ("retrieval/search/candidates.py", "import generator.types",
     "retrieval.search.candidates imports generator.types"),
    ("generator/cast.py", "    from montage.pipeline import Recutter",
     "generator.cast imports montage.pipeline"),
    ("montage/pipeline/recut.py", "from montage.cli import main",
     "montage.pipeline.recut imports the command line"),
])
def test_a_wrong_import_is_caught(tree: Path, module: str, line: str, expected: str):
    _append(tree / module, _with(line))
    assert any(v.startswith(expected) for v in layer_violations(import_graph(tree)))


@pytest.mark.parametrize("module, line, expected", [
    # a lower room reaching up
    ("retrieval/media/library.py", "    from retrieval.search.ranking import rank",
     "retrieval.media.library imports retrieval.search.ranking: room search (floor 5) is not below media"),
    # rooms on one floor do not lean on each other
    ("montage/sound/prepare.py", "from montage.project import load_state",
     "montage.sound.prepare imports montage.project: room project (floor 3) is not below sound"),
    # another package enters a room through its door only
    ("generator/cast.py", "    from retrieval.media.decode import read_still",
     "generator.cast imports retrieval.media.decode: enter room retrieval.media by its __init__"),
    # and so does another room of montage
    ("montage/studio/session.py", "from montage.film.render import render_edit",
     "montage.studio.session imports montage.film.render: enter room montage.film by its __init__"),
    # a private name stays in its room
    ("retrieval/search/footage.py", "from retrieval.index.build import _Run",
     "retrieval.search.footage imports _Run from retrieval.index.build: private"),
])
def test_a_wrong_room_import_is_caught(tree: Path, module: str, line: str, expected: str):
    _append(tree / module, _with(line))
    assert any(v.startswith(expected) for v in room_violations(import_edges(tree)))


def test_a_loose_module_is_caught(tree: Path):
    (tree / "retrieval" / "stray.py").write_text('"""a module with no room"""\n')
    (tree / "montage" / "helpers.py").write_text('"""another"""\n')
    assert loose_modules(tree) == ["retrieval/stray.py", "montage/helpers.py"]


def test_a_circle_is_caught(tree: Path):
    _append(tree / "retrieval/types.py",
            "from retrieval.search.candidates import hits_to_json  # closes types -> search -> types")
    assert any({"retrieval.types", "retrieval.search.candidates"} <= set(g)
               for g in circles(import_graph(tree)))


def test_a_relative_import_resolves_to_its_module(tree: Path):
    graph = import_graph(tree)
    assert "retrieval.index.store" in graph["retrieval.search.footage"]
    assert "retrieval.index.build" in graph["retrieval.index.engines.ray_engine"]
