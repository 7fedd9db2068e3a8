"""Events: what happened to an execution, in the past tense.

The history is the truth: an execution's state is the fold of its events, so every event
carries all the data ``evolve`` needs.  An ``Event`` is an envelope (seq, time, scope, state,
run) around a typed payload, one frozen dataclass per event type.  They are stored, listed
and read by people as ``(type, details)``: the type is the payload's class name and the
details its fields, and ``read`` rebuilds the payload from them, tolerating the details an
older version wrote.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from cairn.jsontypes import JSON

EXECUTION_STARTED = "ExecutionStarted"
STATE_ENTERED = "StateEntered"
STATE_EXITED = "StateExited"
TASK_SCHEDULED = "TaskScheduled"
TASK_STARTED = "TaskStarted"
TASK_SUCCEEDED = "TaskSucceeded"
TASK_FAILED = "TaskFailed"
TASK_TIMED_OUT = "TaskTimedOut"
RETRY_SCHEDULED = "RetryScheduled"
TIMER_STARTED = "TimerStarted"
TIMER_FIRED = "TimerFired"
TIMER_CANCELLED = "TimerCancelled"
SIGNAL_RECEIVED = "SignalReceived"
SIGNAL_CONSUMED = "SignalConsumed"
BRANCH_STARTED = "BranchStarted"
BRANCH_SUCCEEDED = "BranchSucceeded"
BRANCH_FAILED = "BranchFailed"
BRANCHES_CANCELLED = "BranchesCancelled"
COMPENSATION_SCHEDULED = "CompensationScheduled"
EXECUTION_SUCCEEDED = "ExecutionSucceeded"
EXECUTION_FAILED = "ExecutionFailed"
EXECUTION_TIMED_OUT = "ExecutionTimedOut"
EXECUTION_CANCELLED = "ExecutionCancelled"
CONTINUED_AS_NEW = "ContinuedAsNew"
CHILD_STARTED = "ChildStarted"
CHILD_CLOSED = "ChildClosed"
CALLBACK_AWAITED = "CallbackAwaited"
CALLBACK_HEARTBEAT = "CallbackHeartbeat"
EXECUTION_REDRIVEN = "ExecutionRedriven"
CANCEL_REQUESTED = "CancelRequested"


class _Details:
    """How a payload is stored: its fields, less those ``OMITTED`` while at their default.

    Omitting them keeps the details exactly as the decider wrote them before payloads were
    typed (a ``callback`` flag only on callback tasks, say), so stored histories and the
    ones written now look alike.
    """

    __slots__ = ()
    OMITTED: ClassVar[frozenset[str]] = frozenset()

    def details(self) -> dict[str, JSON]:
        """The payload as the ``details`` of a stored event."""
        out: dict[str, JSON] = {}
        for name, default in _fields(type(self)):
            value = getattr(self, name)
            if name in self.OMITTED and value == default:
                continue
            out[name] = value
        return out


_FIELDS: dict[type[Any], tuple[tuple[str, Any], ...]] = {}


def _fields(cls: type[Any]) -> tuple[tuple[str, Any], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple((f.name, f.default) for f in dataclasses.fields(cls))
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionStarted(_Details):
    """A run began (the first event of every run's history)."""

    execution_id: str
    run: int
    workflow: str
    version: int
    input: JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class StateEntered(_Details):
    """A state was entered with ``input``, for the ``entry``-th time at its path."""

    input: JSON
    entry: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StateExited(_Details):
    """A state ended with ``output``; ``error`` when a Catch took its failure."""

    OMITTED: ClassVar[frozenset[str]] = frozenset({"error"})
    output: JSON = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskScheduled(_Details):
    """A task waits for a worker; ``compensates`` names the completion an undo step undoes."""

    OMITTED: ClassVar[frozenset[str]] = frozenset({"callback", "heartbeat_details", "compensates"})
    task_id: str
    activity: str
    input: JSON
    attempt: int
    key: str
    queue: str
    timeout: int | None = None
    heartbeat: int | None = None
    callback: bool = False
    heartbeat_details: JSON = None
    """The checkpoint an earlier attempt left, when there is one."""
    compensates: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted(_Details):
    """A worker claimed a task."""

    task_id: str
    worker: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSucceeded(_Details):
    """A task's activity returned; ``compensable`` when a Compensate state may undo it."""

    task_id: str
    result: JSON
    compensable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed(_Details):
    """A task's activity failed (``heartbeat_details``: its last checkpoint)."""

    OMITTED: ClassVar[frozenset[str]] = frozenset({"heartbeat_details"})
    task_id: str
    error: str
    cause: str
    heartbeat_details: JSON = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskTimedOut(_Details):
    """A task ran past its timeout or missed a heartbeat (``heartbeat_details`` as above)."""

    OMITTED: ClassVar[frozenset[str]] = frozenset({"heartbeat_details"})
    task_id: str
    error: str
    cause: str
    heartbeat_details: JSON = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(_Details):
    """A failed state will run again after ``delay`` seconds, by rule ``retrier``."""

    retrier: str
    retry: int
    delay: float
    error: str
    cause: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerStarted(_Details):
    """A durable timer: ``purpose`` is wait, retry, execution or a callback's timeout."""

    timer_id: str
    due: float
    purpose: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired(_Details):
    """A timer came due."""

    timer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerCancelled(_Details):
    """A timer is no longer needed."""

    timer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalReceived(_Details):
    """A signal arrived; it waits until a Wait consumes it."""

    name: str
    payload: JSON = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalConsumed(_Details):
    """A Wait took the signal received at seq ``signal``."""

    signal: int
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BranchStarted(_Details):
    """A Parallel branch or a Map item started."""

    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BranchSucceeded(_Details):
    """A Parallel branch or a Map item ended with ``output``."""

    index: int
    output: JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class BranchFailed(_Details):
    """A Parallel branch or a Map item failed, and with it the state."""

    index: int
    error: str
    cause: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BranchesCancelled(_Details):
    """Every running branch of the state is stopped."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationScheduled(_Details):
    """A Compensate state will undo these completions, in this order."""

    steps: list[JSON]
    """``{seq, state}`` of each completion."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionSucceeded(_Details):
    """The run ended with ``output``."""

    output: JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionFailed(_Details):
    """The run failed."""

    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionTimedOut(_Details):
    """The run passed its TimeoutSeconds."""

    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionCancelled(_Details):
    """The run was cancelled; ``output`` when an OnCancel path ran to its end."""

    OMITTED: ClassVar[frozenset[str]] = frozenset({"output"})
    error: str | None = None
    reason: str | None = None
    output: JSON = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinuedAsNew(_Details):
    """The run ended to start the next with ``input``, on ``version`` (same | latest)."""

    input: JSON
    version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildStarted(_Details):
    """A Task started a child execution (``version`` None: the newest)."""

    child_id: str
    workflow: str
    version: int | None
    input: JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildClosed(_Details):
    """A child execution closed with ``status``."""

    child_id: str
    status: str
    output: JSON = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackAwaited(_Details):
    """A callback task's activity ran: its token now waits for an outside system."""

    task_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackHeartbeat(_Details):
    """An outside system says a callback task is still being worked on."""

    task_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRedriven(_Details):
    """A failed or timed-out run goes on at ``state``."""

    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRequested(_Details):
    """The run was cancelled and goes on at OnCancel ``state``; work in flight stops."""

    reason: str
    state: str


Payload: TypeAlias = (
    ExecutionStarted
    | StateEntered
    | StateExited
    | TaskScheduled
    | TaskStarted
    | TaskSucceeded
    | TaskFailed
    | TaskTimedOut
    | RetryScheduled
    | TimerStarted
    | TimerFired
    | TimerCancelled
    | SignalReceived
    | SignalConsumed
    | BranchStarted
    | BranchSucceeded
    | BranchFailed
    | BranchesCancelled
    | CompensationScheduled
    | ExecutionSucceeded
    | ExecutionFailed
    | ExecutionTimedOut
    | ExecutionCancelled
    | ContinuedAsNew
    | ChildStarted
    | ChildClosed
    | CallbackAwaited
    | CallbackHeartbeat
    | ExecutionRedriven
    | CancelRequested
)
"""What one event says happened."""

_TYPES: dict[str, type[Payload]] = {cls.__name__: cls for cls in typing.get_args(Payload)}
"""Each payload class by the type name it is stored under."""


def read(type_: str, details: dict[str, JSON]) -> Payload:
    """The payload of a stored event.

    Details an older version left out take their field's default, and ones no field reads
    are ignored, as ``evolve`` did when it read the details themselves.
    """
    cls = _TYPES.get(type_)
    if cls is None:
        raise ValueError(f"unknown event type {type_!r}")
    # Stored details are trusted to have the types the payload that wrote them had.
    known: dict[str, Any] = {name: details[name] for name, _ in _fields(cls) if name in details}
    try:
        return cls(**known)
    except TypeError as exc:
        raise ValueError(f"{type_} details {details!r} lack a field: {exc}") from None


CLOSING: dict[type[Payload], str] = {
    ExecutionSucceeded: "SUCCEEDED",
    ExecutionFailed: "FAILED",
    ExecutionTimedOut: "TIMED_OUT",
    ExecutionCancelled: "CANCELLED",
    ContinuedAsNew: "CONTINUED",
}
"""The events that close an execution, and the status each leaves it in."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One entry of an execution's history: where and when, and what (``payload``)."""

    seq: int
    time: float
    payload: Payload
    scope: str = ""
    state: str | None = None
    run: int = 1
    """Which run of the execution (ContinueAsNew starts the next one, numbering from 1)."""

    @property
    def type(self) -> str:
        """The event type, as stored: the payload's class name."""
        return type(self.payload).__name__

    @property
    def details(self) -> dict[str, JSON]:
        """The payload's fields, as stored."""
        return self.payload.details()
