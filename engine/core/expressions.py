"""JMESPath expressions and payload templates, compiled once when a definition is loaded.

Definitions are read many times and evaluated on every transition, so every expression is
parsed at load time; evaluation is then a tree walk with no parsing and no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions

from cairn.jsontypes import JSON

CONTEXT_PREFIX = "$$."


class _Functions(jmespath_functions.Functions):
    """JMESPath's functions plus arithmetic, which JMESPath lacks and counters need.

    In the spirit of the Amazon States Language's States.MathAdd; all pure.
    """

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_add(self, a: float, b: float) -> float:
        return a + b

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_subtract(self, a: float, b: float) -> float:
        return a - b

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_multiply(self, a: float, b: float) -> float:
        return a * b

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_divide(self, a: float, b: float) -> float:
        if b == 0:
            raise DataError("divide() by zero")
        return a / b

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_mod(self, a: float, b: float) -> float:
        if b == 0:
            raise DataError("mod() by zero")
        return a % b


_FUNCTIONS = _Functions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)
FUNCTIONS = frozenset(_FUNCTIONS.FUNCTION_TABLE)
"""The function names an expression may call."""


def _check_functions(node: Any) -> None:
    """Refuse unknown function names when an expression is compiled, not when it runs."""
    if node.get("type") == "function_expression" and node["value"] not in FUNCTIONS:
        raise jmespath_errors.UnknownFunctionError(f"unknown function {node['value']}()")
    for child in node.get("children", ()):
        if isinstance(child, dict):
            _check_functions(child)


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
        _check_functions(compiled.parsed)
        return cls(source, on_context, compiled)

    def evaluate(self, data: JSON, context: Mapping[str, JSON] | None = None) -> JSON:
        target = context if self.on_context else data
        try:
            found: JSON = self._compiled.search(target, options=_OPTIONS)
        except jmespath_errors.JMESPathError as exc:
            raise DataError(f"expression {self.source!r} failed: {exc}") from exc
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


def truthy(value: JSON) -> bool:
    """JMESPath truthiness: false, null, empty string, list and object are false; 0 is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True
