"""The folded state of one execution run: frames, tasks, timers, signals, completions.

``evolve`` builds it from events; the shell stores it as a snapshot (``to_json``) next to
the history it is the fold of.  States are immutable: ``replace`` copies a record with
some fields changed, and leaves the rest shared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cairn.jsontypes import JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One active state in one scope: where a thread of control stands and what it carries."""

    scope: str
    state: str
    input: JSON
    entered_at: float
    entry: int
    retries: Mapping[str, int] = field(default_factory=dict)
    task: str | None = None
    timer: str | None = None
    results: Mapping[str, JSON] = field(default_factory=dict)
    started: tuple[int, ...] = ()
    """Parallel branches or Map items started (by index); those without a result still run."""
    checkpoint: JSON = None
    """The last heartbeat details of a failed or timed-out attempt: the next attempt's start."""

    @property
    def retry_count(self) -> int:
        return sum(self.retries.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """A task waiting for, or held by, a worker."""

    id: str
    scope: str
    state: str
    activity: str
    input: JSON
    attempt: int
    key: str
    queue: str
    timeout: int | None = None
    heartbeat: int | None = None
    compensates: int | None = None
    worker: str | None = None
    callback: bool = False
    awaiting: bool = False
    """A callback task whose activity has run: it now waits for ``cairn complete``."""
    heartbeat_details: JSON = None
    """Where an earlier attempt left off (its last heartbeat), handed to this one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Child:
    """A child execution a Task started and waits for."""

    id: str
    scope: str
    state: str
    workflow: str
    version: int | None
    input: JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class Timer:
    """A durable timer: a Wait, a retry back-off or the execution's timeout."""

    id: str
    scope: str
    state: str | None
    due: float
    purpose: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """A completed Task with an undo step, kept until a Compensate state runs it."""

    seq: int
    scope: str
    state: str
    input: JSON
    result: JSON
    compensated: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingSignal:
    """A signal that arrived and that no Wait has consumed yet."""

    seq: int
    name: str
    payload: JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """The fold of one run's history."""

    id: str = ""
    run: int = 0
    workflow: str = ""
    version: int = 0
    status: str = "PENDING"
    input: JSON = None
    output: JSON = None
    error: str | None = None
    cause: str | None = None
    started_at: float | None = None
    closed_at: float | None = None
    seq: int = 0
    frames: Mapping[str, Frame] = field(default_factory=dict)
    tasks: Mapping[str, Task] = field(default_factory=dict)
    timers: Mapping[str, Timer] = field(default_factory=dict)
    signals: tuple[PendingSignal, ...] = ()
    completions: tuple[Completion, ...] = ()
    entries: Mapping[str, int] = field(default_factory=dict)
    children: Mapping[str, Child] = field(default_factory=dict)
    resume: Frame | None = None
    """Where a failed or timed-out run stopped (its top-level frame): where redrive resumes."""
    continue_version: str | None = None
    """After ContinueAsNew: which definition the next run uses (``same`` or ``latest``)."""
    cancelling: str | None = None
    """Why the execution was cancelled while its OnCancel path runs; it ends CANCELLED."""

    @property
    def closed(self) -> bool:
        return self.status not in ("PENDING", "RUNNING")


def initial_state() -> Execution:
    """The state before the first event."""
    return Execution()


def state_path(scope: str, state: str) -> str:
    """The unique address of a state within an execution: its scope, then its name."""
    return f"{scope}/{state}" if scope else state


def child_scope(scope: str, state: str, index: int) -> str:
    """The scope of branch (or Map item) ``index`` of ``state``."""
    return f"{state_path(scope, state)}[{index}]"


def parent_of(scope: str) -> tuple[str, int]:
    """The scope holding the Parallel/Map state of a branch scope, and the branch index."""
    head, _, last = scope.rpartition("/")
    return head, int(last[last.rindex("[") + 1 : -1])


def within(scope: str, outer: str) -> bool:
    """Whether ``scope`` is ``outer`` or nested inside it."""
    return not outer or scope == outer or scope.startswith(outer + "/")


def branch_prefix(scope: str, state: str) -> str:
    """The prefix shared by every scope nested in the branches of ``state``."""
    return state_path(scope, state) + "["


# -- snapshot (de)serialisation --------------------------------------------------------------

_NESTED: dict[str, type[Any]] = {
    "frames": Frame,
    "tasks": Task,
    "timers": Timer,
    "children": Child,
}


def to_json(state: Execution) -> dict[str, Any]:
    """The snapshot form of a state: plain JSON, stable for comparison."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if f.name == "resume":
            value = None if value is None else record(value)
        elif f.name in _NESTED:
            value = {k: record(v) for k, v in value.items()}
        elif f.name in ("signals", "completions"):
            value = [record(v) for v in value]
        elif f.name == "entries":
            value = dict(value)
        out[f.name] = value
    return out


def from_json(data: Mapping[str, Any]) -> Execution:
    """Rebuild a state from its snapshot form."""
    fields: dict[str, Any] = dict(data)
    for name, cls in _NESTED.items():
        fields[name] = {k: cls(**v) for k, v in data[name].items()}
    fields["frames"] = {k: _frame(v) for k, v in data["frames"].items()}
    fields["resume"] = None if data["resume"] is None else _frame(data["resume"])
    fields["signals"] = tuple(PendingSignal(**s) for s in data["signals"])
    fields["completions"] = tuple(Completion(**c) for c in data["completions"])
    return Execution(**fields)


def _frame(data: Mapping[str, Any]) -> Frame:
    return Frame(**{**data, "started": tuple(data["started"])})


def record(value: Any) -> dict[str, Any]:
    """A state record (frame, task, timer...) as plain JSON fields."""
    return {name: getattr(value, name) for name in _names(type(value))}


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


R = TypeVar("R")


def replace(value: R, **changes: object) -> R:
    """``dataclasses.replace`` without its checks: evolve runs it for every event.

    The records here are frozen, slotted dataclasses without ``__post_init__``, so copying
    the fields and setting the changed ones is all there is to it.
    """
    cls = type(value)
    new = object.__new__(cls)
    for name in _names(cls):
        object.__setattr__(new, name, changes[name] if name in changes else getattr(value, name))
    return new
