"""Load and check a workflow definition, reporting every mistake with its file, line and column.

A definition goes through three stages: ``definitions.source`` reads the text into plain JSON
with positions, the JSON Schema checks its structure, and the semantic checks here test what a
schema cannot state (targets exist in their scope, every state is reachable and can end,
expressions compile, ...). Every problem found is reported at once, one line each, worded for
the author of the YAML, never as the raw validator message.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import hashlib
import json as jsonlib
import os
import re
import warnings
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from jmespath import exceptions as jmespath_errors

from cairn import errors
from cairn.core import expressions, names
from cairn.definitions import schema, source
from cairn.definitions.source import Path, dotted

PATH_FIELDS = (
    "InputPath",
    "OutputPath",
    "ItemsPath",
    "SecondsPath",
    "TimestampPath",
    "ErrorPath",
    "CausePath",
)
TEMPLATE_FIELDS = ("Parameters", "ResultSelector", "ItemSelector")
WAIT_FORMS = ("Seconds", "SecondsPath", "Timestamp", "TimestampPath")
# Fields whose mistakes change a scope's transitions: with one of them broken, reachability
# and termination are not checked, as they would only repeat the mistake in other words.
EDGE_FIELDS = frozenset({"Type", "Next", "End", "Default", "Choices", "Catch"})


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
    tree = source.parse(text, file, json=json)
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


# --- issues ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Issue:
    """A problem before it has a position: ``at`` is where to point, ``path`` what to name."""

    path: Path
    message: str
    at: Path | None = None
    at_key: bool = False
    missing: str | None = None
    suggests: str | None = None

    def problem(self, file: str, positions: source.Positions) -> errors.Problem:
        at = self.path if self.at is None else self.at
        line, column = positions.key(at) if self.at_key else positions.value(at)
        return errors.Problem(
            file=file, line=line, column=column, message=self.message, path=dotted(self.path)
        )


def _check(
    body: Any, positions: source.Positions, file: str, activities: Collection[str] | None
) -> None:
    if not isinstance(body, dict):
        kind = _kind(body)
        message = f"a definition is a mapping of fields (Name, Version, States...), not {kind}"
        raise errors.DefinitionError([errors.Problem(file=file, line=1, column=1, message=message)])
    if body and not body.keys() & {"Name", "Version", "StartAt", "States"}:
        # Some other YAML file (CI config, compose file): one line, not one per key.
        message = "not a Cairn definition: it has none of Name, Version, StartAt, States"
        raise errors.DefinitionError([errors.Problem(file=file, line=1, column=1, message=message)])
    issues = _schema_issues(body)
    issues += _Semantics(body, [i.path for i in issues], activities).check()
    problems = {issue.problem(file, positions) for issue in _quiet(issues)}
    if problems:
        order = sorted(problems, key=lambda p: (p.line, p.column, p.path, p.message))
        raise errors.DefinitionError(order)


def _quiet(issues: list[_Issue]) -> list[_Issue]:
    """Drop 'missing X' where an unknown field in the same object looks like a misspelt X."""
    suggested = {(i.path[:-1], i.suggests) for i in issues if i.suggests}
    return [i for i in issues if not i.missing or (i.path[:-1], i.missing) not in suggested]


def _suggest(word: str, choices: Collection[str]) -> str | None:
    by_case = {c.lower(): c for c in choices}
    if word.lower() in by_case:
        return by_case[word.lower()]
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _did_you_mean(word: str, choices: Collection[str]) -> str:
    found = _suggest(word, choices)
    return f" (did you mean {found!r}?)" if found else ""


_ARTICLES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def _kind(value: Any) -> str:
    """A JSON type name with its article, as in 'must be an integer, not a string'."""
    name = _json_type(value)
    return _ARTICLES.get(name, f"a {name}")


def _json_type(value: Any) -> str:
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


def _show(value: Any) -> str:
    """A value as the author wrote it, shortened so that one problem stays one line."""
    text = jsonlib.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field(path: Path) -> str:
    """The field a path names, with trailing indexes: ``ErrorEquals[1]``."""
    for end in range(len(path), 0, -1):
        if isinstance(path[end - 1], str):
            return str(path[end - 1]) + dotted(path[end:])
    return "the definition" if not path else dotted(path)


# --- where a path is ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a path is: its innermost scope, the state it is in (None for a path to a scope
    object or a top-level field), the rest of the path inside that state, and the innermost
    state holding it at all (for a branch, the Parallel state)."""

    scope: Path
    state: Path | None
    rest: Path
    owner: Path | None


def _place(path: Path) -> _Place:
    scope: Path = ()
    owner: Path | None = None
    at = 0
    while len(path) > at + 1 and path[at] == "States":
        owner, inner = path[: at + 2], at + 2
        if len(path) > inner + 1 and path[inner] == "Branches" and isinstance(path[inner + 1], int):
            scope, at = path[: inner + 2], inner + 2
        elif len(path) > inner and path[inner] == "ItemProcessor":
            scope, at = path[: inner + 1], inner + 1
        else:
            return _Place(scope, owner, path[inner:], owner)
    return _Place(scope, None, path[at:], owner)


def _within(body: Mapping[str, Any], path: Path) -> str:
    """Name the object at ``path`` for a message: "in Task state 'A'", "at the top level"."""
    owner = _place(path).owner
    if owner is None:
        return "at the top level" if not path else f"in {dotted(path)}"
    node = _at(body, owner)
    kind = node.get("Type") if isinstance(node, dict) else None
    state = f"{kind} state {owner[-1]!r}" if kind in names.STATE_TYPES else f"state {owner[-1]!r}"
    rest = path[len(owner) :]
    return f"in {state}" if not rest else f"in {dotted(rest)} of {state}"


def _at(body: Any, path: Path) -> Any:
    node = body
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


# --- schema ------------------------------------------------------------------------------

_PATTERNS = {
    "^[A-Za-z0-9_.-]+$": "may only hold letters, digits, '_', '.' and '-'",
    "^[^/\\[\\]]{1,80}$": "must be a state name of 1 to 80 characters without '/', '[' or ']'",
    "^[A-Za-z0-9_.-]+(@[0-9]+)?$": "must be 'name' or 'name@version' (like 'invoice@3')",
    "^(@|[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*)$": (
        "must be a dotted field path (like 'charge' or 'order.receipt'), '@' or null"
    ),
}


@functools.cache
def _schema() -> dict[str, Any]:
    return schema.schema()


@functools.cache
def _all_fields() -> frozenset[str]:
    """Every field name the format knows, to tell a misplaced field from an unknown one."""
    found: set[str] = set()
    stack: list[Any] = [_schema()]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.update(node.get("properties", {}))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(found)


def _schema_issues(body: dict[str, Any]) -> list[_Issue]:
    issues: list[_Issue] = []
    try:
        for error in schema.validator().iter_errors(body):
            issues.extend(_translate(error, body))
    except RecursionError:
        issues.append(_Issue(path=(), message="the definition is nested too deeply to check"))
    return issues


def _translate(error: jsonschema.ValidationError, body: dict[str, Any]) -> list[_Issue]:
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
    return [_Issue(path=path, message=_value_message(error, path))]


def _unknown_fields(
    error: jsonschema.ValidationError, path: Path, body: dict[str, Any]
) -> list[_Issue]:
    node: Any = error.schema
    instance: Any = error.instance
    allowed = list(node.get("properties", {}))
    patterns = list(node.get("patternProperties", {}))
    where = _within(body, path)
    issues = []
    for key in instance:
        if key in allowed or any(re.search(p, key) for p in patterns):
            continue
        if key in _all_fields():
            message, suggestion = f"{key!r} is not allowed {where}", None
        else:
            suggestion = _suggest(key, allowed)
            hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
            message = f"unknown field {key!r} {where}{hint}"
        issues.append(_Issue(path=(*path, key), message=message, at_key=True, suggests=suggestion))
    return issues


def _missing_fields(
    error: jsonschema.ValidationError, path: Path, body: dict[str, Any]
) -> list[_Issue]:
    where = "" if not path else f" {_within(body, path)}"
    instance: Any = error.instance
    required: Any = error.validator_value
    return [
        _Issue(
            path=(*path, key),
            at=path,
            at_key=True,
            message=f"missing required field {key!r}{where}",
            missing=key,
        )
        for key in required
        if key not in instance
    ]


def _bad_key(error: jsonschema.ValidationError, path: Path) -> _Issue:
    name: Any = error.instance
    pattern: Any = error.validator_value
    if path and path[-1] == "States":
        message = f"state name {_show(name)} must be 1 to 80 characters without '/', '[' or ']'"
    else:
        label = "query name" if path and path[-1] == "Queries" else "name"
        message = f"{label} {_show(name)} {_PATTERNS.get(pattern, 'is not allowed')}"
    return _Issue(path=(*path, name), message=message, at_key=True)


def _excluded(error: jsonschema.ValidationError, path: Path, body: dict[str, Any]) -> _Issue:
    """A ``not: {required: [A, B]}``: in this format, fields that exclude each other."""
    banned: Any = error.validator_value
    fields = banned.get("required") if isinstance(banned, dict) else None
    if not fields or len(banned) != 1:
        return _Issue(path=path, message=f"{_field(path)!r}: {error.message}")
    names = " and ".join(repr(f) for f in fields)
    message = f"{names} cannot both be given {_within(body, path)}; keep one"
    return _Issue(path=(*path, fields[-1]), message=message, at_key=True)


def _value_message(error: jsonschema.ValidationError, path: Path) -> str:
    name = f"{_field(path)!r}"
    value: Any = error.instance
    expected: Any = error.validator_value
    match error.validator:
        case "type":
            kinds = [expected] if isinstance(expected, str) else list(expected)
            wanted = " or ".join(_ARTICLES.get(k, k) for k in kinds)
            return f"{name} must be {wanted}, not {_kind(value)}"
        case "enum":
            options = ", ".join(str(option) for option in expected)
            label = "Type" if path and path[-1] == "Type" else name
            hint = (
                _did_you_mean(value, [str(o) for o in expected]) if isinstance(value, str) else ""
            )
            return f"{label} must be one of {options}, not {_show(value)}{hint}"
        case "const":
            return f"{name} must be {jsonlib.dumps(expected)}, not {_show(value)}"
        case "pattern":
            rule = _PATTERNS.get(expected, f"must match the pattern {expected}")
            return f"{name} {rule}, not {_show(value)}{_jsonpath_hint(value)}"
        case "minProperties" | "minItems" | "minLength":
            return f"{name} must not be empty"
        case "uniqueItems":
            return f"{name} lists the same item twice"
        case "minimum":
            return f"{name} must be at least {expected}, not {_show(value)}"
        case "exclusiveMinimum":
            return f"{name} must be greater than {expected}, not {_show(value)}"
        case "format":
            return f"{name} must be a valid {expected}, not {_show(value)}"
    return f"{name}: {error.message}"


def _jsonpath_hint(value: Any) -> str:
    """Step Functions authors write JSONPath (``$.order``); Cairn's paths are JMESPath."""
    if not isinstance(value, str) or value.startswith(expressions.CONTEXT_PREFIX):
        return ""
    if value == "$":
        return " (Cairn uses JMESPath: write '@' for the whole input)"
    if value.startswith("$."):
        return f" (Cairn uses JMESPath: write {value[2:]!r})"
    return ""


# --- semantics ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scope:
    """A StartAt and its States: the top level, a Parallel branch or a Map ItemProcessor."""

    path: Path
    start: Any
    names: dict[str, Any] | None  # the States as written (None when not a non-empty mapping)
    states: dict[str, dict[str, Any]]
    on_cancel: Any = None  # the top level's OnCancel: another way in

    def state_path(self, name: str) -> Path:
        return (*self.path, "States", name)


def _scopes(node: Mapping[str, Any], path: Path = ()) -> Iterator[_Scope]:
    """Every scope of a definition, each followed by the scopes nested in its states."""
    states = node.get("States")
    names = states if isinstance(states, dict) and states else None
    states = states if isinstance(states, dict) else {}
    objects = {name: state for name, state in states.items() if isinstance(state, dict)}
    yield _Scope(path, node.get("StartAt"), names, objects, None if path else node.get("OnCancel"))
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
                yield from _scopes(scope, inner_path)


def _edges(state: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    """The transitions of a state: (path inside the state, target name)."""
    for key in ("Next", "Default"):
        if isinstance(state.get(key), str):
            yield (key,), state[key]
    for key in ("Choices", "Catch"):
        rules = state.get(key)
        for index, rule in enumerate(rules if isinstance(rules, list) else ()):
            if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
                yield (key, index, "Next"), rule["Next"]


class _Semantics:
    """The checks a schema cannot express, run on the parts of a body the schema passed."""

    def __init__(
        self, body: dict[str, Any], dirty: list[Path], activities: Collection[str] | None
    ) -> None:
        self.body = body
        self.activities = activities
        self.dirty = set(dirty)
        places = [_place(path) for path in dirty]
        self.dirty_states = {place.state for place in places if place.state is not None}
        self.tangled = {place.scope for place in places if _tangles(place)}
        self.scopes = list(_scopes(body))
        self.owner: dict[str, Path] = {}
        self.issues: list[_Issue] = []

    def add(self, path: Path, message: str, *, at_key: bool = False) -> None:
        self.issues.append(_Issue(path=path, message=message, at_key=at_key))

    def check(self) -> list[_Issue]:
        self.unique_names()
        for scope in self.scopes:
            linked = self.references(scope)
            for name, state in scope.states.items():
                if scope.state_path(name) not in self.dirty_states:
                    linked &= self.state(scope.state_path(name), state)
            if linked and scope.path not in self.tangled:
                self.graph(scope)
        self.top_level()
        return self.issues

    def unique_names(self) -> None:
        for scope in self.scopes:
            for name in scope.names or ():
                first = self.owner.setdefault(name, scope.path)
                if first != scope.path:
                    where = dotted((*first, "States", name))
                    message = (
                        f"state name {name!r} is already used at {where}; names must be unique"
                    )
                    self.add(scope.state_path(name), message, at_key=True)

    def references(self, scope: _Scope) -> bool:
        """Check that every transition of a scope names a state of it; False if one does not."""
        if scope.names is None or (*scope.path, "States") in self.dirty:
            return False  # the schema reports the States themselves
        linked = True
        targets: list[tuple[Path, Any]] = [((*scope.path, "StartAt"), scope.start)]
        if scope.on_cancel is not None:
            targets.append((("OnCancel",), scope.on_cancel))
        for name, state in scope.states.items():
            targets += [((*scope.state_path(name), *rel), t) for rel, t in _edges(state)]
        for path, target in targets:
            if path in self.dirty or not isinstance(target, str):
                linked = False
            elif target not in scope.names:
                linked = False
                self.add(path, self.unknown_target(_field(path), target, scope.names))
        return linked

    def unknown_target(self, field: str, target: str, names: Collection[str]) -> str:
        owner = self.owner.get(target)
        if owner is None:
            return f"{field} names unknown state {target!r}{_did_you_mean(target, names)}"
        where = "the top level" if not owner else dotted(owner)
        return (
            f"{field} cannot name {target!r}: it is a state of {where}, "
            "and transitions never leave their scope"
        )

    def graph(self, scope: _Scope) -> None:
        """Every state is reachable from StartAt, and every loop can end or is paced."""
        assert scope.names is not None
        edges = {name: [t for _, t in _edges(scope.states.get(name, {}))] for name in scope.names}
        reached = _closure([scope.start, *([scope.on_cancel] if scope.on_cancel else [])], edges)
        for name in scope.names:
            if name not in reached:
                message = f"state {name!r} is unreachable: no transition from StartAt leads to it"
                self.add(scope.state_path(name), message, at_key=True)
        ends = [name for name in reached if _ends(scope.states.get(name, {}))]
        backwards: dict[str, list[str]] = {name: [] for name in scope.names}
        for name in reached:
            for target in edges[name]:
                backwards[target].append(name)
        can_end = _closure(ends, backwards)
        stuck = [name for name in scope.names if name in reached and name not in can_end]
        for loop in _loops(stuck, edges):
            if not any(scope.states.get(n, {}).get("Type") in ("Wait", "Task") for n in loop):
                names = ", ".join(repr(n) for n in loop[:5])
                if len(loop) > 5:
                    names += f" and {len(loop) - 5} more"
                message = (
                    f"no end state can be reached from {loop[0]!r}: it loops through {names} "
                    "forever, with no Wait or Task in the loop"
                )
                self.add(scope.state_path(loop[0]), message, at_key=True)

    def state(self, path: Path, state: dict[str, Any]) -> bool:
        """Check one state; return whether its transitions are sound enough to follow."""
        kind = state.get("Type")
        linked = kind not in names.CONTINUING or self.next_or_end(path, state)
        if kind == "Task":
            self.task(path, state)
        if kind == "Wait":
            self.wait(path, state)
        for key in ("Retry", "Catch"):
            self.rules((*path, key), state.get(key))
        compensate = state.get("Compensate")
        if isinstance(compensate, dict):
            self.rules((*path, "Compensate", "Retry"), compensate.get("Retry"))
            self.template((*path, "Compensate", "Parameters"), compensate.get("Parameters"))
        self.state_expressions(path, state)
        return linked

    def next_or_end(self, path: Path, state: Mapping[str, Any]) -> bool:
        kind, name = state["Type"], path[-1]
        if "Next" in state and state.get("End") is True:
            message = f"{kind} state {name!r} has both Next and End; keep one"
            self.add((*path, "End"), message, at_key=True)
            return False
        if "Next" not in state and state.get("End") is not True:
            message = f"{kind} state {name!r} needs Next (the state to go to) or End: true"
            self.add(path, message, at_key=True)
            return False
        return True

    def task(self, path: Path, state: Mapping[str, Any]) -> None:
        name = path[-1]
        if "Activity" in state and "Workflow" in state:
            message = f"Task state {name!r} has both Activity and Workflow; keep one"
            self.add((*path, "Workflow"), message, at_key=True)
        elif "Activity" not in state and "Workflow" not in state:
            message = f"Task state {name!r} needs an Activity (a handler name) or a Workflow"
            self.add(path, message, at_key=True)
        beat, limit = state.get("HeartbeatSeconds"), state.get("TimeoutSeconds")
        if isinstance(beat, int) and isinstance(limit, int) and beat >= limit:
            message = f"HeartbeatSeconds ({beat}) must be less than TimeoutSeconds ({limit})"
            self.add((*path, "HeartbeatSeconds"), message)
        compensate = state.get("Compensate")
        self.activity((*path, "Activity"), state.get("Activity"))
        if isinstance(compensate, dict):
            self.activity((*path, "Compensate", "Activity"), compensate.get("Activity"))

    def activity(self, path: Path, name: Any) -> None:
        if self.activities is None or not isinstance(name, str) or name in self.activities:
            return
        hint = _did_you_mean(name, self.activities)
        self.add(path, f"activity {name!r} is not registered{hint}")

    def wait(self, path: Path, state: Mapping[str, Any]) -> None:
        name = path[-1]
        forms = [key for key in WAIT_FORMS if key in state]
        if len(forms) > 1:
            message = (
                f"Wait state {name!r} has both {forms[0]} and {forms[1]}; "
                "give one of Seconds, SecondsPath, Timestamp or TimestampPath"
            )
            self.add((*path, forms[1]), message, at_key=True)
        elif not forms and "Signal" not in state:
            message = (
                f"Wait state {name!r} needs Seconds, SecondsPath, Timestamp, TimestampPath"
                " or Signal"
            )
            self.add(path, message, at_key=True)
        stamp = state.get("Timestamp")
        if isinstance(stamp, str) and not is_rfc3339(stamp):
            message = (
                "'Timestamp' must be an RFC 3339 date-time like 2026-01-01T00:00:00Z, "
                f"not {_show(stamp)}"
            )
            self.add((*path, "Timestamp"), message)

    def rules(self, path: Path, rules: Any) -> None:
        """States.ALL alone and last; States.Runtime never retried or caught."""
        kind = path[-1]
        for index, rule in enumerate(rules if isinstance(rules, list) else ()):
            equals = rule.get("ErrorEquals") if isinstance(rule, dict) else None
            if not isinstance(equals, list):
                continue
            for position, error in enumerate(equals):
                at = (*path, index, "ErrorEquals", position)
                if error == names.ALL and len(equals) > 1:
                    self.add(at, "States.ALL must be alone in its ErrorEquals")
                elif error == names.ALL and index < len(rules) - 1:
                    self.add(at, f"a {kind} rule with States.ALL must be the last {kind} rule")
                elif error == names.RUNTIME:
                    verb = "retried" if kind == "Retry" else "caught"
                    self.add(at, f"States.Runtime (a bad path or data) is never {verb}; remove it")

    def state_expressions(self, path: Path, state: Mapping[str, Any]) -> None:
        for key in PATH_FIELDS:
            if isinstance(state.get(key), str):
                self.expression((*path, key), state[key])
        for key in TEMPLATE_FIELDS:
            self.template((*path, key), state.get(key))
        choices = state.get("Choices")
        for index, choice in enumerate(choices if isinstance(choices, list) else ()):
            if isinstance(choice, dict) and isinstance(choice.get("Condition"), str):
                self.expression((*path, "Choices", index, "Condition"), choice["Condition"])

    def template(self, path: Path, template: Any) -> None:
        """Check the expressions of a payload template, read as the engine reads it."""
        if not isinstance(template, dict):
            return
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                self.expression((*path, key), value)
            elif isinstance(value, dict):
                self.template((*path, key), value)
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    self.template((*path, key, index), item)

    def expression(self, path: Path, text: str) -> None:
        if path in self.dirty:
            return
        try:
            with warnings.catch_warnings():
                # jmespath warns (PendingDeprecationWarning) on `bare` JSON literals.
                warnings.simplefilter("error", PendingDeprecationWarning)
                expressions.Expression.compile(text)
        except PendingDeprecationWarning:
            self.add(
                path,
                f"JMESPath expression {_show(text)} uses a deprecated literal: "
                "quote strings as 'text' (or `\"text\"`)",
            )
        except jmespath_errors.JMESPathError as exc:
            offset = len(expressions.CONTEXT_PREFIX) if text.startswith("$$.") else 0
            reason = _jmespath_reason(exc, offset)
            message = f"invalid JMESPath expression {_show(text)}: {reason}"
            self.add(path, message + _jsonpath_hint(text))
        except RecursionError:
            self.add(path, f"JMESPath expression {_show(text)} is nested too deeply")

    def top_level(self) -> None:
        queries = self.body.get("Queries")
        for name, text in queries.items() if isinstance(queries, dict) else ():
            if isinstance(text, str):
                self.expression(("Queries", name), text)
        input_schema = self.body.get("InputSchema")
        if isinstance(input_schema, dict) and ("InputSchema",) not in self.dirty:
            try:
                jsonschema.Draft202012Validator.check_schema(input_schema)
            except jsonschema.SchemaError as exc:
                path = ("InputSchema", *exc.absolute_path)
                self.add(path, f"InputSchema is not a valid JSON Schema: {_shorten(exc.message)}")


def _tangles(place: _Place) -> bool:
    """Whether a schema problem leaves a scope's transitions unknown."""
    if place.state is None or not place.rest:
        return True
    first = place.rest[0]
    return first in EDGE_FIELDS or (isinstance(first, str) and first not in _all_fields())


def _ends(state: Mapping[str, Any]) -> bool:
    return state.get("Type") in names.TERMINAL or state.get("End") is True


def _closure(starts: list[Any], edges: Mapping[str, list[str]]) -> set[str]:
    """The names reachable from ``starts`` (included) along ``edges``."""
    seen: set[str] = set()
    todo = [s for s in starts if s in edges]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(t for t in edges[name] if t not in seen)
    return seen


def _loops(nodes: list[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
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
        work = [(root, iter(edges[root]))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in members:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
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
                    if len(component) > 1 or node in edges[node]:
                        found.append(sorted(component, key=order.__getitem__))
    return found


_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)


def is_rfc3339(text: str) -> bool:
    """Whether ``text`` is an RFC 3339 date-time with a time zone, such as 2026-01-01T00:00:00Z."""
    match = _RFC3339.match(text)
    if match is None:
        return False
    date, time, fraction, zone = match.groups()
    # fromisoformat before 3.11 takes neither 'Z' nor fractions other than 3 or 6 digits.
    zone = "+00:00" if zone in "Zz" else zone
    micro = (fraction or "0")[:6].ljust(6, "0")
    try:
        datetime.datetime.fromisoformat(f"{date}T{time}.{micro}{zone}")
    except ValueError:
        return False
    return True


def _jmespath_reason(exc: jmespath_errors.JMESPathError, offset: int) -> str:
    """Why an expression does not compile; ``offset`` counts a ``$$.`` prefix jmespath never saw."""
    if isinstance(exc, jmespath_errors.EmptyExpressionError):
        return "it is empty"
    if isinstance(exc, jmespath_errors.IncompleteExpressionError) or (
        isinstance(exc, jmespath_errors.ParseError) and str(exc.token_type).lower() == "eof"
    ):
        return "it ends too early"
    if isinstance(exc, jmespath_errors.LexerError):
        return f"unexpected {exc.lexer_value!r} at character {exc.lex_position + offset + 1}"
    if isinstance(exc, jmespath_errors.ParseError):
        return f"unexpected {exc.token_value!r} at character {exc.lex_position + offset + 1}"
    return _shorten(str(exc).splitlines()[0])


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
