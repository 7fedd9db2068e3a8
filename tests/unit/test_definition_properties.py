"""Randomly broken definitions: the loader only ever says DefinitionError, and never lets a
transition to a missing state through.

Each example takes a valid definition, breaks it one way (a key deleted, a value of the wrong
type, a state renamed, a transition retargeted, random text inserted, the text cut short, or
plain random bytes) and loads the result. Whether a target exists is checked here on its own,
without the code under test.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn import errors
from cairn.definitions import loader

Path = tuple[str | int, ...]

LINEAR: dict[str, Any] = {
    "Name": "linear",
    "Version": 1,
    "StartAt": "Charge",
    "States": {
        "Charge": {
            "Type": "Task",
            "Activity": "ChargeCard",
            "Parameters": {"amount.$": "order.total", "currency": "EUR"},
            "ResultPath": "charge",
            "Retry": [{"ErrorEquals": ["CardNetworkError"], "MaxAttempts": 2}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Declined"}],
            "Compensate": {"Activity": "RefundCard"},
            "Next": "Shape",
        },
        "Shape": {"Type": "Pass", "Result": {"ok": True}, "ResultPath": "shaped", "Next": "Done"},
        "Done": {"Type": "Succeed"},
        "Declined": {"Type": "Fail", "Error": "CardDeclined", "Cause": "declined"},
    },
}

POLL: dict[str, Any] = {
    "Name": "poll",
    "Version": 2,
    "StartAt": "Check",
    "Queries": {"status": "job.status"},
    "States": {
        "Check": {"Type": "Task", "Activity": "CheckJob", "ResultPath": "job", "Next": "Ready"},
        "Ready": {
            "Type": "Choice",
            "Choices": [
                {"Condition": "job.status == 'done'", "Next": "Finished"},
                {"Condition": "job.status == 'failed'", "Next": "Broken"},
            ],
            "Default": "Pause",
        },
        "Pause": {"Type": "Wait", "Seconds": 30, "Next": "Check"},
        "Finished": {"Type": "Pass", "End": True},
        "Broken": {"Type": "Fail", "ErrorPath": "job.error"},
    },
}

NESTED: dict[str, Any] = {
    "Name": "nested",
    "Version": 3,
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Email",
                    "States": {
                        "Email": {"Type": "Task", "Activity": "SendEmail", "Next": "Sent"},
                        "Sent": {"Type": "Succeed"},
                    },
                },
                {
                    "StartAt": "Lines",
                    "States": {
                        "Lines": {
                            "Type": "Map",
                            "ItemsPath": "lines",
                            "ItemProcessor": {
                                "StartAt": "Reserve",
                                "States": {
                                    "Reserve": {
                                        "Type": "Task",
                                        "Activity": "Reserve",
                                        "End": True,
                                    }
                                },
                            },
                            "End": True,
                        }
                    },
                },
            ],
            "Catch": [{"ErrorEquals": ["OutOfStock"], "Next": "Undo"}],
            "Next": "Again",
        },
        "Undo": {"Type": "Compensate", "Next": "Gone"},
        "Gone": {"Type": "Fail", "Error": "Cancelled"},
        "Again": {"Type": "ContinueAsNew", "Version": "latest"},
    },
}

BASES = [LINEAR, POLL, NESTED]

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


def paths(node: Any, path: Path = ()) -> Iterator[Path]:
    """Every path below ``node``."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in items:
        yield (*path, key)
        yield from paths(child, (*path, key))


def parent(body: Any, path: Path) -> Any:
    for part in path[:-1]:
        body = body[part]
    return body


def scopes(node: Any) -> Iterator[dict[str, Any]]:
    """Every object holding StartAt and States, found structurally from the top."""
    if not isinstance(node, dict):
        return
    yield node
    states = node.get("States")
    for state in states.values() if isinstance(states, dict) else ():
        if not isinstance(state, dict):
            continue
        branches = state.get("Branches")
        for branch in branches if isinstance(branches, list) else ():
            yield from scopes(branch)
        yield from scopes(state.get("ItemProcessor"))


def dangling(body: dict[str, Any]) -> list[str]:
    """Transitions naming no state of their own scope."""
    missing = []
    for scope in scopes(body):
        names = scope.get("States", {})
        targets = [scope.get("StartAt")]
        for state in names.values():
            targets += [state.get("Next"), state.get("Default")]
            targets += [rule.get("Next") for rule in state.get("Choices", [])]
            targets += [rule.get("Next") for rule in state.get("Catch", [])]
        missing += [t for t in targets if t is not None and t not in names]
    return missing


def targets(body: dict[str, Any]) -> list[Path]:
    return [p for p in paths(body) if p[-1] in ("Next", "Default", "StartAt")]


def state_keys(body: dict[str, Any]) -> list[Path]:
    return [p for p in paths(body) if len(p) >= 2 and p[-2] == "States"]


@st.composite
def broken(draw: st.DrawFn) -> tuple[str | bytes, bool]:
    """A definition text broken one way, and whether it is meant to be read as JSON."""
    body = copy.deepcopy(draw(st.sampled_from(BASES)))
    as_json = draw(st.booleans())
    how = draw(
        st.sampled_from(["delete", "retype", "rename", "retarget", "insert", "truncate", "bytes"])
    )
    if how == "bytes":
        return draw(st.binary(max_size=200)), as_json
    if how == "delete":
        path = draw(st.sampled_from(list(paths(body))))
        del parent(body, path)[path[-1]]
    elif how == "retype":
        path = draw(st.sampled_from(list(paths(body))))
        parent(body, path)[path[-1]] = draw(JSON_VALUES)
    elif how == "rename":
        path = draw(st.sampled_from(state_keys(body)))
        owner = parent(body, path)
        new = draw(st.text(min_size=1, max_size=12) | st.sampled_from(["Done", "Email", "Check"]))
        owner[new] = owner.pop(path[-1])
    elif how == "retarget":
        path = draw(st.sampled_from(targets(body)))
        names = [p[-1] for p in state_keys(body)]
        parent(body, path)[path[-1]] = draw(st.sampled_from(names) | st.text(max_size=12))
    text = json.dumps(body, indent=2) if as_json else yaml.safe_dump(body, allow_unicode=True)
    if how == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(min_size=1, max_size=8)) + text[at:]
    elif how == "truncate":
        text = text[: draw(st.integers(0, len(text) - 1))]
    return text, as_json


def test_the_bases_are_valid() -> None:
    for base in BASES:
        assert loader.loads(yaml.safe_dump(base)).body == base
        assert dangling(base) == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken())
def test_broken_definitions_fail_cleanly_and_never_dangle(case: tuple[str | bytes, bool]) -> None:
    text, as_json = case
    try:
        document = loader.loads(text, "fuzz", json=as_json)
    except errors.DefinitionError as exc:
        assert exc.problems
        assert all(p.file == "fuzz" and p.message for p in exc.problems)
        return
    assert dangling(document.body) == []
