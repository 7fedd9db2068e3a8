"""The checks a JSON Schema cannot state, run on the parts of a body the schema passed.

Every ``Next`` names a state of its own scope, state names are unique across scopes, every
state is reachable and no loop runs forever without a Wait or Task, Retry and Catch rules are
in an order that can match, every JMESPath expression compiles, Wait and Task forms are
whole, and (when asked) every Activity is registered. Where the schema already found a
mistake, the checks that would only repeat it in other words are skipped.
"""

from __future__ import annotations

import datetime
import re
import warnings
from collections.abc import Collection, Mapping
from typing import Any

import jsonschema
from jmespath import exceptions as jmespath_errors

from cairn.core import expressions, limits, names
from cairn.definitions import messages, places, references, schema, scopes
from cairn.definitions.messages import Issue
from cairn.definitions.scopes import Scope
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


def issues(
    body: dict[str, Any], dirty: list[Path], activities: Collection[str] | None
) -> list[Issue]:
    """The semantic mistakes of ``body``, leaving alone what the schema found wrong at ``dirty``."""
    return _Semantics(body, dirty, activities).check()


class _Semantics:
    """The checks a schema cannot express, run on the parts of a body the schema passed."""

    def __init__(
        self, body: dict[str, Any], dirty: list[Path], activities: Collection[str] | None
    ) -> None:
        self.body = body
        self.activities = activities
        self.dirty = set(dirty)
        wrong = [places.place(path) for path in dirty]
        self.dirty_states = {place.state for place in wrong if place.state is not None}
        self.tangled = {place.scope for place in wrong if _tangles(place)}
        self.scopes = list(scopes.scopes(body))
        self.owner: dict[str, Path] = {}
        self.issues: list[Issue] = []

    def add(self, path: Path, message: str, *, at_key: bool = False) -> None:
        self.issues.append(Issue(path=path, message=message, at_key=at_key))

    def check(self) -> list[Issue]:
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

    def references(self, scope: Scope) -> bool:
        """Check that every transition of a scope names a state of it; False if one does not."""
        if scope.names is None or (*scope.path, "States") in self.dirty:
            return False  # the schema reports the States themselves
        linked = True
        targets: list[tuple[Path, Any]] = [((*scope.path, "StartAt"), scope.start)]
        if scope.on_cancel is not None:
            targets.append((("OnCancel",), scope.on_cancel))
        for name, state in scope.states.items():
            targets += [((*scope.state_path(name), *rel), t) for rel, t in scopes.edges(state)]
        for path, target in targets:
            if path in self.dirty or not isinstance(target, str):
                linked = False
            elif target not in scope.names:
                linked = False
                self.add(path, self.unknown_target(messages.field(path), target, scope.names))
        return linked

    def unknown_target(self, field: str, target: str, choices: Collection[str]) -> str:
        owner = self.owner.get(target)
        if owner is None:
            hint = messages.did_you_mean(messages.suggest(target, choices))
            return f"{field} names unknown state {target!r}{hint}"
        where = "the top level" if not owner else dotted(owner)
        return (
            f"{field} cannot name {target!r}: it is a state of {where}, "
            "and transitions never leave their scope"
        )

    def graph(self, scope: Scope) -> None:
        """Every state is reachable from StartAt, and every loop can end or is paced."""
        assert scope.names is not None
        edges = {
            name: [t for _, t in scopes.edges(scope.states.get(name, {}))] for name in scope.names
        }
        reached = scopes.closure(
            [scope.start, *([scope.on_cancel] if scope.on_cancel else [])], edges
        )
        for name in scope.names:
            if name not in reached:
                message = f"state {name!r} is unreachable: no transition from StartAt leads to it"
                self.add(scope.state_path(name), message, at_key=True)
        ends = [name for name in reached if scopes.ends(scope.states.get(name, {}))]
        backwards: dict[str, list[str]] = {name: [] for name in scope.names}
        for name in reached:
            for target in edges[name]:
                backwards[target].append(name)
        can_end = scopes.closure(ends, backwards)
        stuck = [name for name in scope.names if name in reached and name not in can_end]
        for loop in scopes.loops(stuck, edges):
            if not any(scope.states.get(n, {}).get("Type") in ("Wait", "Task") for n in loop):
                shown = ", ".join(repr(n) for n in loop[:5])
                if len(loop) > 5:
                    shown += f" and {len(loop) - 5} more"
                message = (
                    f"no end state can be reached from {loop[0]!r}: it loops through {shown} "
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
        self.child_version((*path, "Workflow"), state.get("Workflow"))
        compensate = state.get("Compensate")
        self.activity((*path, "Activity"), state.get("Activity"))
        if isinstance(compensate, dict):
            self.activity((*path, "Compensate", "Activity"), compensate.get("Activity"))

    def child_version(self, path: Path, workflow: Any) -> None:
        """A pinned child version must be one a deployment can have."""
        if path in self.dirty or not isinstance(workflow, str) or "@" not in workflow:
            return
        version = workflow.partition("@")[2]
        # Past ten digits it is past the limit, and int() refuses thousands of digits.
        if len(version) < 11 and 1 <= int(version) <= limits.MAX_VERSION:
            return
        message = (
            f"Workflow {messages.show(workflow)} pins a version that cannot be deployed: "
            f"versions go from 1 to {limits.MAX_VERSION:,}"
        )
        self.add(path, message)

    def activity(self, path: Path, name: Any) -> None:
        if self.activities is None or not isinstance(name, str) or name in self.activities:
            return
        hint = messages.did_you_mean(messages.suggest(name, self.activities))
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
                f"not {messages.show(stamp)}"
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
                f"JMESPath expression {messages.show(text)} uses a deprecated literal: "
                "quote strings as 'text' (or `\"text\"`)",
            )
        except jmespath_errors.JMESPathError as exc:
            offset = len(expressions.CONTEXT_PREFIX) if text.startswith("$$.") else 0
            reason = _jmespath_reason(exc, offset)
            message = f"invalid JMESPath expression {messages.show(text)}: {reason}"
            self.add(path, message + messages.jsonpath_hint(text))
        except RecursionError:
            self.add(path, f"JMESPath expression {messages.show(text)} is nested too deeply")

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
                self.add(
                    path, f"InputSchema is not a valid JSON Schema: {messages.shorten(exc.message)}"
                )
            self.issues += references.issues(input_schema)


def _tangles(place: places.Place) -> bool:
    """Whether a schema problem leaves a scope's transitions unknown."""
    if place.state is None or not place.rest:
        return True
    first = place.rest[0]
    return first in EDGE_FIELDS or (isinstance(first, str) and first not in schema.field_names())


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
    return messages.shorten(str(exc).splitlines()[0])
