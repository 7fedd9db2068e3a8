"""The package's shape, read from its source: what each layer may import, module sizes, and
no import cycle.

The folders name the architecture (``cairn.core`` the pure interpreter, ``cairn.definitions``
the reader, ``cairn.runtime`` the shell, ``cairn.codeflow`` the adapter); these tests keep
them honest as the code changes. Nothing is imported: each file is parsed with ``ast``, so
a module that would fail to import, or import something heavy, cannot hide a dependency.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {
    "cairn": ROOT / "engine",
    "cairn.cli": ROOT / "cli",
    "cairn.schemas": ROOT / "schemas",
}
"""Where each import package lives, as pyproject.toml's ``package-dir`` maps it."""
MAX_LINES = 500

CORE_MAY_IMPORT = frozenset(
    {
        # the standard library's pure parts: no I/O, no clock, no randomness, no processes
        "__future__",
        "abc",
        "bisect",
        "collections",
        "collections.abc",
        "copy",
        "dataclasses",
        "datetime",  # to read and write timestamps: the core never asks it the time
        "decimal",
        "enum",
        "functools",
        "hashlib",
        "heapq",
        "itertools",
        "json",
        "math",
        "operator",
        "re",
        "types",
        "typing",
        # the query language, and the package's neutral modules
        "jmespath",
        "cairn.errors",
        "cairn.jsontypes",
    }
)
"""Everything ``cairn.core`` may import besides ``cairn.core`` itself. A module that is not
here has to be thought about (is it pure?) and added, or the code changed."""

CORE_MUST_NOT_IMPORT = (
    "cairn.runtime",
    "cairn.definitions",
    "cairn.codeflow",
    "cairn.cli",
    "sqlalchemy",
    "psycopg",
    "sqlite3",
    "os",
    "sys",
    "io",
    "socket",
    "time",
    "threading",
    "asyncio",
    "subprocess",
    "random",
    "uuid",
    "logging",
    "pathlib",
)
"""Databases, files, processes, clocks and randomness: what would make a decision depend on
more than its events and its command."""


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target, resolved to a module name."""

    module: str
    line: int
    at_load: bool
    """Run when the importing module loads: not inside a function, not only for type checkers."""


@dataclass(frozen=True, slots=True)
class Module:
    """One module of the package as read from its file."""

    name: str
    file: Path
    lines: int
    tree: ast.Module
    imports: tuple[Import, ...]


def module_name(package: str, folder: Path, file: Path) -> str:
    """``engine/x/y.py`` is ``cairn.x.y`` and ``engine/x/__init__.py`` is ``cairn.x``."""
    parts = file.relative_to(folder).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package, *parts))


def files() -> Iterator[tuple[str, Path]]:
    for package, folder in PACKAGE_DIRS.items():
        for file in sorted(folder.rglob("*.py")):
            yield module_name(package, folder, file), file


@functools.cache
def modules() -> dict[str, Module]:
    """Every module of the package, with the imports it makes, by name."""
    found: dict[str, tuple[Path, str, ast.Module]] = {}
    for name, file in files():
        text = file.read_text(encoding="utf-8")
        found[name] = (file, text, ast.parse(text, filename=str(file)))
    known = frozenset(found)
    return {
        name: Module(
            name=name,
            file=file,
            lines=len(text.splitlines()),
            tree=tree,
            imports=tuple(_imports(tree, name, file.name == "__init__.py", known)),
        )
        for name, (file, text, tree) in found.items()
    }


def _imports(
    tree: ast.Module, name: str, is_package: bool, known: frozenset[str]
) -> Iterator[Import]:
    package = name if is_package else name.rpartition(".")[0]
    for node, at_load in _walk(tree.body, at_load=True):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, at_load)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:
                # `from cairn.core import events` imports the module cairn.core.events
                submodule = f"{base}.{alias.name}"
                yield Import(submodule if submodule in known else base, node.lineno, at_load)


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def _walk(statements: Iterable[ast.stmt], *, at_load: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement, and whether it runs when the module loads."""
    for node in statements:
        yield node, at_load
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _walk(node.body, at_load=False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.body, at_load=False)
            yield from _walk(node.orelse, at_load=at_load)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                for child in getattr(node, field, ()):
                    inner = (
                        child.body
                        if isinstance(child, (ast.ExceptHandler, ast.match_case))
                        else [child]
                    )
                    yield from _walk(inner, at_load=at_load)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(f"{prefix}.")


def imports_of(prefix: str, forbidden: Iterable[str]) -> list[str]:
    """``file:line: importer -> imported`` for every import from ``prefix`` of ``forbidden``,
    wherever it is made (a lazy import inside a function is a dependency all the same)."""
    banned = tuple(forbidden)
    return [
        f"{module.file.relative_to(ROOT)}:{found.line}: {module.name} -> {found.module}"
        for module in modules().values()
        if within(module.name, prefix)
        for found in module.imports
        if any(within(found.module, b) for b in banned)
    ]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each group of modules that import each other in a ring."""
    found = []
    for group in _strongly_connected(graph):
        start = min(group)
        if len(group) > 1 or start in graph[start]:
            found.append(_shortest_cycle(graph, start, group))
    return sorted(found)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    # Tarjan's algorithm, iterative so that a long import chain cannot exhaust the stack
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    groups.append(group)
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(sorted(graph[target]))))
            elif target in on_stack:
                low[node] = min(low[node], index[target])
    return groups


def _shortest_cycle(graph: dict[str, set[str]], start: str, group: set[str]) -> list[str]:
    paths = {start: [start]}
    queue = [start]
    for node in queue:
        for target in sorted(graph[node] & group):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"{start} is in a ring of imports but no path leads back to it")


# --- the pure core --------------------------------------------------------------------------


def test_the_core_imports_only_what_is_listed_as_pure() -> None:
    outside = [
        f"{module.file.relative_to(ROOT)}:{found.line}: {found.module}"
        for module in modules().values()
        if within(module.name, "cairn.core")
        for found in module.imports
        if not within(found.module, "cairn.core") and found.module not in CORE_MAY_IMPORT
    ]
    assert not outside, (
        "cairn.core imports what is not listed as pure in CORE_MAY_IMPORT: is it free of I/O, "
        "clocks and randomness? Then list it; else keep it out of the core:\n" + "\n".join(outside)
    )


def test_the_core_imports_no_database_file_process_clock_or_randomness() -> None:
    found = imports_of("cairn.core", CORE_MUST_NOT_IMPORT)
    assert not found, "the pure core must not import these:\n" + "\n".join(found)


def test_the_core_never_asks_the_time() -> None:
    clock = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}
    asked = [
        f"{module.file.relative_to(ROOT)}:{node.lineno}: .{node.func.attr}()"
        for module in modules().values()
        if within(module.name, "cairn.core")
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in clock
    ]
    assert not asked, "the time comes into the core as an argument:\n" + "\n".join(asked)


# --- layers -------------------------------------------------------------------------------


def test_the_core_imports_nothing_from_the_other_subpackages() -> None:
    others = ("cairn.definitions", "cairn.runtime", "cairn.codeflow", "cairn.cli")
    found = imports_of("cairn.core", others)
    assert not found, "cairn.core is the bottom layer:\n" + "\n".join(found)


def test_the_definition_reader_imports_nothing_from_the_runtime() -> None:
    found = imports_of("cairn.definitions", ["cairn.runtime"])
    assert not found, "reading a definition needs no database:\n" + "\n".join(found)


def test_the_code_workflow_adapter_imports_nothing_from_the_runtime() -> None:
    found = imports_of("cairn.codeflow", ["cairn.runtime"])
    assert not found, "a code workflow is built at deploy, never run:\n" + "\n".join(found)


# --- the whole package ----------------------------------------------------------------------


def test_the_modules_are_named_as_installed() -> None:
    names = modules()
    for expected in ("cairn", "cairn.core.decider", "cairn.runtime.store", "cairn.cli.main"):
        assert expected in names


def test_no_import_cycle() -> None:
    names = modules()
    graph = {
        name: {found.module for found in module.imports if found.at_load and found.module in names}
        for name, module in names.items()
    }
    rings = cycles(graph)
    assert not rings, "modules that import each other when they load:\n" + "\n".join(
        " -> ".join(ring) for ring in rings
    )


def test_the_cycle_finder_reports_each_ring_once() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]


def test_type_checking_and_function_imports_do_not_load_with_the_module() -> None:
    tree = ast.parse(
        "import a\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
        "def f():\n    import d\n"
        "class K:\n    import e\n"
        "try:\n    import f\nexcept ImportError:\n    import g\n"
        "from . import h\n"
        "from .i import j\n"
    )
    found = {i.module: i.at_load for i in _imports(tree, "p.m", False, frozenset({"p.h"}))}
    assert found == {
        "a": True,
        "typing": True,
        "b": False,
        "c": True,
        "d": False,
        "e": True,
        "f": True,
        "g": True,
        "p.h": True,
        "p.i": True,
    }


def test_no_module_is_over_500_lines() -> None:
    over = [
        f"{module.file.relative_to(ROOT)}: {module.lines} lines"
        for module in modules().values()
        if module.lines > MAX_LINES
    ]
    assert not over, f"split these along a real seam (at most {MAX_LINES} lines):\n" + "\n".join(
        over
    )
