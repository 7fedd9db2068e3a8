"""The client and the worker are two sides on one write path: a worker holds a dispatcher and
never the client, and nothing in the runtime reaches up to the client.

Read from the source with ``ast`` (nothing is imported), as ``test_architecture`` does.
"""

from __future__ import annotations

import ast
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "engine" / "runtime"


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_nothing_in_the_runtime_imports_the_client() -> None:
    users = sorted(
        path.name
        for path in RUNTIME.glob("*.py")
        if any(m == "cairn.client" or m.startswith("cairn.client.") for m in imports_of(path))
    )
    assert users == []


def test_the_worker_reaches_the_engine_through_its_dispatcher_only() -> None:
    engine = {m for m in imports_of(RUNTIME / "worker.py") if m.startswith("cairn.runtime.")}
    assert "cairn.runtime.dispatcher" in engine
    assert not engine & {"cairn.runtime.writer", "cairn.runtime.store", "cairn.runtime.tables"}
