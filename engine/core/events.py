"""Event types (what happened, past tense) and commands (what the outside world asks).

The history is the truth: an execution's state is the fold of its events, so every event
carries all the data ``evolve`` needs.  Events share one shape (type, time, scope, state,
details) because that is how they are stored, listed and read by people; ``details`` of each
type are described next to its name below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from cairn.jsontypes import JSON

# -- event types and their details ---------------------------------------------------------
EXECUTION_STARTED = "ExecutionStarted"  # execution_id, run, workflow, version, input
STATE_ENTERED = "StateEntered"  # input, entry
STATE_EXITED = "StateExited"  # output (absent when the state failed)
TASK_SCHEDULED = "TaskScheduled"  # task_id, activity, input, attempt, key, queue, timeout...
# (and heartbeat_details: the checkpoint an earlier attempt left, when there is one)
TASK_STARTED = "TaskStarted"  # task_id, worker, attempt
TASK_SUCCEEDED = "TaskSucceeded"  # task_id, result, compensable
TASK_FAILED = "TaskFailed"  # task_id, error, cause (heartbeat_details: its last checkpoint)
TASK_TIMED_OUT = "TaskTimedOut"  # task_id, error, cause (heartbeat_details: its last checkpoint)
RETRY_SCHEDULED = "RetryScheduled"  # retrier, retry, delay, error
TIMER_STARTED = "TimerStarted"  # timer_id, due, purpose (wait | retry | execution)
TIMER_FIRED = "TimerFired"  # timer_id
TIMER_CANCELLED = "TimerCancelled"  # timer_id
SIGNAL_RECEIVED = "SignalReceived"  # name, payload
SIGNAL_CONSUMED = "SignalConsumed"  # signal (the seq of its SignalReceived), name
BRANCH_STARTED = "BranchStarted"  # index (a Parallel branch or a Map item)
BRANCH_SUCCEEDED = "BranchSucceeded"  # index, output
BRANCH_FAILED = "BranchFailed"  # index, error, cause
BRANCHES_CANCELLED = "BranchesCancelled"  # (every running branch of the state is stopped)
COMPENSATION_SCHEDULED = "CompensationScheduled"  # steps: [{seq, state}] in the order run
EXECUTION_SUCCEEDED = "ExecutionSucceeded"  # output
EXECUTION_FAILED = "ExecutionFailed"  # error, cause
EXECUTION_TIMED_OUT = "ExecutionTimedOut"  # error, cause
EXECUTION_CANCELLED = "ExecutionCancelled"  # reason
CONTINUED_AS_NEW = "ContinuedAsNew"  # input, version (same | latest): the next run's
CHILD_STARTED = "ChildStarted"  # child_id, workflow, version (None: the newest), input
CHILD_CLOSED = "ChildClosed"  # child_id, status, output, error, cause
CALLBACK_AWAITED = "CallbackAwaited"  # task_id (the token an outside system completes)
CALLBACK_HEARTBEAT = "CallbackHeartbeat"  # task_id
EXECUTION_REDRIVEN = "ExecutionRedriven"  # state: where the run resumes
CANCEL_REQUESTED = "CancelRequested"  # reason, state: where OnCancel goes on (work in flight stops)

CLOSING = {
    EXECUTION_SUCCEEDED: "SUCCEEDED",
    EXECUTION_FAILED: "FAILED",
    EXECUTION_TIMED_OUT: "TIMED_OUT",
    EXECUTION_CANCELLED: "CANCELLED",
    CONTINUED_AS_NEW: "CONTINUED",
}
"""The events that close an execution, and the status each leaves it in."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One entry of an execution's history."""

    seq: int
    type: str
    time: float
    scope: str = ""
    state: str | None = None
    details: dict[str, JSON] = field(default_factory=dict)
    run: int = 1
    """Which run of the execution (ContinueAsNew starts the next one, numbering from 1)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "seq": self.seq,
            "type": self.type,
            "time": self.time,
            "scope": self.scope,
            "state": self.state,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        return cls(**data)


# -- commands: what happened outside, handed to ``decide`` ----------------------------------


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
