"""The JSON Schema of the definition format, read from where Cairn is installed.

``schemas/definition.schema.json`` is the single source of truth for the structure of a
definition: editors read it through ``# yaml-language-server: $schema=...`` and the engine
checks every definition against it before the semantic checks. It ships as package data of
``cairn.schemas``, so a checkout, an editable install and a wheel all read the same file.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema

SCHEMA_FILE = "definition.schema.json"


def schema() -> dict[str, Any]:
    """Return a fresh copy of the definition schema, parsed from the package data."""
    text = resources.files("cairn.schemas").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    parsed: dict[str, Any] = json.loads(text)
    return parsed


@functools.cache
def validator() -> jsonschema.Draft202012Validator:
    """Return the shared validator of definitions; formats are left to the semantic checks."""
    return jsonschema.Draft202012Validator(schema(), format_checker=None)


@functools.cache
def field_names() -> frozenset[str]:
    """Every field name the format knows, to tell a misplaced field from an unknown one."""
    found: set[str] = set()
    stack: list[Any] = [schema()]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.update(node.get("properties", {}))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(found)
