"""``decide``: given a definition, a folded state and a command, the events that follow.

Pure: no I/O, no clock, no randomness.  The time comes in as ``now``; ids are derived from
the execution id and event sequence numbers; retry jitter is a hash of the idempotency key.
Pure transitions (Pass, Choice, entering a Wait, fanning out a Parallel or Map, Succeed,
Fail) run here to completion, so one command yields every event up to the next point where
the execution must wait for a task, a timer or a signal.  The shell stores those events,
and the tasks and timers they create, in one transaction.

This module handles commands and enters states; what follows from each kind of state lives
in a module of its own, each building on the one before: ``step`` (the working memory),
``failures`` (retry and catch), ``scopes`` (leaving states, Parallel and Map), ``waits``,
``compensation`` and ``tasks``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cairn.core import commands, dataflow, events, model, names, tasks, waits
from cairn.core import state as st
from cairn.core.expressions import DataError, Expression, truthy
from cairn.jsontypes import JSON

HISTORY_LIMIT = 25_000
"""Events one run may hold by default; a longer run fails and should use ContinueAsNew."""

MAX_STEPS = 10_000
"""Transitions one command may cause; more means a loop of pure states that never waits."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The events a command caused and the state they lead to."""

    events: tuple[events.Event, ...]
    state: st.Execution


def decide(
    definition: model.Definition,
    state: st.Execution,
    command: commands.Command,
    now: float,
    *,
    history_limit: int = HISTORY_LIMIT,
) -> Decision:
    """The consequences of ``command``: the new events and the state they lead to."""
    call = _Step(definition, state, now)
    call.handle(command)
    if not call.state.closed and call.state.seq > history_limit:
        call.emit(
            events.ExecutionFailed(
                error=names.HISTORY_LIMIT_EXCEEDED,
                cause=f"this run has {call.state.seq} events, over the limit of {history_limit}; "
                "end long loops with a ContinueAsNew state to go on in a fresh history",
            )
        )
    return Decision(events=tuple(call.events), state=call.state)


class _Step(tasks.Tasks, waits.Waits):
    """One ``decide`` call: handling the command, and entering each state it leads to."""

    def drain(self) -> None:
        steps = 0
        while self.agenda and not self.state.closed:
            scope, name, data, seq = self.agenda.popleft()
            if any(scope.startswith(p) and seq < at for p, at in self.cancelled):
                continue
            steps += 1
            if steps > MAX_STEPS:
                self.emit(
                    events.ExecutionFailed(
                        error=names.RUNTIME,
                        cause=f"more than {MAX_STEPS} transitions without waiting for a task, "
                        "timer or signal (a loop of Pass/Choice states?)",
                    )
                )
                return
            self.enter(scope, name, data)

    # -- commands -------------------------------------------------------------------------
    def handle(self, command: commands.Command) -> None:
        s = self.state
        if isinstance(command, commands.Start):
            if s.status == "PENDING":
                self.start(command)
        elif isinstance(command, commands.Redrive):
            if s.status in ("FAILED", "TIMED_OUT") and self.redrivable():
                self.redrive()
        elif s.status == "PENDING" or s.closed:
            # A history begins with ExecutionStarted: nothing is recorded before it.
            return
        else:
            self.dispatch(command)
        self.drain()

    def start(self, command: commands.Start) -> None:
        d = self.definition
        self.emit(
            events.ExecutionStarted(
                execution_id=command.execution_id,
                run=command.run,
                workflow=d.name,
                version=d.version,
                input=command.input,
            )
        )
        if d.timeout is not None:
            self.start_timer("", None, self.now + d.timeout, "execution")
        # Recorded before the run moves: handed in one by one after it, a signal that ended
        # the run (a Wait, then another ContinueAsNew) left the ones after it unrecorded.
        for name, payload in command.signals:
            self.emit(events.SignalReceived(name=name, payload=payload))
        if command.halt is not None:
            self.emit(events.ExecutionFailed(error=names.RUNTIME, cause=command.halt))
            return
        self.goto("", d.machine.start_at, command.input)

    def dispatch(self, command: commands.Command) -> None:
        tasks = self.state.tasks
        match command:
            case commands.BeginTask(task_id=task_id, worker=worker):
                task = tasks.get(task_id)
                if task is not None:
                    self.emit(
                        events.TaskStarted(task_id=task_id, worker=worker, attempt=task.attempt),
                        task.scope,
                        task.state,
                    )
            case commands.CompleteTask(task_id=task_id, result=result, token=token):
                task = tasks.get(task_id)
                if task is None:
                    return
                if task.callback and not task.awaiting and not token:
                    self.await_callback(task)
                else:
                    self.end_callback(task)
                    self.task_succeeded(task, result)
            case commands.FailTask(
                task_id=task_id,
                error=error,
                cause=cause,
                retryable=retry,
                heartbeat_details=details,
            ):
                if task_id in tasks:
                    task = tasks[task_id]
                    self.task_failed(task, events.TaskFailed, error, cause, retry, details)
            case commands.TimeOutTask(
                task_id=task_id, error=error, cause=cause, heartbeat_details=details
            ):
                if task_id in tasks:
                    task = tasks[task_id]
                    self.task_failed(task, events.TaskTimedOut, error, cause, True, details)
            case commands.Heartbeat(task_id=task_id):
                task = tasks.get(task_id)
                if task is not None and task.awaiting:
                    self.emit(events.CallbackHeartbeat(task_id=task_id), task.scope, task.state)
                    self.restart_heartbeat(task)
            case commands.CloseChild(child_id=child_id):
                child = self.state.children.get(child_id)
                if child is not None:
                    self.child_closed(child, command)
            case commands.FireTimer(timer_id=timer_id):
                timer = self.state.timers.get(timer_id)
                if timer is not None:
                    self.timer_fired(timer)
            case commands.Signal(name=name, payload=payload):
                self.emit(events.SignalReceived(name=name, payload=payload))
                self.deliver_signals()
            case commands.Cancel(reason=reason):
                self.cancel(reason or "cancelled")

    def cancel(self, reason: str) -> None:
        """Stop at once, or, with OnCancel, drop the work in flight and go on there."""
        target = self.definition.on_cancel
        if target is None or self.state.cancelling is not None:
            self.emit(events.ExecutionCancelled(error=names.CANCELLED, reason=reason))
            return
        top = self.state.frames.get("")
        data = top.input if top is not None else self.state.input
        self.emit(events.CancelRequested(reason=reason, state=target))
        self.goto("", target, data)

    def timer_fired(self, timer: st.Timer) -> None:
        self.emit(events.TimerFired(timer_id=timer.id), timer.scope, timer.state)
        if timer.purpose == "execution":
            timeout = self.definition.timeout
            self.emit(
                events.ExecutionTimedOut(
                    error=names.TIMEOUT,
                    cause=f"the execution ran longer than its TimeoutSeconds ({timeout})",
                )
            )
        elif timer.purpose == "wait":
            self.complete_state(timer.scope, None)
        elif timer.purpose in tasks.CALLBACK_TIMERS:
            frame = self.state.frames[timer.scope]
            assert frame.task is not None
            task = self.state.tasks[frame.task]
            if timer.purpose == "callback_timeout":
                error, cause = names.TIMEOUT, f"the token was not completed within {task.timeout}s"
            else:
                error, cause = (
                    names.HEARTBEAT_TIMEOUT,
                    f"no heartbeat for the token in {task.heartbeat}s",
                )
            self.task_failed(task, events.TaskTimedOut, error, cause)
        else:
            self.retry_now(timer.scope)

    # -- entering states ------------------------------------------------------------------
    def enter(self, scope: str, name: str, data: JSON) -> None:
        path = st.state_path(scope, name)
        entry = self.state.entries.get(path, 0) + 1
        self.emit(events.StateEntered(input=data, entry=entry), scope, name)
        frame, spec = self.spec(scope)
        try:
            self.run_state(scope, frame, spec)
        except DataError as exc:
            self.fail_state(scope, names.RUNTIME, str(exc))

    def run_state(self, scope: str, frame: st.Frame, spec: model.State) -> None:
        ctx = self.context(frame)
        match spec:
            case model.Pass():
                data = dataflow.effective_input(spec, frame.input, ctx)
                result = spec.result if spec.has_result else data
                output = dataflow.state_output(spec, frame.input, result, ctx)
                self.leave(scope, spec, output, spec.next)
            case model.Choice():
                data = dataflow.select_input(spec, frame.input, ctx)
                target = next(
                    (to for cond, to in spec.choices if truthy(cond.evaluate(data, ctx))),
                    spec.default,
                )
                if target is None:
                    self.fail_state(
                        scope, names.NO_CHOICE_MATCHED, f"no choice of {spec.name!r} matched"
                    )
                    return
                self.leave(scope, spec, dataflow.filter_output(spec, data, ctx), target)
            case model.Succeed():
                data = dataflow.select_input(spec, frame.input, ctx)
                self.leave(scope, spec, dataflow.filter_output(spec, data, ctx), None)
            case model.Fail():
                error = spec.error or _text(spec.error_path, frame.input, ctx) or names.FAILED
                cause = spec.cause or _text(spec.cause_path, frame.input, ctx) or ""
                self.fail_scope(scope, error, cause)
            case model.Task():
                self.schedule(scope, frame, spec)
            case model.Wait():
                self.begin_wait(scope, frame, spec)
            case model.Parallel() | model.Map():
                self.start_branches(scope, frame, spec)
            case model.Compensate():
                self.begin_compensation(scope, frame, spec)
            case model.ContinueAsNew():
                data = dataflow.effective_input(spec, frame.input, ctx)
                if scope:
                    self.fail_scope(
                        scope,
                        names.RUNTIME,
                        "ContinueAsNew ends a run: it cannot be "
                        "inside a Parallel branch or a Map item",
                    )
                    return
                self.emit(events.StateExited(output=data), scope, spec.name)
                self.emit(events.ContinuedAsNew(input=data, version=spec.version))
            case _:
                raise AssertionError(f"unhandled state type {type(spec).__name__}")

    # -- child workflows ------------------------------------------------------------------
    def child_closed(self, child: st.Child, closed: commands.CloseChild) -> None:
        self.emit(
            events.ChildClosed(
                child_id=child.id,
                status=closed.status,
                output=closed.output,
                error=closed.error,
                cause=closed.cause,
            ),
            child.scope,
            child.state,
        )
        if closed.status == "SUCCEEDED":
            self.complete_state(child.scope, closed.output)
        else:
            cause = f"child {child.id} {closed.status}: {closed.error}: {closed.cause}"
            self.fail_state(child.scope, names.CHILD_FAILED, cause)

    # -- redrive --------------------------------------------------------------------------
    def redrivable(self) -> bool:
        """Whether the run stopped somewhere it can go on from (not at a Fail state)."""
        resume = self.state.resume
        if resume is None:
            return False
        return not isinstance(self.definition.states[resume.state], model.Fail)

    def redrive(self) -> None:
        """Go on from the top-level state where the run stopped; finished work stays done."""
        assert self.state.resume is not None
        self.emit(events.ExecutionRedriven(state=self.state.resume.state))
        if self.definition.timeout is not None:
            self.start_timer("", None, self.now + self.definition.timeout, "execution")
        frame, spec = self.spec("")
        try:
            match spec:
                case model.Parallel() | model.Map():
                    self.start_branches("", frame, spec)
                case model.Compensate():
                    self.continue_compensation("")
                case _:
                    self.run_state("", frame, spec)
        except DataError as exc:
            self.fail_state("", names.RUNTIME, str(exc))

    def retry_now(self, scope: str) -> None:
        frame, spec = self.spec(scope)
        try:
            match spec:
                case model.Task():
                    self.schedule(scope, frame, spec)
                case model.Parallel() | model.Map():
                    self.start_branches(scope, frame, spec)
                case model.Compensate():
                    self.continue_compensation(scope)
        except DataError as exc:
            self.fail_state(scope, names.RUNTIME, str(exc))


def _text(expression: Expression | None, data: JSON, ctx: Mapping[str, JSON]) -> str | None:
    if expression is None:
        return None
    value = expression.evaluate(data, ctx)
    return None if value is None else str(value)
