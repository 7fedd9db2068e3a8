"""Symbolic values: the data a code workflow reads at deploy time, before any exists.

A code workflow's function runs once, at deploy. Its input and the results of its steps
are ``Value`` objects standing for data an execution will hold. Reading a field, indexing,
comparing or combining Values builds an expression tree (``codeflow.jmespath_tree``) that
becomes the JMESPath a YAML author would write (``charge.charge_id``, ``fraud.score >= `80` ``).
Arithmetic becomes the engine's ``add``, ``multiply``... functions; anything that needs the
real data now (a Python ``if``, ``and``, ``len``, iteration, an f-string) is refused, naming
the user's file and line.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import NoReturn

from cairn.codeflow import jmespath_tree
from cairn.codeflow.jmespath_tree import Node, Origin
from cairn.codeflow.sites import internal, refuse
from cairn.core import expressions
from cairn.jsontypes import JSON

_HOW_TO_BRANCH = (
    "branch with `with flow.if_(condition):`, and combine conditions with & | ~ "
    "(JMESPath && || !) instead of and, or, not"
)


class Value:
    """Data an execution will hold, known at deploy time only by where it will be.

    Attribute access and indexing read into it (``order.items[0].sku``, ``items[1:]``),
    comparisons and ``&``, ``|``, ``~`` build conditions, ``+ - * / // %`` compute, and
    ``fn.NAME(...)`` calls JMESPath functions. Write ``value["name"]`` for a field whose
    name is not a Python identifier or starts with an underscore.
    """

    __slots__ = ("_node",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, node: Node) -> None:
        self._node = node

    # reading into the value
    def __getattr__(self, name: str) -> Value:
        if name.startswith("_"):
            raise AttributeError(name)
        return Value(jmespath_tree.extend(self._node, name))

    def __getitem__(self, key: str | int | slice) -> Value:
        if isinstance(key, slice):
            bounds = (key.start, key.stop, key.step)
            if not all(
                b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in bounds
            ):
                refuse("a slice of a Value takes whole numbers, like items[1:] or items[::2]")
            return Value(jmespath_tree.extend(self._node, jmespath_tree.Slice(*bounds)))
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            refuse(f"index a Value with a field name or a whole number, not {key!r}")
        return Value(jmespath_tree.extend(self._node, key))

    # conditions
    def __eq__(self, other: object) -> Value:  # type: ignore[override]
        return Value(jmespath_tree.Compare("==", self._node, node_of(other)))

    def __ne__(self, other: object) -> Value:  # type: ignore[override]
        return Value(jmespath_tree.Compare("!=", self._node, node_of(other)))

    def __lt__(self, other: object) -> Value:
        return Value(jmespath_tree.Compare("<", self._node, node_of(other)))

    def __le__(self, other: object) -> Value:
        return Value(jmespath_tree.Compare("<=", self._node, node_of(other)))

    def __gt__(self, other: object) -> Value:
        return Value(jmespath_tree.Compare(">", self._node, node_of(other)))

    def __ge__(self, other: object) -> Value:
        return Value(jmespath_tree.Compare(">=", self._node, node_of(other)))

    def __or__(self, other: object) -> Value:
        return Value(jmespath_tree.Logic("||", self._node, node_of(other)))

    def __ror__(self, other: object) -> Value:
        return Value(jmespath_tree.Logic("||", node_of(other), self._node))

    def __and__(self, other: object) -> Value:
        return Value(jmespath_tree.Logic("&&", self._node, node_of(other)))

    def __rand__(self, other: object) -> Value:
        return Value(jmespath_tree.Logic("&&", node_of(other), self._node))

    def __invert__(self) -> Value:
        return Value(jmespath_tree.Not(self._node))

    # what would need the data now
    def __bool__(self) -> bool:
        refuse(
            f"{self._describe()} has no truth value at deploy time: the function runs once, "
            f"before any execution holds data; {_HOW_TO_BRANCH}"
        )

    def __iter__(self) -> Iterator[Value]:
        refuse(
            f"cannot loop over {self._describe()} at deploy time; "
            "run steps for each element with flow.map(items, function)"
        )

    def __len__(self) -> int:
        refuse(f"len() of {self._describe()} is unknown at deploy time; use fn.length(value)")

    def __contains__(self, item: object) -> bool:
        refuse(f"`in` needs the data of {self._describe()}; use fn.contains(value, element)")

    def __str__(self) -> str:
        refuse(
            f"{self._describe()} cannot become text at deploy time (no f-strings or str()); "
            "pass it as a parameter, or use fn.join / fn.to_string"
        )

    def __format__(self, spec: str) -> str:
        return self.__str__()

    def __index__(self) -> int:
        refuse(f"{self._describe()} is not a number at deploy time")

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        refuse(
            f"{self._describe()} is data, not a function; "
            "to call a JMESPath function write fn.NAME(value, ...)"
        )

    def __repr__(self) -> str:
        return f"<Value {self._describe()}>"

    def _describe(self) -> str:
        return jmespath_tree.describe(self._node)

    # arithmetic, with the engine's functions (JMESPath itself has none)
    def __add__(self, other: object) -> Value:
        return _arithmetic("add", self, other)

    def __radd__(self, other: object) -> Value:
        return _arithmetic("add", other, self)

    def __sub__(self, other: object) -> Value:
        return _arithmetic("subtract", self, other)

    def __rsub__(self, other: object) -> Value:
        return _arithmetic("subtract", other, self)

    def __mul__(self, other: object) -> Value:
        return _arithmetic("multiply", self, other)

    def __rmul__(self, other: object) -> Value:
        return _arithmetic("multiply", other, self)

    def __truediv__(self, other: object) -> Value:
        return _arithmetic("divide", self, other)

    def __rtruediv__(self, other: object) -> Value:
        return _arithmetic("divide", other, self)

    def __floordiv__(self, other: object) -> Value:
        return Value(jmespath_tree.Call("floor", (node(_arithmetic("divide", self, other)),)))

    def __rfloordiv__(self, other: object) -> Value:
        return Value(jmespath_tree.Call("floor", (node(_arithmetic("divide", other, self)),)))

    def __mod__(self, other: object) -> Value:
        return _arithmetic("mod", self, other)

    def __rmod__(self, other: object) -> Value:
        return _arithmetic("mod", other, self)

    def __neg__(self) -> Value:
        return _arithmetic("multiply", self, -1)

    def __pos__(self) -> Value:
        return self

    def __abs__(self) -> Value:
        return Value(jmespath_tree.Call("abs", (self._node,)))

    def __pow__(self, other: object) -> NoReturn:
        refuse(f"there is no power function for {self._describe()}; use multiply, or an activity")

    __rpow__ = __pow__


def _arithmetic(function: str, left: object, right: object) -> Value:
    for operand in (left, right):
        if isinstance(operand, (str, bool)) or not isinstance(operand, (Value, int, float)):
            refuse(
                f"arithmetic takes numbers, not {operand!r}; join text with "
                "fn.join('', [...]) and compute anything else in an activity"
            )
    return Value(jmespath_tree.Call(function, (node_of(left), node_of(right))))


def node(value: Value) -> Node:
    """The expression tree behind a Value."""
    return value._node


def root(origin: Origin) -> Value:
    """A Value standing for all the data of ``origin``."""
    return Value(jmespath_tree.Path(origin))


def contains_value(value: object) -> bool:
    """Whether a Python value holds a Value anywhere inside it."""
    if isinstance(value, Value):
        return True
    if isinstance(value, Mapping):
        return any(contains_value(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_value(v) for v in value)
    return False


def plain(value: object) -> JSON:
    """A Python literal as JSON (tuples become lists); refuses what JSON cannot hold."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            refuse(f"{value} is not a JSON number")
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    refuse(
        f"a {type(value).__name__} is not JSON: pass strings, numbers, booleans, None, "
        "lists and dicts (convert it first, e.g. with .isoformat())"
    )


def _key(key: object) -> str:
    if not isinstance(key, str):
        refuse(f"the key {key!r} is not a string; JSON objects have string keys")
    return str(key)


def node_of(value: object) -> Node:
    """The tree of a Value, or of a Python value holding Values, or a literal."""
    if isinstance(value, Value):
        return value._node
    if isinstance(value, Mapping) and contains_value(value):
        return jmespath_tree.Hash(tuple((_key(k), node_of(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)) and contains_value(value):
        return jmespath_tree.List(tuple(node_of(item) for item in value))
    return jmespath_tree.Literal(plain(value))


# --- JMESPath functions ------------------------------------------------------------------

FUNCTIONS = expressions.FUNCTIONS


class Functions:
    """``fn.NAME(args)`` calls the JMESPath function NAME; ``fn.filter`` keeps elements.

    A lambda argument is an expression over each element (``&expr``):
    ``fn.sort_by(order.items, lambda item: item.price)`` is ``sort_by(items, &price)``.
    """

    def __getattr__(self, name: str) -> Callable[..., Value]:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name, [*sorted(FUNCTIONS), "filter"], n=1)
            hint = f" (did you mean fn.{close[0]}?)" if close else ""
            raise AttributeError(f"JMESPath has no function {name!r}{hint}")

        def call(*args: object) -> Value:
            return Value(jmespath_tree.Call(name, tuple(_argument(a) for a in args)))

        call.__name__ = name
        return call

    def filter(self, items: object, condition: Callable[[Value], object]) -> Value:
        """The elements of ``items`` for which ``condition(element)`` holds: ``items[?...]``."""
        origin = Origin(kind="relative", label="the element")
        return Value(jmespath_tree.Filter(node_of(items), origin, node_of(condition(root(origin)))))


def _argument(value: object) -> Node:
    if callable(value) and not isinstance(value, Value):
        origin = Origin(kind="relative", label="the element")
        return jmespath_tree.ExprRef(origin, node_of(value(root(origin))))
    return node_of(value)


fn = Functions()
"""JMESPath functions over Values: ``fn.length(order.items)``, ``fn.sum(lines[:].amount)``."""

internal(__file__)
