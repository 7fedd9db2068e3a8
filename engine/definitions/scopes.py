"""A definition's scopes and the transitions between their states, as a graph to search.

A scope is a StartAt with its States: the top level, each Parallel branch, each Map item
processor. Transitions never leave their scope, so the semantic checks test targets,
reachability and loops scope by scope, on the graph this module reads from the plain body
(which may be invalid elsewhere: whatever is not the expected shape is skipped).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cairn.core import names
from cairn.definitions.source import Path


@dataclass(frozen=True, slots=True)
class Scope:
    """A StartAt and its States: the top level, a Parallel branch or a Map ItemProcessor."""

    path: Path
    start: Any
    names: dict[str, Any] | None  # the States as written (None when not a non-empty mapping)
    states: dict[str, dict[str, Any]]
    on_cancel: Any = None  # the top level's OnCancel: another way in

    def state_path(self, name: str) -> Path:
        """The path of the state ``name`` of this scope."""
        return (*self.path, "States", name)


def scopes(node: Mapping[str, Any], path: Path = ()) -> Iterator[Scope]:
    """Every scope of a definition, each followed by the scopes nested in its states."""
    states = node.get("States")
    named = states if isinstance(states, dict) and states else None
    states = states if isinstance(states, dict) else {}
    objects = {name: state for name, state in states.items() if isinstance(state, dict)}
    yield Scope(path, node.get("StartAt"), named, objects, None if path else node.get("OnCancel"))
    for name, state in objects.items():
        inner: list[tuple[Path, Any]] = []
        if state.get("Type") == "Parallel" and isinstance(state.get("Branches"), list):
            inner = [
                ((*path, "States", name, "Branches", i), b) for i, b in enumerate(state["Branches"])
            ]
        elif state.get("Type") == "Map":
            inner = [((*path, "States", name, "ItemProcessor"), state.get("ItemProcessor"))]
        for inner_path, scope in inner:
            if isinstance(scope, dict):
                yield from scopes(scope, inner_path)


def edges(state: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    """The transitions of a state: (path inside the state, target name)."""
    for key in ("Next", "Default"):
        if isinstance(state.get(key), str):
            yield (key,), state[key]
    for key in ("Choices", "Catch"):
        rules = state.get(key)
        for index, rule in enumerate(rules if isinstance(rules, list) else ()):
            if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
                yield (key, index, "Next"), rule["Next"]


def ends(state: Mapping[str, Any]) -> bool:
    """Whether an execution can end at ``state``: a terminal type, or ``End: true``."""
    return state.get("Type") in names.TERMINAL or state.get("End") is True


def closure(starts: list[Any], successors: Mapping[str, list[str]]) -> set[str]:
    """The names reachable from ``starts`` (included) along ``successors``."""
    seen: set[str] = set()
    todo = [s for s in starts if s in successors]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(t for t in successors[name] if t not in seen)
    return seen


def loops(nodes: list[str], successors: Mapping[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of ``nodes`` that hold a cycle (Tarjan, iterative)."""
    members = set(nodes)
    order = {name: i for i, name in enumerate(nodes)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(successors[root]))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in members:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    at = stack.index(node)
                    component = stack[at:]
                    del stack[at:]
                    on_stack.difference_update(component)
                    if len(component) > 1 or node in successors[node]:
                        found.append(sorted(component, key=order.__getitem__))
    return found
