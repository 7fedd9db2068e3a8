"""``evolve``, the fold step: one event applied to the state of a run, and ``fold``.

``evolve`` applies one event mechanically and holds no business rules: every decision was
taken by ``decide`` and written into the event, so replaying a history always rebuilds
exactly the state that was stored as the snapshot.  It copies only what an event changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NoReturn, TypeVar

from cairn.core import events
from cairn.core.state import (
    Child,
    Completion,
    Execution,
    Frame,
    PendingSignal,
    Task,
    Timer,
    branch_prefix,
    initial_state,
    replace,
    state_path,
)
from cairn.jsontypes import JSON


def evolve(state: Execution, event: events.Event) -> Execution:
    """Apply one event."""
    p = event.payload
    match p:
        case events.StateEntered():
            frame = Frame(
                scope=event.scope,
                state=_name(event),
                input=p.input,
                entered_at=event.time,
                entry=p.entry,
            )
            path = state_path(event.scope, frame.state)
            return replace(
                state,
                seq=event.seq,
                frames={**state.frames, event.scope: frame},
                entries={**state.entries, path: p.entry},
            )
        case events.StateExited():
            return replace(state, seq=event.seq, frames=_without(state.frames, [event.scope]))
        case events.TaskScheduled():
            task = Task(
                id=p.task_id,
                scope=event.scope,
                state=_name(event),
                activity=p.activity,
                input=p.input,
                attempt=p.attempt,
                key=p.key,
                queue=p.queue,
                timeout=p.timeout,
                heartbeat=p.heartbeat,
                compensates=p.compensates,
                callback=p.callback,
                heartbeat_details=p.heartbeat_details,
            )
            state = _update_frame(state, event.scope, task=task.id)
            return replace(state, seq=event.seq, tasks={**state.tasks, task.id: task})
        case events.TaskStarted():
            task = replace(state.tasks[p.task_id], worker=p.worker)
            return replace(state, seq=event.seq, tasks={**state.tasks, task.id: task})
        case events.TaskSucceeded():
            task = state.tasks[p.task_id]
            state = _finish_task(state, event, p.task_id)
            if task.compensates is not None:
                state = _mark_compensated(state, task.compensates)
            if p.compensable:
                done = Completion(
                    seq=event.seq,
                    scope=event.scope,
                    state=task.state,
                    input=task.input,
                    result=p.result,
                )
                state = replace(state, completions=(*state.completions, done))
            return state
        case events.TaskFailed() | events.TaskTimedOut():
            if p.heartbeat_details is not None and event.scope in state.frames:
                state = _update_frame(state, event.scope, checkpoint=p.heartbeat_details)
            return _finish_task(state, event, p.task_id)
        case events.CallbackAwaited():
            task = replace(state.tasks[p.task_id], awaiting=True, worker=None)
            return replace(state, seq=event.seq, tasks={**state.tasks, task.id: task})
        case events.ChildStarted():
            child = Child(
                id=p.child_id,
                scope=event.scope,
                state=_name(event),
                workflow=p.workflow,
                version=p.version,
                input=p.input,
            )
            return replace(state, seq=event.seq, children={**state.children, child.id: child})
        case events.ChildClosed():
            return replace(state, seq=event.seq, children=_without(state.children, [p.child_id]))
        case events.RetryScheduled():
            frame = state.frames[event.scope]
            key = p.retrier
            retries = {**frame.retries, key: frame.retries.get(key, 0) + 1}
            state = _update_frame(state, event.scope, retries=retries, results={}, started=())
            return replace(state, seq=event.seq)
        case events.TimerStarted():
            timer = Timer(
                id=p.timer_id,
                scope=event.scope,
                state=event.state,
                due=p.due,
                purpose=p.purpose,
            )
            if event.scope in state.frames and p.purpose in ("wait", "retry"):
                state = _update_frame(state, event.scope, timer=timer.id)
            return replace(state, seq=event.seq, timers={**state.timers, timer.id: timer})
        case events.TimerFired() | events.TimerCancelled():
            waiting = state.frames.get(event.scope)
            if waiting is not None and waiting.timer == p.timer_id:
                state = _update_frame(state, event.scope, timer=None)
            return replace(state, seq=event.seq, timers=_without(state.timers, [p.timer_id]))
        case events.SignalReceived():
            signal = PendingSignal(seq=event.seq, name=p.name, payload=p.payload)
            return replace(state, seq=event.seq, signals=(*state.signals, signal))
        case events.SignalConsumed():
            remaining = tuple(s for s in state.signals if s.seq != p.signal)
            return replace(state, seq=event.seq, signals=remaining)
        case events.BranchStarted():
            frame = state.frames[event.scope]
            state = _update_frame(state, event.scope, started=(*frame.started, p.index))
            return replace(state, seq=event.seq)
        case events.BranchSucceeded():
            frame = state.frames[event.scope]
            results = {**frame.results, str(p.index): p.output}
            return replace(_update_frame(state, event.scope, results=results), seq=event.seq)
        case events.BranchesCancelled():
            return replace(
                _drop_nested(state, branch_prefix(event.scope, _name(event))), seq=event.seq
            )
        case events.BranchFailed() | events.CompensationScheduled() | events.CallbackHeartbeat():
            return replace(state, seq=event.seq)
        case events.ExecutionStarted():
            return replace(
                state,
                id=p.execution_id,
                run=p.run,
                workflow=p.workflow,
                version=p.version,
                status="RUNNING",
                input=p.input,
                started_at=event.time,
                seq=event.seq,
            )
        case events.CancelRequested():
            return replace(
                state,
                seq=event.seq,
                cancelling=p.reason,
                frames={},
                tasks={},
                timers={k: t for k, t in state.timers.items() if t.purpose == "execution"},
                children={},
            )
        case events.ExecutionRedriven():
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
        case events.ExecutionSucceeded():
            return _close(state, event, output=p.output)
        case events.ExecutionFailed() | events.ExecutionTimedOut():
            return _close(state, event, error=p.error, cause=p.cause, resume=state.frames.get(""))
        case events.ExecutionCancelled():
            return _close(state, event, output=p.output, error=p.error, cause=p.reason)
        case events.ContinuedAsNew():
            return _close(state, event, output=p.input, continue_version=p.version)
        case _:
            assert_never(p)


def assert_never(value: NoReturn) -> NoReturn:
    """``typing.assert_never``, which Python 3.10 lacks: mypy fails where a case is missing."""
    raise AssertionError(f"unhandled: {value!r}")


def _close(
    state: Execution,
    event: events.Event,
    *,
    output: JSON = None,
    error: str | None = None,
    cause: str | None = None,
    resume: Frame | None = None,
    continue_version: str | None = None,
) -> Execution:
    """The run closed: nothing of it runs any more; a failed one keeps where it stopped."""
    return replace(
        state,
        seq=event.seq,
        status=events.CLOSING[type(event.payload)],
        output=output,
        error=error,
        cause=cause,
        closed_at=event.time,
        frames={},
        tasks={},
        timers={},
        children={},
        resume=resume,
        continue_version=continue_version,
    )


def fold(history: Iterable[events.Event]) -> Execution:
    """Rebuild a run's state from its history."""
    state = initial_state()
    for event in history:
        state = evolve(state, event)
    return state


def _name(event: events.Event) -> str:
    assert event.state is not None, f"{event.type} without a state"
    return event.state


V = TypeVar("V")


def _without(mapping: Mapping[str, V], keys: Iterable[str]) -> dict[str, V]:
    drop = set(keys)
    return {k: v for k, v in mapping.items() if k not in drop}


def _update_frame(state: Execution, scope: str, **changes: object) -> Execution:
    frame = replace(state.frames[scope], **changes)
    return replace(state, frames={**state.frames, scope: frame})


def _finish_task(state: Execution, event: events.Event, task_id: str) -> Execution:
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
