"""Commands: what the outside world asks of an execution, handed to ``decide``.

A worker claimed a task, an activity returned or failed, a timer is due, a signal or a
cancel arrived, a child closed: each is a command, and ``decide`` answers it with events.
A command that no longer applies (a task already finished, a timer already cancelled)
yields no event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from cairn.jsontypes import JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """Start a run of an execution with its input (and the signals an earlier run left)."""

    execution_id: str
    input: JSON
    run: int = 1
    signals: tuple[tuple[str, JSON], ...] = ()
    """(name, payload) of signals no Wait of the run before a ContinueAsNew consumed."""
    halt: str | None = None
    """Start the run only to fail it at once with this cause (a loop that never waits)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BeginTask:
    """A worker claimed a task and is about to run it."""

    task_id: str
    worker: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteTask:
    """A task's activity returned ``result``, or (``token``) its callback token was completed."""

    task_id: str
    result: JSON
    token: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FailTask:
    """A task's activity failed; ``retryable=False`` skips the Retry rules."""

    task_id: str
    error: str
    cause: str
    retryable: bool = True
    heartbeat_details: JSON = None
    """The details of the attempt's last heartbeat, handed to the next attempt."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeOutTask:
    """A started task ran past its TimeoutSeconds or missed its heartbeat."""

    task_id: str
    error: str
    cause: str
    heartbeat_details: JSON = None
    """The details of the attempt's last heartbeat, handed to the next attempt."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FireTimer:
    """A durable timer is due."""

    timer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A named signal arrived for the execution."""

    name: str
    payload: JSON = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel:
    """Someone asked the execution to stop."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """An outside system says a callback task is still being worked on."""

    task_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseChild:
    """A child execution closed."""

    child_id: str
    status: str
    output: JSON = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Redrive:
    """Resume a failed or timed-out run from the state where it stopped."""


Command: TypeAlias = (
    Start
    | BeginTask
    | CompleteTask
    | FailTask
    | TimeOutTask
    | FireTimer
    | Signal
    | Cancel
    | Heartbeat
    | CloseChild
    | Redrive
)
