"""Package boundaries, read from the source with ast (nothing is imported or run):

- what users install, `shoal/`, imports no server code (`services`, `gateway`, `agent`);
- a service imports no other service: `services.<one>` takes only itself and
  `services.common`, and `services.common` imports no service;
- `agent/` and `gateway/` take only `services.common` from the services;
- no import cycles among our modules.

An import counts wherever it is written, inside a function too: deferring an import hides a
dependency until the call, it does not remove it. Imports under `if TYPE_CHECKING:` never run,
so they make no cycle; they still count for the boundaries (type-checking the client would
need the server code).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("shoal", "services", "agent", "gateway", "bench", "chaos")
TOOLS = ("bench", "chaos")
"""Run by developers against the real suite: nothing that ships imports them."""
SERVER = ("services", "gateway", "agent")


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    """The module imported: the longest of ours the import names."""
    where: str
    """file:line."""
    typing_only: bool


def find_modules(root: Path) -> dict[str, Path]:
    modules = {}
    for package in OURS:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(
    node: ast.AST, typing_only: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, typing_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _import_nodes(ast.Module([stmt], []), True)
            for stmt in child.orelse:
                yield from _import_nodes(ast.Module([stmt], []), typing_only)
        else:
            yield from _import_nodes(child, typing_only)


def _ours(name: str, modules: dict[str, Path]) -> str | None:
    """The longest module of ours that `name` is or lies in; None if not ours."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def find_imports(root: Path) -> tuple[dict[str, Path], list[Import]]:
    modules = find_modules(root)
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node, typing_only in _import_nodes(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from a import b` imports the module a.b if there is one, else a name of a.
                names = [f"{base}.{alias.name}" for alias in node.names]
            where = f"{path.relative_to(root)}:{node.lineno}"
            for target in dict.fromkeys(_ours(name, modules) for name in names):
                if target is not None and target != module:
                    found.append(Import(module, target, where, typing_only))
    return modules, found


def _top(module: str) -> str:
    return module.split(".")[0]


def _service(module: str) -> str | None:
    """`pool_manager` for services.pool_manager.*, `common` for services.common.*."""
    parts = module.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 else None


def broken_rule(source: str, target: str) -> str | None:
    """Which boundary an import of `target` by `source` crosses, or None."""
    src, dst = _top(source), _top(target)
    if src == "shoal" and dst in (*SERVER, *TOOLS):
        return f"the client package (shoal/) imports {dst}/"
    if src == "services":
        if dst in ("gateway", "agent", *TOOLS):
            return f"a service imports {dst}/"
        mine, theirs = _service(source), _service(target)
        if dst == "services" and theirs not in (mine, "common", None):
            if mine == "common":
                return "services.common imports a service"
            return "a service imports another service"
    if src in ("agent", "gateway"):
        if dst == "services" and _service(target) != "common":
            return f"{src}/ imports a service (only services.common is shared)"
        if dst in ("agent", "gateway", *TOOLS) and dst != src:
            return f"{src}/ imports {dst}/"
    return None


def violations(imports: list[Import]) -> list[str]:
    return [
        f"{i.where}: {i.source} imports {i.target}: {rule}"
        for i in imports
        if (rule := broken_rule(i.source, i.target)) is not None
    ]


def cycles(modules: dict[str, Path], imports: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), imports that run
    only."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for i in imports:
        if not i.typing_only:
            graph[i.source].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def describe(component: list[str], imports: list[Import]) -> str:
    """One shortest cycle through the component's first module, each import with its line."""
    inside = set(component)
    where: dict[tuple[str, str], str] = {}
    for i in imports:
        if not i.typing_only and i.source in inside and i.target in inside:
            where.setdefault((i.source, i.target), i.where)
    start = component[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while start not in came_from:
        a = queue.popleft()
        for src, b in sorted(where):
            if src == a and b not in came_from:
                came_from[b] = a
                queue.append(b)
    path = [start]
    while path[-1] != start or len(path) == 1:
        path.append(came_from[path[-1]])
    path.reverse()
    steps = "\n".join(f"  {a} -> {b} ({where[a, b]})" for a, b in pairwise(path))
    return f"cycle among {', '.join(component)}; one of them:\n{steps}"


# The repository


@pytest.fixture(scope="module")
def scanned() -> tuple[dict[str, Path], list[Import]]:
    return find_imports(ROOT)


def test_the_scan_sees_every_package_and_its_imports(
    scanned: tuple[dict[str, Path], list[Import]],
) -> None:
    # Guards the rules below against passing because nothing was read.
    modules, imports = scanned
    assert {_top(m) for m in modules} == set(OURS)
    assert len(modules) > 100
    edges = {(i.source, i.target) for i in imports}
    assert ("agent.main", "agent.session") in edges
    assert ("shoal.client", "shoal.job_schedules") in edges
    assert ("services.pool_manager.app", "services.common.errors") in edges


def test_the_packages_keep_their_boundaries(
    scanned: tuple[dict[str, Path], list[Import]],
) -> None:
    _, imports = scanned
    assert violations(imports) == []


def test_there_are_no_import_cycles(scanned: tuple[dict[str, Path], list[Import]]) -> None:
    modules, imports = scanned
    found = cycles(modules, imports)
    assert not found, "\n".join(describe(c, imports) for c in found)


# The checks themselves, on a made-up tree: each kind of breach is caught


def write_tree(root: Path, files: dict[str, str]) -> None:
    for package in OURS:
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.count("/") > 1:
            (path.parent / "__init__.py").touch()
        path.write_text(text)


def test_each_boundary_breach_is_caught(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "services/common/ids.py": "",
        "services/common/bad.py": "from services.job_scheduler import app\n",
        "services/job_scheduler/app.py": "from services.common import ids\n",
        "services/pool_manager/app.py": (
            "from services.common.ids import x\n"
            "def later():\n"
            "    from services.job_scheduler.app import y\n"
        ),
        "shoal/suite.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from services.common.ids import Config\n"
        ),
        "agent/main.py": "from services.common import ids\nimport services.pool_manager.app\n",
        "gateway/main.py": "from services.common.ids import x\nfrom agent import main\n",
    })
    _, imports = find_imports(tmp_path)
    assert sorted(violations(imports)) == [
        "agent/main.py:2: agent.main imports services.pool_manager.app: agent/ imports a "
        "service (only services.common is shared)",
        "gateway/main.py:2: gateway.main imports agent.main: gateway/ imports agent/",
        "services/common/bad.py:1: services.common.bad imports services.job_scheduler.app: "
        "services.common imports a service",
        "services/pool_manager/app.py:3: services.pool_manager.app imports "
        "services.job_scheduler.app: a service imports another service",
        "shoal/suite.py:3: shoal.suite imports services.common.ids: the client package "
        "(shoal/) imports services/",
    ]


def test_cycles_are_caught_also_through_a_function_but_not_through_type_checking(
    tmp_path: Path,
) -> None:
    write_tree(tmp_path, {
        "shoal/client.py": "from shoal.job_schedules import Methods\n",
        "shoal/job_schedules.py": "def f():\n    from shoal.client import TaskSpec\n",
        "shoal/specs.py": "from shoal import errors\n",
        "shoal/errors.py": (
            "import typing\n"
            "if typing.TYPE_CHECKING:\n"
            "    from shoal.specs import Spec\n"
        ),
        "agent/a.py": "from . import b\n",
        "agent/b.py": "import agent.c\n",
        "agent/c.py": "from .a import x\n",
    })
    modules, imports = find_imports(tmp_path)
    assert sorted(cycles(modules, imports)) == [
        ["agent.a", "agent.b", "agent.c"],
        ["shoal.client", "shoal.job_schedules"],
    ]
