"""Translate what the JSON Schema finds wrong into the author's words, one issue per mistake.

``schema`` loads the schema that states a definition's structure; jsonschema's own messages
speak of schemas ("'Nxt' does not match any of the regexes", "is not valid under any of the
given schemas"). Here each error becomes a line a YAML author can act on: the field and the
state it is in, what it must be, and what it probably should have been.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from cairn.definitions import messages, places, schema
from cairn.definitions.messages import Issue
from cairn.definitions.source import Path

# The schema's patterns, said as a rule an author can follow.
_PATTERNS = {
    "^[A-Za-z0-9_.-]+$": "may only hold letters, digits, '_', '.' and '-'",
    "^[^/\\[\\]]{1,80}$": "must be a state name of 1 to 80 characters without '/', '[' or ']'",
    "^[A-Za-z0-9_.-]+(@[0-9]+)?$": "must be 'name' or 'name@version' (like 'invoice@3')",
    "^(@|[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*)$": (
        "must be a dotted field path (like 'charge' or 'order.receipt'), '@' or null"
    ),
}


def issues(body: dict[str, Any]) -> list[Issue]:
    """Every schema error of ``body``, worded for its author."""
    found: list[Issue] = []
    try:
        for error in schema.validator().iter_errors(body):
            found.extend(_translate(error, body))
    except RecursionError:
        found.append(Issue(path=(), message="the definition is nested too deeply to check"))
    return found


def _translate(error: jsonschema.ValidationError, body: dict[str, Any]) -> list[Issue]:
    path: Path = tuple(error.absolute_path)
    keyword = error.validator
    if keyword == "additionalProperties":
        return _unknown_fields(error, path, body)
    if keyword == "required":
        return _missing_fields(error, path, body)
    if "propertyNames" in error.schema_path:
        return [_bad_key(error, path)]
    if keyword == "not":
        return [_excluded(error, path, body)]
    return [Issue(path=path, message=_value_message(error, path))]


def _unknown_fields(
    error: jsonschema.ValidationError, path: Path, body: dict[str, Any]
) -> list[Issue]:
    node: Any = error.schema
    instance: Any = error.instance
    allowed = list(node.get("properties", {}))
    patterns = list(node.get("patternProperties", {}))
    where = places.within(body, path)
    found = []
    for key in instance:
        if key in allowed or any(re.search(p, key) for p in patterns):
            continue
        if key in schema.field_names():
            message, suggestion = f"{key!r} is not allowed {where}", None
        else:
            suggestion = messages.suggest(key, allowed)
            message = f"unknown field {key!r} {where}{messages.did_you_mean(suggestion)}"
        found.append(Issue(path=(*path, key), message=message, at_key=True, suggests=suggestion))
    return found


def _missing_fields(
    error: jsonschema.ValidationError, path: Path, body: dict[str, Any]
) -> list[Issue]:
    where = "" if not path else f" {places.within(body, path)}"
    instance: Any = error.instance
    required: Any = error.validator_value
    return [
        Issue(
            path=(*path, key),
            at=path,
            at_key=True,
            message=f"missing required field {key!r}{where}",
            missing=key,
        )
        for key in required
        if key not in instance
    ]


def _bad_key(error: jsonschema.ValidationError, path: Path) -> Issue:
    name: Any = error.instance
    pattern: Any = error.validator_value
    if path and path[-1] == "States":
        message = (
            f"state name {messages.show(name)} must be 1 to 80 characters without '/', '[' or ']'"
        )
    else:
        label = "query name" if path and path[-1] == "Queries" else "name"
        message = f"{label} {messages.show(name)} {_PATTERNS.get(pattern, 'is not allowed')}"
    return Issue(path=(*path, name), message=message, at_key=True)


def _excluded(error: jsonschema.ValidationError, path: Path, body: dict[str, Any]) -> Issue:
    """A ``not: {required: [A, B]}``: in this format, fields that exclude each other."""
    banned: Any = error.validator_value
    fields = banned.get("required") if isinstance(banned, dict) else None
    if not fields or len(banned) != 1:
        return Issue(path=path, message=f"{messages.field(path)!r}: {error.message}")
    names = " and ".join(repr(f) for f in fields)
    message = f"{names} cannot both be given {places.within(body, path)}; keep one"
    return Issue(path=(*path, fields[-1]), message=message, at_key=True)


def _value_message(error: jsonschema.ValidationError, path: Path) -> str:
    name = f"{messages.field(path)!r}"
    value: Any = error.instance
    expected: Any = error.validator_value
    match error.validator:
        case "type":
            kinds = [expected] if isinstance(expected, str) else list(expected)
            wanted = " or ".join(messages.ARTICLES.get(k, k) for k in kinds)
            return f"{name} must be {wanted}, not {messages.kind(value)}"
        case "enum":
            choices = [str(option) for option in expected]
            options = ", ".join(choices)
            label = "Type" if path and path[-1] == "Type" else name
            suggestion = messages.suggest(value, choices) if isinstance(value, str) else None
            hint = messages.did_you_mean(suggestion)
            return f"{label} must be one of {options}, not {messages.show(value)}{hint}"
        case "const":
            return f"{name} must be {json.dumps(expected)}, not {messages.show(value)}"
        case "pattern":
            rule = _PATTERNS.get(expected, f"must match the pattern {expected}")
            return f"{name} {rule}, not {messages.show(value)}{messages.jsonpath_hint(value)}"
        case "minProperties" | "minItems" | "minLength":
            return f"{name} must not be empty"
        case "uniqueItems":
            return f"{name} lists the same item twice"
        case "minimum":
            return f"{name} must be at least {expected}, not {messages.show(value)}"
        case "exclusiveMinimum":
            return f"{name} must be greater than {expected}, not {messages.show(value)}"
        case "maximum":
            # The bounds are what runs (cairn.core.limits); past them a run could not go on.
            return f"{name} must be at most {expected:,}, not {messages.show(value)}"
        case "format":
            return f"{name} must be a valid {expected}, not {messages.show(value)}"
    return f"{name}: {error.message}"
