"""Load and check a workflow definition, reporting every mistake with its file, line and column.

A definition goes through three stages: a reader (``yaml_reader`` or ``json_reader``) turns
the text into plain JSON with positions, the JSON Schema checks its structure
(``schema_errors``), and the semantic checks (``semantics``) test what a schema cannot state.
This module runs them in order and gathers what they find, so that every problem is reported
at once, one line each, at the place the author wrote it; what passes is a ``Document``.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cairn import errors
from cairn.definitions import json_reader, messages, schema_errors, semantics, source, yaml_reader
from cairn.definitions.messages import Issue


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """A valid definition: its plain JSON body, the text it came from, and its identity."""

    body: dict[str, Any]
    source: str
    file: str
    sha256: str

    @property
    def name(self) -> str:
        """The workflow name (``Name``)."""
        return str(self.body["Name"])

    @property
    def version(self) -> int:
        """The definition version (``Version``)."""
        return int(self.body["Version"])


def load(path: str | os.PathLike[str], activities: Collection[str] | None = None) -> Document:
    """Load and check the definition file ``path`` (``.json`` is strict JSON, else YAML)."""
    file = os.fspath(path)
    text = source.read_path(file)
    return loads(text, file, json=file.lower().endswith(".json"), activities=activities)


def loads(
    text: str | bytes,
    file: str = "<string>",
    *,
    json: bool = False,
    activities: Collection[str] | None = None,
) -> Document:
    """Parse and check definition text; raise DefinitionError listing every problem."""
    text = source.decode(text, file) if isinstance(text, bytes) else source.check_text(text, file)
    if not text.strip():
        raise source.refusal(file, source.EMPTY, 1, 1)
    tree = json_reader.parse(text, file) if json else yaml_reader.parse(text, file)
    _check(tree.value, tree.positions, file, activities)
    return Document(body=tree.value, source=text, file=file, sha256=digest(tree.value))


def validate(
    body: dict[str, Any], file: str = "<definition>", activities: Collection[str] | None = None
) -> None:
    """Check a definition built in Python; raise DefinitionError listing every problem."""
    problems = source.plain_problems(body, file)
    if problems:
        raise errors.DefinitionError(problems)
    _check(body, source.Positions(), file, activities)


def digest(body: Mapping[str, Any]) -> str:
    """The SHA-256 of the canonical JSON of a body: the same for its YAML and JSON spellings."""
    canonical = jsonlib.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check(
    body: Any, positions: source.Positions, file: str, activities: Collection[str] | None
) -> None:
    if not isinstance(body, dict):
        kind = messages.kind(body)
        message = f"a definition is a mapping of fields (Name, Version, States...), not {kind}"
        raise errors.DefinitionError([errors.Problem(file=file, line=1, column=1, message=message)])
    if body and not body.keys() & {"Name", "Version", "StartAt", "States"}:
        # Some other YAML file (CI config, compose file): one line, not one per key.
        message = "not a Cairn definition: it has none of Name, Version, StartAt, States"
        raise errors.DefinitionError([errors.Problem(file=file, line=1, column=1, message=message)])
    issues = schema_errors.issues(body)
    issues += semantics.issues(body, [i.path for i in issues], activities)
    problems = {issue.problem(file, positions) for issue in _quiet(issues)}
    if problems:
        order = sorted(problems, key=lambda p: (p.line, p.column, p.path, p.message))
        raise errors.DefinitionError(order)


def _quiet(issues: list[Issue]) -> list[Issue]:
    """Drop 'missing X' where an unknown field in the same object looks like a misspelt X."""
    suggested = {(i.path[:-1], i.suggests) for i in issues if i.suggests}
    return [i for i in issues if not i.missing or (i.path[:-1], i.missing) not in suggested]
