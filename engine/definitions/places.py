"""Where a path points inside a definition: its scope, its state, and how to name that place.

Both the schema errors and the semantic checks start from a path (``States.P.Branches[0]
.States.A.Next``). The first name the place in their messages ("in Task state 'A'"); the
second learn from the places the schema found wrong which states and scopes they must leave
alone, so that one mistake is reported once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cairn.core import names
from cairn.definitions.source import Path, dotted


@dataclass(frozen=True, slots=True)
class Place:
    """Where a path is: its innermost scope, the state it is in (None for a path to a scope
    object or a top-level field), the rest of the path inside that state, and the innermost
    state holding it at all (for a branch, the Parallel state)."""

    scope: Path
    state: Path | None
    rest: Path
    owner: Path | None


def place(path: Path) -> Place:
    """Find the scope and state ``path`` lies in."""
    scope: Path = ()
    owner: Path | None = None
    at = 0
    while len(path) > at + 1 and path[at] == "States":
        owner, inner = path[: at + 2], at + 2
        if len(path) > inner + 1 and path[inner] == "Branches" and isinstance(path[inner + 1], int):
            scope, at = path[: inner + 2], inner + 2
        elif len(path) > inner and path[inner] == "ItemProcessor":
            scope, at = path[: inner + 1], inner + 1
        else:
            return Place(scope, owner, path[inner:], owner)
    return Place(scope, None, path[at:], owner)


def within(body: Mapping[str, Any], path: Path) -> str:
    """Name the object at ``path`` for a message: "in Task state 'A'", "at the top level"."""
    owner = place(path).owner
    if owner is None:
        return "at the top level" if not path else f"in {dotted(path)}"
    node = _lookup(body, owner)
    kind = node.get("Type") if isinstance(node, dict) else None
    state = f"{kind} state {owner[-1]!r}" if kind in names.STATE_TYPES else f"state {owner[-1]!r}"
    rest = path[len(owner) :]
    return f"in {state}" if not rest else f"in {dotted(rest)} of {state}"


def _lookup(body: Any, path: Path) -> Any:
    """The value at ``path``, or None where the body (which may be invalid) has none."""
    node = body
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node
