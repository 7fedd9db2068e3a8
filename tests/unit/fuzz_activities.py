"""What an activity of the fuzz test does: return any JSON, raise ``ActivityError`` or any
exception at all, return what is not JSON, or time out.

Each behaviour is a real handler run through the worker's own ``invoke``, so the outcome the
interpreter is handed is the one a worker would report for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn import activities, testing
from cairn.core import commands
from cairn.core import state as st
from cairn.runtime import invoke, payloads
from cairn.testing import Outcome


def nest(value: Any, depth: int, in_lists: bool) -> Any:
    """``value`` wrapped ``depth`` levels deep, in lists or in objects."""
    for _ in range(depth):
        value = [value] if in_lists else {"a": value}
    return value


class Unreadable(Exception):
    """An exception whose message cannot be read."""

    def __str__(self) -> str:
        raise RuntimeError("no message")


class Outside(BaseException):
    """An exception outside ``Exception``'s tree, as a library might define."""


def circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


RAISED: dict[str, Callable[[], BaseException]] = {
    "ValueError": lambda: ValueError("bad value"),
    "KeyError": lambda: KeyError("k"),
    "ZeroDivisionError": lambda: ZeroDivisionError("division by zero"),
    "RecursionError": lambda: RecursionError("maximum recursion depth exceeded"),
    "MemoryError": MemoryError,
    "unreadable message": Unreadable,
    "empty message": lambda: RuntimeError(""),
    "odd message": lambda: RuntimeError("a\x00b \u2028 \U0001f600 \ud800"),
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "BaseException": Outside,
}
NOT_JSON: dict[str, Callable[[], Any]] = {
    "set": lambda: {1, 2},
    "object": object,
    "NaN": lambda: float("nan"),
    "Infinity": lambda: float("-inf"),
    "2**64": lambda: 2**64,
    "-2**63-1": lambda: -(2**63) - 1,
    "bytes": lambda: b"bytes",
    "NUL": lambda: "a\x00b",
    "NUL key": lambda: {"k\x00": 1},
    "surrogate": lambda: "\ud800",
    "too deep": lambda: nest(1, payloads.DEPTH + 1, True),
    "far too deep": lambda: nest(1, sys.getrecursionlimit() + 10, False),
    "circular": circular,
    "tuple key": lambda: {(1, 2): 3},
    "number keys": lambda: {1: "one", 2.5: "two and a half", False: "no", None: "none"},
    "tuple": lambda: ("a", 1),
    "too large": lambda: "x" * (payloads.size_limit() + 1),
    "function": lambda: print,
    "object in a list": lambda: [1, object()],
}


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What one attempt of an activity does, after ``after`` seconds of the simulated clock."""

    kind: str
    detail: Any = None
    retryable: bool = True
    after: int = 0

    def handler(self, params: Any, ctx: invoke.Context) -> Any:
        if self.kind == "echo":
            return params
        if self.kind == "activity_error":
            raise activities.ActivityError(self.detail, "as scripted", retryable=self.retryable)
        if self.kind == "raise":
            raise RAISED[self.detail]()
        if self.kind == "not_json":
            return NOT_JSON[self.detail]()
        return self.detail

    def outcome(self, task: st.Task) -> Outcome:
        """The outcome the worker would report, from the worker's own ``invoke``."""
        if self.kind == "timeout":
            return Outcome.time_out(self.detail, after=self.after)
        ctx = invoke.Context(
            execution_id=testing.EXECUTION_ID,
            state=task.state,
            activity=task.activity,
            task_id=task.id,
            attempt=task.attempt,
            idempotency_key=task.key,
            heartbeat_details=task.heartbeat_details,
        )
        command = invoke.invoke(self.handler, task.input, ctx)
        if isinstance(command, commands.CompleteTask):
            return Outcome.succeed(command.result, after=self.after)
        assert isinstance(command, commands.FailTask), command
        return Outcome.fail(
            command.error, command.cause, retryable=command.retryable, after=self.after
        )
