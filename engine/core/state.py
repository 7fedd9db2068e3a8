"""The folded state of one execution run, and ``evolve``, the fold step.

``evolve`` applies one event mechanically and holds no business rules: every decision was
taken by ``decide`` and written into the event, so replaying a history always rebuilds
exactly the state that was stored as the snapshot.  States are immutable; ``evolve``
copies only what an event changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cairn.core import events
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


def evolve(state: Execution, event: events.Event) -> Execution:
    """Apply one event."""
    d = event.details
    match event.type:
        case events.EXECUTION_STARTED:
            return replace(
                state,
                id=d["execution_id"],
                run=d["run"],
                workflow=d["workflow"],
                version=d["version"],
                status="RUNNING",
                input=d["input"],
                started_at=event.time,
                seq=event.seq,
            )
        case events.STATE_ENTERED:
            frame = Frame(
                scope=event.scope,
                state=_name(event),
                input=d["input"],
                entered_at=event.time,
                entry=d["entry"],
            )
            path = state_path(event.scope, frame.state)
            return replace(
                state,
                seq=event.seq,
                frames={**state.frames, event.scope: frame},
                entries={**state.entries, path: d["entry"]},
            )
        case events.STATE_EXITED:
            return replace(state, seq=event.seq, frames=_without(state.frames, [event.scope]))
        case events.TASK_SCHEDULED:
            task = Task(
                id=d["task_id"],
                scope=event.scope,
                state=_name(event),
                activity=d["activity"],
                input=d["input"],
                attempt=d["attempt"],
                key=d["key"],
                queue=d["queue"],
                timeout=d.get("timeout"),
                heartbeat=d.get("heartbeat"),
                compensates=d.get("compensates"),
                callback=d.get("callback", False),
                heartbeat_details=d.get("heartbeat_details"),
            )
            state = _update_frame(state, event.scope, task=task.id)
            return replace(state, seq=event.seq, tasks={**state.tasks, task.id: task})
        case events.TASK_STARTED:
            task = replace(state.tasks[d["task_id"]], worker=d["worker"])
            return replace(state, seq=event.seq, tasks={**state.tasks, task.id: task})
        case events.TASK_SUCCEEDED:
            task = state.tasks[d["task_id"]]
            state = _finish_task(state, event)
            if task.compensates is not None:
                state = _mark_compensated(state, task.compensates)
            if d.get("compensable"):
                done = Completion(
                    seq=event.seq,
                    scope=event.scope,
                    state=task.state,
                    input=task.input,
                    result=d["result"],
                )
                state = replace(state, completions=(*state.completions, done))
            return state
        case events.TASK_FAILED | events.TASK_TIMED_OUT:
            if "heartbeat_details" in d and event.scope in state.frames:
                state = _update_frame(state, event.scope, checkpoint=d["heartbeat_details"])
            return _finish_task(state, event)
        case events.CALLBACK_AWAITED:
            task = replace(state.tasks[d["task_id"]], awaiting=True, worker=None)
            return replace(state, seq=event.seq, tasks={**state.tasks, task.id: task})
        case events.CHILD_STARTED:
            child = Child(
                id=d["child_id"],
                scope=event.scope,
                state=_name(event),
                workflow=d["workflow"],
                version=d["version"],
                input=d["input"],
            )
            return replace(state, seq=event.seq, children={**state.children, child.id: child})
        case events.CHILD_CLOSED:
            return replace(state, seq=event.seq, children=_without(state.children, [d["child_id"]]))
        case events.CANCEL_REQUESTED:
            return replace(
                state,
                seq=event.seq,
                cancelling=d["reason"],
                frames={},
                tasks={},
                timers={k: t for k, t in state.timers.items() if t.purpose == "execution"},
                children={},
            )
        case events.EXECUTION_REDRIVEN:
            assert state.resume is not None, "redrive of a run that did not stop"
            return replace(
                state,
                seq=event.seq,
                status="RUNNING",
                error=None,
                cause=None,
                closed_at=None,
                frames={"": _resumed(state.resume)},
                resume=None,
            )
        case events.RETRY_SCHEDULED:
            frame = state.frames[event.scope]
            key = str(d["retrier"])
            retries = {**frame.retries, key: frame.retries.get(key, 0) + 1}
            state = _update_frame(state, event.scope, retries=retries, results={}, started=())
            return replace(state, seq=event.seq)
        case events.TIMER_STARTED:
            timer = Timer(
                id=d["timer_id"],
                scope=event.scope,
                state=event.state,
                due=d["due"],
                purpose=d["purpose"],
            )
            if event.scope in state.frames and d["purpose"] in ("wait", "retry"):
                state = _update_frame(state, event.scope, timer=timer.id)
            return replace(state, seq=event.seq, timers={**state.timers, timer.id: timer})
        case events.TIMER_FIRED | events.TIMER_CANCELLED:
            waiting = state.frames.get(event.scope)
            if waiting is not None and waiting.timer == d["timer_id"]:
                state = _update_frame(state, event.scope, timer=None)
            return replace(state, seq=event.seq, timers=_without(state.timers, [d["timer_id"]]))
        case events.SIGNAL_RECEIVED:
            signal = PendingSignal(seq=event.seq, name=d["name"], payload=d["payload"])
            return replace(state, seq=event.seq, signals=(*state.signals, signal))
        case events.SIGNAL_CONSUMED:
            remaining = tuple(s for s in state.signals if s.seq != d["signal"])
            return replace(state, seq=event.seq, signals=remaining)
        case events.BRANCH_STARTED:
            frame = state.frames[event.scope]
            state = _update_frame(state, event.scope, started=(*frame.started, d["index"]))
            return replace(state, seq=event.seq)
        case events.BRANCH_SUCCEEDED:
            frame = state.frames[event.scope]
            results = {**frame.results, str(d["index"]): d["output"]}
            return replace(_update_frame(state, event.scope, results=results), seq=event.seq)
        case events.BRANCHES_CANCELLED:
            return replace(
                _drop_nested(state, branch_prefix(event.scope, _name(event))), seq=event.seq
            )
        case events.BRANCH_FAILED | events.COMPENSATION_SCHEDULED | events.CALLBACK_HEARTBEAT:
            return replace(state, seq=event.seq)
        case (
            events.EXECUTION_SUCCEEDED
            | events.EXECUTION_FAILED
            | events.EXECUTION_TIMED_OUT
            | events.EXECUTION_CANCELLED
            | events.CONTINUED_AS_NEW
        ):
            return replace(
                state,
                seq=event.seq,
                status=events.CLOSING[event.type],
                output=d.get("output", d.get("input")),
                error=d.get("error"),
                cause=d.get("cause", d.get("reason")),
                closed_at=event.time,
                frames={},
                tasks={},
                timers={},
                children={},
                resume=state.frames.get("") if event.type in _REDRIVABLE else None,
                continue_version=d.get("version"),
            )
    raise ValueError(f"unknown event type {event.type!r}")


_REDRIVABLE = (events.EXECUTION_FAILED, events.EXECUTION_TIMED_OUT)


def fold(history: Iterable[events.Event]) -> Execution:
    """Rebuild a run's state from its history."""
    state = initial_state()
    for event in history:
        state = evolve(state, event)
    return state


def _name(event: events.Event) -> str:
    assert event.state is not None, f"{event.type} without a state"
    return event.state


def _without(mapping: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    drop = set(keys)
    return {k: v for k, v in mapping.items() if k not in drop}


def _update_frame(state: Execution, scope: str, **changes: Any) -> Execution:
    frame = replace(state.frames[scope], **changes)
    return replace(state, frames={**state.frames, scope: frame})


def _finish_task(state: Execution, event: events.Event) -> Execution:
    task_id = event.details["task_id"]
    frame = state.frames.get(event.scope)
    if frame is not None and frame.task == task_id:
        state = _update_frame(state, event.scope, task=None)
    return replace(state, seq=event.seq, tasks=_without(state.tasks, [task_id]))


def _mark_compensated(state: Execution, seq: int) -> Execution:
    completions = tuple(
        replace(c, compensated=True) if c.seq == seq else c for c in state.completions
    )
    return replace(state, completions=completions)


REDRIVES = "redrive"
"""The key of ``Frame.retries`` that counts redrives: each one is an attempt of its own."""


def _resumed(frame: Frame) -> Frame:
    """A stopped frame made ready to go on: no task or timer, unfinished branches not begun.

    The redrive counts as one more attempt, so the work it starts is told apart from the
    attempt that failed (a child workflow's id is made of the attempt number).
    """
    done = tuple(i for i in frame.started if str(i) in frame.results)
    retries = {**frame.retries, REDRIVES: frame.retries.get(REDRIVES, 0) + 1}
    return replace(frame, task=None, timer=None, started=done, retries=retries)


def _drop_nested(state: Execution, prefix: str) -> Execution:
    """Remove every frame, task and timer inside the branches that share ``prefix``."""
    return replace(
        state,
        frames={k: f for k, f in state.frames.items() if not k.startswith(prefix)},
        tasks={k: t for k, t in state.tasks.items() if not t.scope.startswith(prefix)},
        timers={k: t for k, t in state.timers.items() if not t.scope.startswith(prefix)},
        children={k: c for k, c in state.children.items() if not c.scope.startswith(prefix)},
    )


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


def replace(value: R, **changes: Any) -> R:
    """``dataclasses.replace`` without its checks: evolve runs it for every event.

    The records here are frozen, slotted dataclasses without ``__post_init__``, so copying
    the fields and setting the changed ones is all there is to it.
    """
    cls = type(value)
    new = object.__new__(cls)
    for name in _names(cls):
        object.__setattr__(new, name, changes[name] if name in changes else getattr(value, name))
    return new
