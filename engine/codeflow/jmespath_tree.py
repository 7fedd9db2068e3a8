"""The expression trees behind symbolic values, and their JMESPath text.

``codeflow.symbolic`` builds these trees as a code workflow reads fields, compares and calls
functions on data it does not have yet; this module renders them as the JMESPath a YAML
author would write, with the fewest parentheses the grammar allows, and refuses the trees
JMESPath cannot express (one expression reading both the context object and the data).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

from cairn.codeflow.sites import Site
from cairn.core.expressions import CONTEXT_PREFIX
from cairn.jsontypes import JSON

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(eq=False, slots=True, kw_only=True)
class Origin:
    """Where the data a value reads comes from: the input, a step's result, a Map item...

    ``key`` is the top-level field of the state data holding it (``charge``). ``kind`` is
    ``input`` (its fields are the input's), ``result``, ``item``/``index`` (of a Map),
    ``error`` (of a Catch), ``context`` (``$$.``), or ``relative``: the argument of a
    ``select=``, ``compensate=`` or element lambda, read relative to what it describes.
    Origins compare by identity: two results under one key are still two origins.
    """

    kind: str
    key: str | None = None
    label: str = ""
    site: Site | None = None
    scope: object = None
    discarded: bool = False
    owner: object = None


@dataclass(frozen=True, slots=True)
class Slice:
    start: int | None
    stop: int | None
    step: int | None


Step: TypeAlias = "str | int | Slice"


@dataclass(frozen=True, slots=True)
class Path:
    origin: Origin
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class Literal:
    value: JSON


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # "||" or "&&"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ExprRef:
    """``&expr``: an expression over each element, for sort_by, max_by, map..."""

    origin: Origin
    body: Node


@dataclass(frozen=True, slots=True)
class Filter:
    """``base[?condition]``: the elements of ``base`` for which the condition holds."""

    base: Node
    origin: Origin
    condition: Node


@dataclass(frozen=True, slots=True)
class Hash:
    items: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, slots=True)
class List:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Sub:
    """Steps applied to something that is not a plain path: ``sort(x)[0]``."""

    base: Node
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Raw:
    """A JMESPath expression written out by the user; read, not checked, by the builder."""

    text: str


Node: TypeAlias = (
    "Path | Literal | Compare | Logic | Not | Call | ExprRef | Filter | Hash | List | Sub | Raw"
)


def extend(base: Node, step: Step) -> Node:
    """``base`` read one step further (a field, an index or a slice)."""
    if isinstance(base, Path):
        return Path(base.origin, (*base.steps, step))
    if isinstance(base, Sub):
        return Sub(base.base, (*base.steps, step))
    return Sub(base, (step,))


def paths(tree: Node) -> Iterator[Path]:
    """Every path in a tree that reads the data (not those relative to an inner lambda)."""
    match tree:
        case Path():
            yield tree
        case Compare() | Logic():
            yield from paths(tree.left)
            yield from paths(tree.right)
        case Not():
            yield from paths(tree.operand)
        case Call():
            for arg in tree.args:
                yield from paths(arg)
        case ExprRef():
            yield from (p for p in paths(tree.body) if p.origin is not tree.origin)
        case Filter():
            yield from paths(tree.base)
            yield from (p for p in paths(tree.condition) if p.origin is not tree.origin)
        case Hash():
            for _, item in tree.items:
                yield from paths(item)
        case List():
            for item in tree.items:
                yield from paths(item)
        case Sub():
            yield from paths(tree.base)
        case Literal() | Raw():
            return


# --- rendering ---------------------------------------------------------------------------


class RenderError(Exception):
    """A tree that has no JMESPath form; the message says why."""


@dataclass(frozen=True, slots=True)
class _Text:
    text: str
    precedence: int
    context: bool
    data: bool


_PRIMARY = 9
_PRECEDENCE = {"||": 1, "&&": 2, "compare": 3, "!": 4}


def render(tree: Node, relative: Origin | None = None) -> str:
    """The JMESPath text of a tree; ``$$.`` in front when it reads the context object.

    ``relative`` is the origin read as ``@``: the argument of a ``select=`` or
    ``compensate=`` lambda, whose expressions are evaluated over what it describes.
    """
    out = _Renderer(relative).render(tree)
    if out.context and out.data:
        raise RenderError(
            "an expression cannot read both the context object (flow.context, or the whole "
            "input) and the state data; read them in separate values"
        )
    return CONTEXT_PREFIX + out.text if out.context else out.text


@dataclass(slots=True)
class _Renderer:
    relative: Origin | None
    elements: tuple[Origin, ...] = ()

    def render(self, tree: Node) -> _Text:
        match tree:
            case Path():
                return self.path(tree)
            case Literal():
                return _Text(literal(tree.value), _PRIMARY, False, False)
            case Compare():
                level = _PRECEDENCE["compare"]
                left, right = self.at(tree.left, level + 1), self.at(tree.right, level + 1)
                return _join(f"{left.text} {tree.op} {right.text}", level, left, right)
            case Logic():
                level = _PRECEDENCE[tree.op]
                left, right = self.at(tree.left, level), self.at(tree.right, level + 1)
                return _join(f"{left.text} {tree.op} {right.text}", level, left, right)
            case Not():
                inner = self.at(tree.operand, _PRECEDENCE["!"])
                return _join(f"!{inner.text}", _PRECEDENCE["!"], inner)
            case Call():
                args = [self.at(a, 0) for a in tree.args]
                return _join(f"{tree.name}({', '.join(a.text for a in args)})", _PRIMARY, *args)
            case ExprRef():
                inner = self.within(tree.origin).at(tree.body, 0)
                return _join(f"&{inner.text}", _PRIMARY, inner)
            case Filter():
                base = self.at(tree.base, _PRIMARY)
                condition = self.within(tree.origin).at(tree.condition, 0)
                return _join(f"{base.text}[?{condition.text}]", _PRIMARY, base, condition)
            case Hash():
                parts = [(key, self.at(item, 0)) for key, item in tree.items]
                text = "{" + ", ".join(f"{identifier(k)}: {r.text}" for k, r in parts) + "}"
                return _join(text, _PRIMARY, *(r for _, r in parts))
            case List():
                items = [self.at(item, 0) for item in tree.items]
                return _join("[" + ", ".join(r.text for r in items) + "]", _PRIMARY, *items)
            case Sub():
                base = self.at(tree.base, _PRIMARY)
                return _join(base.text + steps_text(tree.steps, first=False), _PRIMARY, base)
            case Raw():
                return _Text(tree.text, 0, False, True)
        raise AssertionError(f"unknown node {tree!r}")

    def within(self, element: Origin) -> _Renderer:
        return dataclasses.replace(self, elements=(*self.elements, element))

    def at(self, tree: Node, level: int) -> _Text:
        out = self.render(tree)
        if out.precedence < level:
            return _Text(f"({out.text})", _PRIMARY, out.context, out.data)
        return out

    def path(self, tree: Path) -> _Text:
        origin = tree.origin
        if self.elements and origin is self.elements[-1]:
            return _Text(steps_text(tree.steps, first=True) or "@", _PRIMARY, False, True)
        if origin.kind == "context" or whole_input(tree):
            steps = tree.steps if origin.kind == "context" else ("Execution", "Input")
            return _Text(steps_text(steps, first=True), _PRIMARY, True, False)
        if self.elements:
            raise RenderError(
                f"inside a lambda over {self.elements[-1].label}, read only that element "
                f"(and flow.context); {describe(tree)} is outside it"
            )
        if origin.kind == "relative" and origin is not self.relative:
            raise RenderError(f"{origin.label} is only defined inside the lambda that received it")
        if origin is self.relative:
            return _Text(steps_text(tree.steps, first=True) or "@", _PRIMARY, False, True)
        if self.relative is not None:
            raise RenderError(
                f"{describe(tree)} cannot be read here: inside a select= or compensate= "
                f"lambda, read only {self.relative.label}"
            )
        if origin.key:
            return _Text(
                identifier(origin.key) + steps_text(tree.steps, first=False), _PRIMARY, False, True
            )
        return _Text(steps_text(tree.steps, first=True) or "@", _PRIMARY, False, True)


def _join(text: str, level: int, *parts: _Text) -> _Text:
    return _Text(text, level, any(p.context for p in parts), any(p.data for p in parts))


def whole_input(tree: Path) -> bool:
    """Whether a path reads the input as a whole (``$$.Execution.Input``), not a field."""
    return tree.origin.kind == "input" and (not tree.steps or not isinstance(tree.steps[0], str))


def steps_text(steps: tuple[Step, ...], *, first: bool) -> str:
    """Fields, indexes and slices as JMESPath: ``.items[0].sku``, or ``items[0].sku`` first."""
    out = []
    for n, step in enumerate(steps):
        if isinstance(step, Slice):
            parts = ["" if p is None else str(p) for p in (step.start, step.stop, step.step)]
            out.append("[" + ":".join(parts if step.step is not None else parts[:2]) + "]")
        elif isinstance(step, int):
            out.append(f"[{step}]")
        else:
            out.append(("" if first and n == 0 else ".") + identifier(step))
    return "".join(out)


def identifier(name: str) -> str:
    """A field name as JMESPath reads it: bare when it can be, else quoted."""
    return name if _IDENTIFIER.match(name) else json.dumps(name, ensure_ascii=False)


def literal(value: JSON) -> str:
    """A JSON value as a JMESPath literal: ``'text'`` for strings, `` `json` `` otherwise."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False)
    return "`" + text.replace("`", "\\`") + "`"


def describe(tree: Node) -> str:
    """A tree as people recognise it in a message."""
    if isinstance(tree, Path):
        origin = tree.origin
        steps = steps_text(tree.steps, first=True)
        if origin.kind == "context":
            return f"`$$.{steps}`"
        if origin.kind == "input":
            return f"the input field `{steps}`" if tree.steps else "the input"
        return f"{origin.label}, field `{steps}`" if tree.steps else origin.label
    try:
        return f"`{render(tree)}`"
    except RenderError:
        return "this value"
