"""JMESPath expressions and payload templates, compiled once when a definition is loaded.

Definitions are read many times and evaluated on every transition, so every expression is
parsed at load time; evaluation is then a tree walk with no parsing and no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions

from cairn.jsontypes import JSON

CONTEXT_PREFIX = "$$."
INTEGER_RANGE = (-(2**63), 2**63 - 1)
"""The integers a computed value may hold: what every store and JSON reader keeps exactly."""


def _number(function: str, value: float) -> float:
    """A number a function computed, refused when it could not be stored as JSON.

    Python's integers have no bound and its floats overflow to infinity without a word;
    the store would refuse the one and write the other as null, past the decision.
    """
    if isinstance(value, int) and not INTEGER_RANGE[0] <= value <= INTEGER_RANGE[1]:
        raise DataError(f"{function}() gives an integer beyond 64 bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"{function}() gives a number beyond the range of JSON numbers")
    return value


class _Functions(jmespath_functions.Functions):
    """JMESPath's functions plus arithmetic, which JMESPath lacks and counters need.

    In the spirit of the Amazon States Language's States.MathAdd; all pure.  Every
    function that makes a number checks it (``_number``).
    """

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_add(self, a: float, b: float) -> float:
        return _number("add", a + b)

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_subtract(self, a: float, b: float) -> float:
        return _number("subtract", a - b)

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_multiply(self, a: float, b: float) -> float:
        return _number("multiply", a * b)

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_divide(self, a: float, b: float) -> float:
        if b == 0:
            raise DataError("divide() by zero")
        try:
            return _number("divide", a / b)
        except OverflowError as exc:  # int / int beyond a float
            raise DataError("divide() gives a number beyond the range of JSON numbers") from exc

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_mod(self, a: float, b: float) -> float:
        if b == 0:
            raise DataError("mod() by zero")
        return _number("mod", a % b)

    # JMESPath's own functions that make numbers, checked the same way.
    @jmespath_functions.signature({"types": ["array-number"]})
    def _func_sum(self, values: list[float]) -> float:
        return _number("sum", super()._func_sum(values))

    @jmespath_functions.signature({"types": ["array-number"]})
    def _func_avg(self, values: list[float]) -> float | None:
        return _number("avg", super()._func_avg(values)) if values else None

    @jmespath_functions.signature({"types": ["number"]})
    def _func_ceil(self, value: float) -> float:
        return _number("ceil", super()._func_ceil(value))

    @jmespath_functions.signature({"types": ["number"]})
    def _func_floor(self, value: float) -> float:
        return _number("floor", super()._func_floor(value))

    @jmespath_functions.signature({"types": ["number"]})
    def _func_abs(self, value: float) -> float:
        return _number("abs", super()._func_abs(value))

    @jmespath_functions.signature({"types": []})
    def _func_to_number(self, value: JSON) -> float | None:
        found = super()._func_to_number(value)
        return None if found is None else _number("to_number", found)

    # JMESPath checks the type of the first argument of a variadic function only.
    @jmespath_functions.signature({"types": ["object"], "variadic": True})
    def _func_merge(self, *objects: JSON) -> JSON:
        for position, value in enumerate(objects, 1):
            if not isinstance(value, dict):
                raise DataError(f"merge() takes objects; argument {position} is {kind(value)}")
        merged: JSON = super()._func_merge(*objects)
        return merged


_FUNCTIONS = _Functions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)
FUNCTIONS = frozenset(_FUNCTIONS.FUNCTION_TABLE)
"""The function names an expression may call."""


def _check_tree(node: Any) -> None:
    """Refuse unknown function names, and literals holding numbers no store could hold,
    when an expression is compiled rather than when it runs."""
    if node.get("type") == "function_expression" and node["value"] not in FUNCTIONS:
        raise jmespath_errors.UnknownFunctionError(f"unknown function {node['value']}()")
    if node.get("type") == "literal" and (why := _unstorable(node["value"])) is not None:
        raise jmespath_errors.JMESPathError(f"a literal holds {why}")
    for child in node.get("children", ()):
        if isinstance(child, dict):
            _check_tree(child)


def _unstorable(value: Any) -> str | None:
    """What in a literal's value no store could hold, if anything."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not INTEGER_RANGE[0] <= value <= INTEGER_RANGE[1]:
        return "an integer beyond 64 bits"
    if isinstance(value, float) and not math.isfinite(value):
        return "a number beyond the range of JSON numbers"
    parts = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next((why for part in parts if (why := _unstorable(part)) is not None), None)


class DataError(Exception):
    """A definition's expression could not be applied to the data (becomes States.Runtime)."""


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled JMESPath expression over the data, or over the context object (``$$.``)."""

    source: str
    on_context: bool
    _compiled: Any = field(repr=False, compare=False)

    @classmethod
    def compile(cls, source: str) -> Expression:
        on_context = source.startswith(CONTEXT_PREFIX)
        text = source[len(CONTEXT_PREFIX) :] if on_context else source
        compiled = jmespath.compile(text)
        _check_tree(compiled.parsed)
        return cls(source, on_context, compiled)

    def evaluate(self, data: JSON, context: Mapping[str, JSON] | None = None) -> JSON:
        target = context if self.on_context else data
        try:
            found: JSON = self._compiled.search(target, options=_OPTIONS)
        except (DataError, jmespath_errors.JMESPathError, ArithmeticError) as exc:
            raise DataError(f"expression {self.source!r} failed: {exc}") from exc
        except Exception as exc:
            # jmespath lets Python's own errors out where its checks stop: `<` between a
            # string and a number, min_by/max_by over keys of mixed types.  They are the
            # data's, like any other, and must fail the state rather than the interpreter.
            cause = f"{type(exc).__name__}: {exc}"
            raise DataError(f"expression {self.source!r} failed: {cause}") from exc
        return found


@dataclass(frozen=True, slots=True)
class Template:
    """A payload template: keys ending in ``.$`` take the value of their expression."""

    literal: Mapping[str, JSON]
    computed: tuple[tuple[str, Expression | Template | TemplateList], ...]

    @classmethod
    def compile(cls, body: Mapping[str, JSON]) -> Template:
        literal: dict[str, JSON] = {}
        computed: list[tuple[str, Expression | Template | TemplateList]] = []
        for key, value in body.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    raise TypeError(f"{key!r} needs an expression, not {value!r}")
                computed.append((key[:-2], Expression.compile(value)))
            elif isinstance(value, dict):
                computed.append((key, Template.compile(value)))
            elif isinstance(value, list) and _has_template(value):
                computed.append((key, TemplateList.compile(value)))
            else:
                literal[key] = value
        return cls(literal, tuple(computed))

    def evaluate(self, data: JSON, context: Mapping[str, JSON] | None = None) -> JSON:
        out = dict(self.literal)
        for key, part in self.computed:
            out[key] = part.evaluate(data, context)
        return out


@dataclass(frozen=True, slots=True)
class TemplateList:
    """A list inside a template: objects in it are templates, other values literal."""

    items: tuple[JSON | Template, ...]

    @classmethod
    def compile(cls, body: list[JSON]) -> TemplateList:
        return cls(tuple(Template.compile(v) if isinstance(v, dict) else v for v in body))

    def evaluate(self, data: JSON, context: Mapping[str, JSON] | None = None) -> JSON:
        return [v.evaluate(data, context) if isinstance(v, Template) else v for v in self.items]


def _has_template(values: list[JSON]) -> bool:
    return any(isinstance(v, dict) for v in values)


def kind(value: JSON) -> str:
    """A value's JSON type, with its article, for messages about data that does not fit."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def truthy(value: JSON) -> bool:
    """JMESPath truthiness: false, null, empty string, list and object are false; 0 is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True
