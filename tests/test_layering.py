"""Imports run one way (DESIGN.md, "Layout"): no cycles, and no module imports one on a higher floor.

Every ``import`` and ``from ... import`` statement of every module under ``unetzoo/`` counts,
those inside functions too. Importing ``unetzoo.a.b`` also runs ``unetzoo/a/__init__.py``,
so such an import counts as an import of the package ``unetzoo.a`` as well (unless the
importing module lives inside it). A package's ``__init__`` sits on its package's floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = "unetzoo"

# Bottom to top. A name is a module, or a package with everything in it; "unetzoo" is the
# package's own __init__ only.
FLOORS: list[tuple[str, list[str]]] = [
    ("registry and checkpoint io", ["unetzoo._version", "unetzoo.network", "unetzoo.registry",
                                    "unetzoo.checkpoint"]),
    ("blocks", ["unetzoo.blocks"]),
    ("encoders", ["unetzoo.encoders"]),
    ("models", ["unetzoo.models"]),
    ("pretrained and hub", ["unetzoo.weight_tags", "unetzoo.hub", "unetzoo.convert"]),
    ("data, losses, metrics, viz", ["unetzoo.data", "unetzoo.losses", "unetzoo.metrics", "unetzoo.viz"]),
    ("training, inference, export, evaluation", [
        "unetzoo.training", "unetzoo.inference", "unetzoo.export", "unetzoo.evaluation",
        "unetzoo.prediction", "unetzoo.explanation", "unetzoo.summary",
    ]),
    ("cli and public API", ["unetzoo.cli", "unetzoo.__main__", "unetzoo"]),
]  # fmt: skip


def module_files(root: Path = REPO / PACKAGE) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` under the package (a package is its ``__init__``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def is_package(module: str, files: dict[str, Path]) -> bool:
    return files[module].name == "__init__.py"


def imported_modules(module: str, files: dict[str, Path]) -> set[str]:
    """The package modules that ``module`` imports, anywhere in its file."""
    tree = ast.parse(files[module].read_text(), filename=str(files[module]))
    package = module if is_package(module, files) else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in files]
            targets.update(submodules)
            if len(submodules) < len(node.names):  # names defined in ``source`` itself
                targets.add(source)
    found = set()
    for target in targets:
        if target.split(".")[0] != PACKAGE:
            continue
        while target not in files:  # ``import unetzoo.a.b.name`` of a non-module: its module
            target = target.rpartition(".")[0]
        found.add(target)
        parent = target.rpartition(".")[0]
        while parent and not (module == parent or module.startswith(parent + ".")):
            found.add(parent)  # the packages on the way, which run on import
            parent = parent.rpartition(".")[0]
    found.discard(module)
    return found


def floor_of(module: str) -> int | None:
    """Index into FLOORS of ``module``, or ``None`` when no floor names it."""
    for index, (_, names) in enumerate(FLOORS):
        for name in names:
            if module == name or (name != PACKAGE and module.startswith(name + ".")):
                return index
    return None


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {module: imported_modules(module, files) for module in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``a (floor) -> b (higher floor)`` for each import that goes up."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = floor_of(module), floor_of(target)
            if low is not None and high is not None and high > low:
                found.append(f"{module} ({FLOORS[low][0]}) imports {target} ({FLOORS[high][0]})")
    return found


def test_every_module_has_a_floor() -> None:
    missing = sorted(m for m in module_files() if floor_of(m) is None)
    assert not missing, f"modules without a floor in tests/test_layering.py FLOORS: {missing}"


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_nothing_imports_the_package_root() -> None:
    graph = import_graph()
    importers = sorted(m for m, targets in graph.items() if PACKAGE in targets)
    assert not importers, f"import the module itself (e.g. unetzoo._version), not unetzoo: {importers}"


def test_no_module_imports_a_higher_floor() -> None:
    upward = upward_imports(import_graph())
    assert not upward, "imports against the layering:\n  " + "\n  ".join(upward)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / PACKAGE


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"models/base.py": "def f():\n    from ..hub import save_pretrained\n"}, {"unetzoo.hub"}),
        ({"hub.py": "from . import __version__\n"}, {"unetzoo"}),
        ({"prediction.py": "from . import viz\n"}, {"unetzoo.viz"}),
        ({"hub.py": "from .models.papers import refs\n"}, {"unetzoo.models", "unetzoo.models.papers"}),
        (
            {"models/__init__.py": "from . import zoo\nfrom .base import M\n"},
            {"unetzoo.models.zoo", "unetzoo.models.base"},
        ),
        ({"cli.py": "import unetzoo.hub\nimport json\n"}, {"unetzoo.hub"}),
    ],
)
def test_imports_are_resolved(tmp_path: Path, files: dict[str, str], expected: set[str]) -> None:
    base = {"__init__.py": "", "hub.py": "", "viz.py": "", "cli.py": "", "prediction.py": "",
            "models/__init__.py": "", "models/base.py": "", "models/papers.py": "", "models/zoo.py": ""}  # fmt: skip
    module_map = module_files(write(tmp_path, {**base, **files}))
    name = next(iter(files)).removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    assert imported_modules(f"{PACKAGE}.{name}", module_map) == expected


def test_a_cycle_and_an_upward_import_are_caught() -> None:
    graph = {"unetzoo.models.base": {"unetzoo.hub"}, "unetzoo.hub": {"unetzoo.models"},
             "unetzoo.models": {"unetzoo.models.base"}}  # fmt: skip
    assert find_cycle(graph) == ["unetzoo.hub", "unetzoo.models", "unetzoo.models.base", "unetzoo.hub"]
    assert upward_imports(graph) == ["unetzoo.models.base (models) imports unetzoo.hub (pretrained and hub)"]
