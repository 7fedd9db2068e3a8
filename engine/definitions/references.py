"""What an InputSchema may refer to: only places within itself.

A ``$ref`` to anything else (``http://...``, ``file:///...``, another document) would be
fetched when an execution starts: a request to any host, or a file of the machine read and
echoed in the error, at every start.  The run-time validator retrieves nothing
(``runtime.payloads``); this check tells the author at ``cairn validate``, with the reason,
instead of at the first start.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

from cairn.definitions import messages
from cairn.definitions.messages import Issue
from cairn.definitions.source import Path

REFERENCES = ("$ref", "$dynamicRef")
SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
"""Keywords whose value maps names (never references) to schemas."""
_INDEX = re.compile("0|[1-9][0-9]*")
"""An array index in a JSON Pointer: ASCII digits, no leading zero."""
DATA = frozenset({"const", "enum", "default", "examples"})
"""Keywords whose value is instance data, never a schema."""


def issues(schema: dict[str, Any]) -> list[Issue]:
    """A reference out of the schema, or to a place within it that does not exist."""
    found = []
    for path, reference, resource in _references(schema, ("InputSchema",), schema):
        if not reference.startswith("#") or (reference[1:] and reference[1] != "/"):
            found.append(
                Issue(
                    path=path,
                    message=f"InputSchema {path[-1]} {messages.show(reference)} is refused: "
                    "only references within the InputSchema itself ('#/...') are allowed, "
                    "as nothing is fetched when an execution starts",
                )
            )
        elif not _resolves(resource, reference[1:]):
            found.append(
                Issue(
                    path=path,
                    message=f"InputSchema {path[-1]} {messages.show(reference)} points to "
                    "nothing within the InputSchema",
                )
            )
    return found


def _references(node: object, path: Path, resource: object) -> Iterator[tuple[Path, str, object]]:
    """Every reference of the schema ``node``, with the resource its fragment is read in.

    Every object outside instance data is walked as a schema, known keyword or not: a
    pointer may make any part of the document a schema, and what it reaches is checked too.
    """
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _references(item, (*path, index), resource)
        return
    if not isinstance(node, dict):
        return
    # A fragment is read in the nearest enclosing schema with an $id (JSON Schema 2020-12).
    if isinstance(node.get("$id"), str):
        resource = node
    for key, value in node.items():
        if key in REFERENCES and isinstance(value, str):
            yield (*path, key), value, resource
        elif key in SCHEMA_MAPS and isinstance(value, dict):
            for name, schema in value.items():
                yield from _references(schema, (*path, key, name), resource)
        elif key not in DATA:
            yield from _references(value, (*path, key), resource)


def _resolves(resource: object, pointer: str) -> bool:
    """Whether the JSON Pointer (RFC 6901, as a URI fragment) names a place in ``resource``."""
    here = resource
    for token in urllib.parse.unquote(pointer).split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(here, dict) and token in here:
            here = here[token]
        elif isinstance(here, list) and _INDEX.fullmatch(token) and int(token) < len(here):
            here = here[int(token)]
        else:
            return False
    return True
