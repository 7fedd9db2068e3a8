"""How the reader words a problem, in one place for every stage that reports one.

Authors read these lines, not validator output, so the schema errors and the semantic checks
must suggest, quote and name things the same way: "did you mean" from the same matcher, a
value shown the same way and cut at the same length, a field named by the same rule. An
``Issue`` is a problem found in a body before it has a position; the entry points give it one
from the text's positions, or none for a body built in Python.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection
from dataclasses import dataclass

from cairn import errors
from cairn.core import expressions
from cairn.definitions import source
from cairn.definitions.source import Path, Position, dotted


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """A problem before it has a position: ``at`` is where to point, ``path`` what to name.

    ``missing`` names a required field reported absent, ``suggests`` the field an unknown
    key looks like a misspelling of, so that one typo is not reported twice.
    """

    path: Path
    message: str
    at: Path | None = None
    at_key: bool = False
    missing: str | None = None
    suggests: str | None = None

    def problem(self, file: str, positions: source.Positions) -> errors.Problem:
        """The problem as reported: at the key or value it points to, named by its path."""
        at = self.path if self.at is None else self.at
        line, column = positions.key(at) if self.at_key else positions.value(at)
        return errors.Problem(
            file=file, line=line, column=column, message=self.message, path=dotted(self.path)
        )


def suggest(word: str, choices: Collection[str]) -> str | None:
    """The choice an author most likely meant by ``word``: the same but for case, or close."""
    by_case = {c.lower(): c for c in choices}
    if word.lower() in by_case:
        return by_case[word.lower()]
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(suggestion: str | None) -> str:
    """The hint that ends a message when there is a suggestion, else nothing."""
    return f" (did you mean {suggestion!r}?)" if suggestion else ""


ARTICLES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}
"""JSON Schema type names with their article, as a message says them."""


def kind(value: object) -> str:
    """A JSON type name with its article, as in 'must be an integer, not a string'."""
    name = _json_type(value)
    return ARTICLES.get(name, f"a {name}")


def show(value: object) -> str:
    """A value as the author wrote it, shortened so that one problem stays one line."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return shorten(text, 60)


def shorten(text: str, limit: int = 160) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut, so one problem stays one line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field(path: Path) -> str:
    """The field a path names, with trailing indexes: ``ErrorEquals[1]``."""
    for end in range(len(path), 0, -1):
        if isinstance(path[end - 1], str):
            return str(path[end - 1]) + dotted(path[end:])
    return "the definition" if not path else dotted(path)


def jsonpath_hint(value: object) -> str:
    """Step Functions authors write JSONPath (``$.order``); Cairn's paths are JMESPath."""
    if not isinstance(value, str) or value.startswith(expressions.CONTEXT_PREFIX):
        return ""
    if value == "$":
        return " (Cairn uses JMESPath: write '@' for the whole input)"
    if value.startswith("$."):
        return f" (Cairn uses JMESPath: write {value[2:]!r})"
    return ""


def duplicate_key(key: str, first: Position, again: Position) -> str:
    """A key written twice in one mapping, pointing at both places."""
    if first[0] == again[0]:
        return (
            f"duplicate key {key!r}: twice on line {again[0]}, at columns {first[1]} and {again[1]}"
        )
    return f"duplicate key {key!r}: first on line {first[0]}, again on line {again[0]}"


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__
