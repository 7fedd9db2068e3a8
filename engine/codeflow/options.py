"""The options of a code workflow's steps: Retry and Catch rules, compensations, durations.

They are plain values the user builds in the workflow function and hands to ``flow.task``
and friends; each knows the definition fields it stands for.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from cairn import activities
from cairn.codeflow.sites import internal, refuse
from cairn.core import names
from cairn.jsontypes import JSON

ErrorName: TypeAlias = "str | type[BaseException]"
Duration: TypeAlias = "int | float | datetime.timedelta"
Handler: TypeAlias = "Callable[..., object]"


class Errors:
    """Built-in error names, for ``Retry`` and ``Catch``."""

    ALL = names.ALL
    TIMEOUT = names.TIMEOUT
    HEARTBEAT_TIMEOUT = names.HEARTBEAT_TIMEOUT
    TASK_FAILED = names.TASK_FAILED
    DATA_LIMIT_EXCEEDED = names.DATA_LIMIT_EXCEEDED
    NO_CHOICE_MATCHED = names.NO_CHOICE_MATCHED
    ACTIVITY_NOT_FOUND = names.ACTIVITY_NOT_FOUND
    CHILD_FAILED = names.CHILD_FAILED
    CANCELLED = names.CANCELLED


class _Default:
    def __repr__(self) -> str:
        return "<default>"


DEFAULT: Any = _Default()
"""``result=`` left out: keep the result under a key named after the state."""


class Retry:
    """A Retry rule: which errors to try again (default: all), and how long to wait."""

    def __init__(
        self,
        *errors: ErrorName,
        interval: Duration | None = None,
        backoff_rate: float | None = None,
        max_attempts: int | None = None,
        max_delay: Duration | None = None,
        jitter: bool | None = None,
    ) -> None:
        self.errors = errors or (Errors.ALL,)
        self.interval = interval
        self.backoff_rate = backoff_rate
        self.max_attempts = max_attempts
        self.max_delay = max_delay
        self.jitter = jitter

    def to_json(self) -> dict[str, JSON]:
        """The rule as written in a definition (only the fields given)."""
        out: dict[str, JSON] = {"ErrorEquals": [error_name(e) for e in self.errors]}
        if self.interval is not None:
            out["IntervalSeconds"] = duration_seconds(self.interval, whole=False)
        if self.backoff_rate is not None:
            out["BackoffRate"] = self.backoff_rate
        if self.max_attempts is not None:
            out["MaxAttempts"] = self.max_attempts
        if self.max_delay is not None:
            out["MaxDelaySeconds"] = duration_seconds(self.max_delay, whole=False)
        if self.jitter is not None:
            out["JitterStrategy"] = "FULL" if self.jitter else "NONE"
        return out


class Catch:
    """A Catch rule: on these errors (once retries are spent), run ``handler(error)``.

    The error output ``{"Error": ..., "Cause": ...}`` is kept under ``result`` and handed
    to the handler as a Value. A handler that does not end its path (``flow.fail``,
    ``flow.end``, ``flow.succeed``) continues with the step after the one that failed.
    """

    def __init__(
        self,
        errors: ErrorName | Sequence[ErrorName],
        handler: Handler,
        *,
        result: str | None = "error",
    ) -> None:
        self.errors: tuple[ErrorName, ...] = (
            (errors,) if isinstance(errors, (str, type)) else tuple(errors)
        )
        self.handler = handler
        self.result = result


CatchSpec: TypeAlias = "Catch | Sequence[Catch] | Mapping[Any, Handler]"


class Undo:
    """The compensation of a Task: the activity a ``flow.compensate()`` step runs for it.

    Build it in the ``compensate=`` lambda, whose argument holds the task's ``input`` (the
    parameters it was given) and ``result``:
    ``compensate=lambda done: Undo("RefundCard", charge_id=done.result.charge_id)``.
    """

    def __init__(
        self,
        activity: str | Callable[..., Any],
        payload: object = None,
        /,
        *,
        queue: str | None = None,
        timeout: Duration | None = None,
        retry: Retry | Sequence[Retry] = (),
        comment: str | None = None,
        **params: object,
    ) -> None:
        self.activity = activity
        self.payload = payload
        self.params = params
        self.queue = queue
        self.timeout = timeout
        self.retry = retry
        self.comment = comment


def error_name(error: object) -> str:
    """An error name from a string or an exception class (its name, as workers report it)."""
    if isinstance(error, str):
        return error
    if isinstance(error, type) and issubclass(error, BaseException):
        return error.__name__
    refuse(f"an error is a name or an exception class, not {error!r}")


def duration_seconds(value: object, *, whole: bool = True) -> int | float:
    """Seconds from a number or a timedelta; whole seconds where the format wants an integer."""
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        refuse(f"a duration is seconds or a timedelta, not {value!r}")
    if value == int(value):
        return int(value)
    if whole:
        refuse(f"{value} seconds is not a whole number of seconds")
    return value


def retries(retry: Retry | Sequence[Retry]) -> list[JSON]:
    """The Retry field of a state."""
    rules = [retry] if isinstance(retry, Retry) else list(retry)
    for rule in rules:
        if not isinstance(rule, Retry):
            refuse(f"retry= takes Retry(...) rules, not {rule!r}")
    return [rule.to_json() for rule in rules]


def catches(catch: CatchSpec | None) -> list[Catch]:
    """Catch rules from ``Catch(...)``, a list of them, or ``{errors: handler}``."""
    if catch is None:
        return []
    if isinstance(catch, Catch):
        return [catch]
    if isinstance(catch, Mapping):
        return [Catch(errors, handler) for errors, handler in catch.items()]
    rules = list(catch)
    for rule in rules:
        if not isinstance(rule, Catch):
            refuse(f"catch= takes Catch(...) rules or {{errors: handler}}, not {rule!r}")
    return rules


def activity_name(activity: object) -> str:
    """An activity's registered name, given the name or its handler function."""
    if isinstance(activity, str):
        return activity
    for name, handler in activities.registry.items():
        if handler is activity:
            return name
    refuse(
        f"{getattr(activity, '__qualname__', activity)!r} is not a registered activity: "
        "decorate it with @activity(NAME), or pass the activity's name"
    )


def workflow_target(workflow: object, version: int | None) -> str:
    """A child Task's ``Workflow`` field from a name or a code workflow (pinned)."""
    name, pinned = getattr(workflow, "name", None), getattr(workflow, "version", None)
    if isinstance(name, str) and isinstance(pinned, int):
        return f"{name}@{pinned if version is None else version}"
    if not isinstance(workflow, str):
        refuse(f"flow.child takes a workflow name or a code workflow, not {workflow!r}")
    return workflow if version is None else f"{workflow}@{version}"


def snake(name: str) -> str:
    """A result key from a state name: ``ChargeCard`` -> ``charge_card``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    key = re.sub(r"[^A-Za-z0-9_]+", "_", spaced).strip("_").lower()
    return key if key and not key[0].isdigit() else f"step_{key}"


internal(__file__)
