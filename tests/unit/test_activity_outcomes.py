"""What an activity's handler does, turned into a command: never an exception of the worker."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from cairn import activities
from cairn.core import commands, names
from cairn.runtime import invoke

CTX = invoke.Context(
    execution_id="e", state="S", activity="A", task_id="t", attempt=1, idempotency_key="k"
)


class Unreadable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


def raising(exc: BaseException) -> Any:
    def handler(params: Any, ctx: Any) -> Any:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("handler", "error", "cause"),
    [
        (lambda p, c: sys.exit(2), names.TASK_FAILED, "activity A raised SystemExit(2), "),
        (raising(KeyboardInterrupt()), names.TASK_FAILED, "activity A raised KeyboardInterrupt()"),
        (raising(GeneratorExit()), names.TASK_FAILED, "activity A raised GeneratorExit()"),
        (raising(Unreadable()), "Unreadable", "<Unreadable whose message could not be read>"),
        (raising(activities.ActivityError("", "why")), names.TASK_FAILED, "activity A raised"),
        (raising(activities.ActivityError("x" * 201)), names.TASK_FAILED, "activity A raised"),
        (raising(activities.ActivityError("A\x00B")), names.TASK_FAILED, "activity A raised"),
        (raising(activities.ActivityError("Custom", "why")), "Custom", "why"),
    ],
    ids=[
        "sys.exit",
        "KeyboardInterrupt",
        "GeneratorExit",
        "unreadable-message",
        "empty-error-name",
        "long-error-name",
        "nul-in-error-name",
        "named-error",
    ],
)
def test_whatever_a_handler_raises_is_a_task_failure(handler: Any, error: str, cause: str) -> None:
    outcome = invoke.invoke(handler, {}, CTX)
    assert isinstance(outcome, commands.FailTask)
    assert (outcome.task_id, outcome.error) == ("t", error)
    assert outcome.cause.startswith(cause)


@pytest.mark.parametrize(
    ("result", "stored"),
    [
        ("\\u0000", True),  # the six characters of an escaped NUL: ordinary text
        ("\\\\u0000", True),
        ("\u0000", False),
        ("\\\u0000", False),  # a backslash, then a NUL
        ({"k\u0000": 1}, False),  # in a key too
    ],
)
def test_only_a_real_nul_is_refused(result: Any, stored: bool) -> None:
    outcome = invoke.check_result(CTX, result)
    assert isinstance(outcome, commands.CompleteTask) is stored
    if not stored:
        assert isinstance(outcome, commands.FailTask) and outcome.error == names.RUNTIME
        assert "NUL" in outcome.cause


def test_a_result_nested_too_deep_for_python_is_a_task_failure() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    outcome = invoke.check_result(CTX, deep)
    assert isinstance(outcome, commands.FailTask) and outcome.error == names.RUNTIME
    assert outcome.cause.startswith("activity A returned a result that is not JSON: ")
