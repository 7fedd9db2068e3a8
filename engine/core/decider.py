"""``decide``: given a definition, a folded state and a command, the events that follow.

Pure: no I/O, no clock, no randomness.  The time comes in as ``now``; ids are derived from
the execution id and event sequence numbers; retry jitter is a hash of the idempotency key.
Pure transitions (Pass, Choice, entering a Wait, fanning out a Parallel or Map, Succeed,
Fail) run here to completion, so one command yields every event up to the next point where
the execution must wait for a task, a timer or a signal.  The shell stores those events,
and the tasks and timers they create, in one transaction.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cairn.core import dataflow, events, model, names
from cairn.core import state as st
from cairn.core.expressions import DataError, truthy
from cairn.jsontypes import JSON

CALLBACK_TIMERS = ("callback_timeout", "callback_heartbeat")

_NO_CONTEXT: dict[str, JSON] = {}
"""The context handed to states that never read it (building it costs a good part of a step)."""

HISTORY_LIMIT = 25_000
"""Events one run may hold by default; a longer run fails and should use ContinueAsNew."""

MAX_STEPS = 10_000
"""Transitions one command may cause; more means a loop of pure states that never waits."""

MAX_RETRY_DELAY = 366 * 86400.0
"""The longest retry back-off: past it a timer's due time would stop being a date."""

COMPENSATION_RETRY = model.Retrier(
    errors=(names.ALL,), interval=1.0, backoff_rate=2.0, max_attempts=10, max_delay=300.0
)
"""Undo steps retry with back-off by default: an undo that gives up early leaves a mess."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The events a command caused and the state they lead to."""

    events: tuple[events.Event, ...]
    state: st.Execution


def decide(
    definition: model.Definition,
    state: st.Execution,
    command: events.Command,
    now: float,
    *,
    history_limit: int = HISTORY_LIMIT,
) -> Decision:
    """The consequences of ``command``: the new events and the state they lead to."""
    step = _Step(definition, state, now)
    step.handle(command)
    if not step.state.closed and step.state.seq > history_limit:
        step.emit(
            events.EXECUTION_FAILED,
            error=names.HISTORY_LIMIT_EXCEEDED,
            cause=f"this run has {step.state.seq} events, over the limit of {history_limit}; "
            "end long loops with a ContinueAsNew state to go on in a fresh history",
        )
    return Decision(events=tuple(step.events), state=step.state)


def backoff(retrier: model.Retrier, retry: int, seed: str) -> float:
    """Delay before retry number ``retry`` (from 0): interval * rate^retry, capped, jittered."""
    try:
        delay = retrier.interval * retrier.backoff_rate**retry
    except OverflowError:
        # "MaxAttempts: 100000, MaxDelaySeconds: 60" (retry for ever, a minute apart) passes
        # 2.0**1024 on the way; the cap is what counts.
        delay = MAX_RETRY_DELAY
    cap = MAX_RETRY_DELAY if retrier.max_delay is None else float(retrier.max_delay)
    delay = min(delay, cap, MAX_RETRY_DELAY)
    if retrier.full_jitter:
        digest = hashlib.sha256(f"{seed}:{retry}".encode()).digest()
        delay *= int.from_bytes(digest[:8], "big") / 2**64
    return delay


def matches(equals: tuple[str, ...], error: str) -> bool:
    """Whether an ErrorEquals list covers ``error``; States.Runtime is never covered."""
    if error == names.RUNTIME:
        return False
    if error in equals or names.ALL in equals:
        return True
    # A missed heartbeat is a kind of timeout: Step Functions reported it as States.Timeout
    # before States.HeartbeatTimeout existed, and a `States.Timeout` rule still covers it.
    if error == names.HEARTBEAT_TIMEOUT and names.TIMEOUT in equals:
        return True
    return names.TASK_FAILED in equals and error not in (names.TIMEOUT, names.HEARTBEAT_TIMEOUT)


def iso(timestamp: float | None) -> str | None:
    """An epoch time as RFC 3339 UTC text, as the context object shows times."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat().replace("+00:00", "Z")


class _Step:
    """The working memory of one ``decide`` call: appends events and folds them as it goes."""

    def __init__(self, definition: model.Definition, state: st.Execution, now: float) -> None:
        self.definition = definition
        self.state = state
        self.now = now
        self.events: list[events.Event] = []
        self.agenda: deque[tuple[str, str, JSON, int]] = deque()
        self.cancelled: list[tuple[str, int]] = []

    # -- plumbing -------------------------------------------------------------------------
    def emit(self, type_: str, scope: str = "", name: str | None = None, /, **details: Any) -> None:
        # Positional-only, so that details may themselves be called ``name`` or ``scope``
        # (a signal's name is a detail; the state it concerns is ``name``).
        event = events.Event(
            seq=self.state.seq + 1,
            type=type_,
            time=self.now,
            scope=scope,
            state=name,
            details=details,
            run=details["run"] if type_ == events.EXECUTION_STARTED else self.state.run,
        )
        self.state = st.evolve(self.state, event)
        self.events.append(event)

    def next_id(self) -> str:
        """The id of what the next event creates: unique per execution run and event."""
        return f"{self.state.id}:{self.state.run}:{self.state.seq + 1}"

    def context(
        self, frame: st.Frame, key: str | None = None, item: tuple[int, JSON] | None = None
    ) -> dict[str, JSON]:
        if not self.definition.states[frame.state].uses_context:
            return _NO_CONTEXT
        s = self.state
        ctx: dict[str, JSON] = {
            "Execution": {
                "Id": s.id,
                "Name": s.id,
                "Input": s.input,
                "StartTime": iso(s.started_at),
            },
            "Workflow": {"Name": s.workflow, "Version": s.version},
            "State": {
                "Name": frame.state,
                "EnteredTime": iso(frame.entered_at),
                "RetryCount": frame.retry_count,
            },
        }
        if key is not None:
            ctx["Task"] = {"IdempotencyKey": key}
        if item is not None:
            ctx["Map"] = {"Item": {"Index": item[0], "Value": item[1]}}
        return ctx

    def spec(self, scope: str) -> tuple[st.Frame, model.State]:
        frame = self.state.frames[scope]
        return frame, self.definition.states[frame.state]

    def goto(self, scope: str, name: str, data: JSON) -> None:
        """Enter ``name`` once the current transition is done (no recursion through loops)."""
        self.agenda.append((scope, name, data, self.state.seq))

    def drain(self) -> None:
        steps = 0
        while self.agenda and not self.state.closed:
            scope, name, data, seq = self.agenda.popleft()
            if any(scope.startswith(p) and seq < at for p, at in self.cancelled):
                continue
            steps += 1
            if steps > MAX_STEPS:
                self.emit(
                    events.EXECUTION_FAILED,
                    error=names.RUNTIME,
                    cause=f"more than {MAX_STEPS} transitions without waiting for a task, "
                    "timer or signal (a loop of Pass/Choice states?)",
                )
                return
            self.enter(scope, name, data)

    # -- commands -------------------------------------------------------------------------
    def handle(self, command: events.Command) -> None:
        s = self.state
        if isinstance(command, events.Start):
            if s.status == "PENDING":
                self.start(command)
        elif isinstance(command, events.Redrive):
            if s.status in ("FAILED", "TIMED_OUT") and self.redrivable():
                self.redrive()
        elif s.status == "PENDING" or s.closed:
            # A history begins with ExecutionStarted: nothing is recorded before it.
            return
        else:
            self.dispatch(command)
        self.drain()

    def start(self, command: events.Start) -> None:
        d = self.definition
        self.emit(
            events.EXECUTION_STARTED,
            execution_id=command.execution_id,
            run=command.run,
            workflow=d.name,
            version=d.version,
            input=command.input,
        )
        if d.timeout is not None:
            self.start_timer("", None, self.now + d.timeout, "execution")
        # Recorded before the run moves: handed in one by one after it, a signal that ended
        # the run (a Wait, then another ContinueAsNew) left the ones after it unrecorded.
        for name, payload in command.signals:
            self.emit(events.SIGNAL_RECEIVED, name=name, payload=payload)
        if command.halt is not None:
            self.emit(events.EXECUTION_FAILED, error=names.RUNTIME, cause=command.halt)
            return
        self.goto("", d.machine.start_at, command.input)

    def dispatch(self, command: events.Command) -> None:
        tasks = self.state.tasks
        match command:
            case events.BeginTask(task_id=task_id, worker=worker):
                task = tasks.get(task_id)
                if task is not None:
                    self.emit(
                        events.TASK_STARTED,
                        task.scope,
                        task.state,
                        task_id=task_id,
                        worker=worker,
                        attempt=task.attempt,
                    )
            case events.CompleteTask(task_id=task_id, result=result, token=token):
                task = tasks.get(task_id)
                if task is None:
                    return
                if task.callback and not task.awaiting and not token:
                    self.await_callback(task)
                else:
                    self.end_callback(task)
                    self.task_succeeded(task, result)
            case events.FailTask(
                task_id=task_id,
                error=error,
                cause=cause,
                retryable=retry,
                heartbeat_details=details,
            ):
                if task_id in tasks:
                    task = tasks[task_id]
                    self.task_failed(task, events.TASK_FAILED, error, cause, retry, details)
            case events.TimeOutTask(
                task_id=task_id, error=error, cause=cause, heartbeat_details=details
            ):
                if task_id in tasks:
                    task = tasks[task_id]
                    self.task_failed(task, events.TASK_TIMED_OUT, error, cause, True, details)
            case events.Heartbeat(task_id=task_id):
                task = tasks.get(task_id)
                if task is not None and task.awaiting:
                    self.emit(events.CALLBACK_HEARTBEAT, task.scope, task.state, task_id=task_id)
                    self.restart_heartbeat(task)
            case events.CloseChild(child_id=child_id):
                child = self.state.children.get(child_id)
                if child is not None:
                    self.child_closed(child, command)
            case events.FireTimer(timer_id=timer_id):
                timer = self.state.timers.get(timer_id)
                if timer is not None:
                    self.timer_fired(timer)
            case events.Signal(name=name, payload=payload):
                self.emit(events.SIGNAL_RECEIVED, name=name, payload=payload)
                self.deliver_signals()
            case events.Cancel(reason=reason):
                self.cancel(reason or "cancelled")

    def cancel(self, reason: str) -> None:
        """Stop at once, or, with OnCancel, drop the work in flight and go on there."""
        target = self.definition.on_cancel
        if target is None or self.state.cancelling is not None:
            self.emit(events.EXECUTION_CANCELLED, error=names.CANCELLED, reason=reason)
            return
        top = self.state.frames.get("")
        data = top.input if top is not None else self.state.input
        self.emit(events.CANCEL_REQUESTED, reason=reason, state=target)
        self.goto("", target, data)

    def timer_fired(self, timer: st.Timer) -> None:
        self.emit(events.TIMER_FIRED, timer.scope, timer.state, timer_id=timer.id)
        if timer.purpose == "execution":
            timeout = self.definition.timeout
            self.emit(
                events.EXECUTION_TIMED_OUT,
                error=names.TIMEOUT,
                cause=f"the execution ran longer than its TimeoutSeconds ({timeout})",
            )
        elif timer.purpose == "wait":
            self.complete_state(timer.scope, None)
        elif timer.purpose in CALLBACK_TIMERS:
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
            self.task_failed(task, events.TASK_TIMED_OUT, error, cause)
        else:
            self.retry_now(timer.scope)

    # -- entering states ------------------------------------------------------------------
    def enter(self, scope: str, name: str, data: JSON) -> None:
        path = st.state_path(scope, name)
        entry = self.state.entries.get(path, 0) + 1
        self.emit(events.STATE_ENTERED, scope, name, input=data, entry=entry)
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
                self.emit(events.STATE_EXITED, scope, spec.name, output=data)
                self.emit(events.CONTINUED_AS_NEW, input=data, version=spec.version)
            case _:
                raise AssertionError(f"unhandled state type {type(spec).__name__}")

    def leave(self, scope: str, spec: model.State, output: JSON, target: str | None) -> None:
        self.emit(events.STATE_EXITED, scope, spec.name, output=output)
        if target is None:
            self.end_scope(scope, output)
        else:
            self.goto(scope, target, output)

    def complete_state(self, scope: str, result: JSON) -> None:
        """A Task, Wait, Parallel or Map has its result: apply the data flow and move on."""
        frame, spec = self.spec(scope)
        try:
            output = dataflow.state_output(spec, frame.input, result, self.context(frame))
        except DataError as exc:
            self.fail_state(scope, names.RUNTIME, str(exc))
            return
        self.leave(scope, spec, output, spec.next)

    def end_scope(self, scope: str, output: JSON) -> None:
        """A scope reached its end: the execution succeeds, or a branch hands on its output."""
        if not scope:
            if self.state.cancelling is not None:
                reason = self.state.cancelling
                self.emit(
                    events.EXECUTION_CANCELLED, error=names.CANCELLED, reason=reason, output=output
                )
            else:
                self.emit(events.EXECUTION_SUCCEEDED, output=output)
            return
        parent_scope, index = st.parent_of(scope)
        parent, spec = self.spec(parent_scope)
        self.emit(events.BRANCH_SUCCEEDED, parent_scope, parent.state, index=index, output=output)
        if isinstance(spec, model.Map):
            self.fill_map(parent_scope, spec, self.map_items(parent_scope, parent, spec))
        self.complete_if_done(parent_scope)

    # -- tasks ----------------------------------------------------------------------------
    def key_base(self) -> str:
        """The execution id, and after a ContinueAsNew the run: idempotency keys and child ids
        begin with it.  Entry counts and sequence numbers start again in every run, so without
        the run a later run's new work would pass for a repeat of the first run's."""
        s = self.state
        return s.id if s.run <= 1 else f"{s.id}#{s.run}"

    def task_key(self, scope: str, frame: st.Frame) -> str:
        return f"{self.key_base()}:{st.state_path(scope, frame.state)}:{frame.entry}"

    def schedule(self, scope: str, frame: st.Frame, spec: model.Task) -> None:
        key = self.task_key(scope, frame)
        data = dataflow.effective_input(spec, frame.input, self.context(frame, key))
        if spec.workflow is not None:
            name, _, version = spec.workflow.partition("@")
            self.emit(
                events.CHILD_STARTED,
                scope,
                spec.name,
                child_id=f"{key}:{frame.retry_count + 1}",
                workflow=name,
                version=int(version) if version else None,
                input=data,
            )
            return
        assert spec.activity is not None
        self.emit(
            events.TASK_SCHEDULED,
            scope,
            spec.name,
            task_id=self.next_id(),
            activity=spec.activity,
            input=data,
            attempt=frame.retry_count + 1,
            key=key,
            queue=spec.queue,
            timeout=spec.timeout,
            heartbeat=spec.heartbeat,
            **({"callback": True} if spec.callback else {}),
            **_checkpoint(frame.checkpoint),
        )

    def task_succeeded(self, task: st.Task, result: JSON) -> None:
        spec = self.definition.states[task.state]
        compensable = (
            task.compensates is None
            and isinstance(spec, model.Task)
            and spec.compensate is not None
        )
        self.emit(
            events.TASK_SUCCEEDED,
            task.scope,
            task.state,
            task_id=task.id,
            result=result,
            compensable=compensable,
        )
        if task.compensates is not None:
            self.continue_compensation(task.scope)
        else:
            self.complete_state(task.scope, result)

    def task_failed(
        self,
        task: st.Task,
        kind: str,
        error: str,
        cause: str,
        retryable: bool = True,
        checkpoint: JSON = None,
    ) -> None:
        """A task failed or timed out: record it (with the last heartbeat details it left,
        for the next attempt), then retry, catch or fail its state."""
        self.end_callback(task)
        self.emit(
            kind,
            task.scope,
            task.state,
            task_id=task.id,
            error=error,
            cause=cause,
            **_checkpoint(checkpoint),
        )
        self.fail_state(task.scope, error, cause, retryable=retryable)

    # -- callbacks ------------------------------------------------------------------------
    def await_callback(self, task: st.Task) -> None:
        """The activity of a callback task has run: wait for its token to be completed."""
        self.emit(events.CALLBACK_AWAITED, task.scope, task.state, task_id=task.id)
        if task.timeout is not None:
            self.start_timer(task.scope, task.state, self.now + task.timeout, "callback_timeout")
        self.restart_heartbeat(task)

    def restart_heartbeat(self, task: st.Task) -> None:
        self.cancel_timers(task.scope, ("callback_heartbeat",))
        if task.heartbeat is not None:
            due = self.now + task.heartbeat
            self.start_timer(task.scope, task.state, due, "callback_heartbeat")

    def end_callback(self, task: st.Task) -> None:
        if task.awaiting:
            self.cancel_timers(task.scope, CALLBACK_TIMERS)

    def cancel_timers(self, scope: str, purposes: tuple[str, ...]) -> None:
        for timer in list(self.state.timers.values()):
            if timer.scope == scope and timer.purpose in purposes:
                self.emit(events.TIMER_CANCELLED, scope, timer.state, timer_id=timer.id)

    # -- child workflows ------------------------------------------------------------------
    def child_closed(self, child: st.Child, closed: events.CloseChild) -> None:
        self.emit(
            events.CHILD_CLOSED,
            child.scope,
            child.state,
            child_id=child.id,
            status=closed.status,
            output=closed.output,
            error=closed.error,
            cause=closed.cause,
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
        self.emit(events.EXECUTION_REDRIVEN, state=self.state.resume.state)
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

    # -- failure, retry and catch ---------------------------------------------------------
    def fail_state(self, scope: str, error: str, cause: str, *, retryable: bool = True) -> None:
        """A state failed: retry it, catch the error, or fail its scope."""
        frame, spec = self.spec(scope)
        if retryable and self.try_retry(scope, frame, spec, error, cause):
            return
        for catcher in spec.catch:
            if matches(catcher.errors, error):
                try:
                    output = dataflow.place(
                        frame.input, catcher.result_path, {"Error": error, "Cause": cause}
                    )
                except DataError as exc:
                    error, cause = names.RUNTIME, str(exc)
                    break
                self.emit(events.STATE_EXITED, scope, spec.name, output=output, error=error)
                self.goto(scope, catcher.next, output)
                return
        self.fail_scope(scope, error, cause)

    def try_retry(
        self, scope: str, frame: st.Frame, spec: model.State, error: str, cause: str
    ) -> bool:
        rules: tuple[model.Retrier, ...] = spec.retry
        prefix = ""
        if isinstance(spec, model.Compensate):
            step = self.pending_compensations(scope)[0]
            compensation = self.compensation_of(step)
            rules = compensation.retry or (COMPENSATION_RETRY,)
            prefix = f"{step.seq}."
        for index, rule in enumerate(rules):
            if not matches(rule.errors, error):
                continue
            retries = frame.retries.get(f"{prefix}{index}", 0)
            if retries >= rule.max_attempts:
                return False
            delay = backoff(rule, retries, self.task_key(scope, frame))
            self.emit(
                events.RETRY_SCHEDULED,
                scope,
                spec.name,
                retrier=f"{prefix}{index}",
                retry=retries + 1,
                delay=delay,
                error=error,
                cause=cause,
            )
            self.start_timer(scope, spec.name, self.now + delay, "retry")
            return True
        return False

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

    def fail_scope(self, scope: str, error: str, cause: str) -> None:
        """Nothing in this scope handles the error: it fails the enclosing state or the run."""
        if not scope:
            self.emit(events.EXECUTION_FAILED, error=error, cause=cause)
            return
        parent_scope, index = st.parent_of(scope)
        parent = self.state.frames[parent_scope]
        self.emit(
            events.BRANCH_FAILED, parent_scope, parent.state, index=index, error=error, cause=cause
        )
        self.emit(events.BRANCHES_CANCELLED, parent_scope, parent.state)
        self.cancelled.append((st.branch_prefix(parent_scope, parent.state), self.state.seq))
        self.fail_state(parent_scope, error, cause, retryable=error != names.RUNTIME)

    # -- timers, waits and signals --------------------------------------------------------
    def start_timer(self, scope: str, name: str | None, due: float, purpose: str) -> None:
        self.emit(
            events.TIMER_STARTED, scope, name, timer_id=self.next_id(), due=due, purpose=purpose
        )

    def begin_wait(self, scope: str, frame: st.Frame, spec: model.Wait) -> None:
        if spec.signal is not None:
            pending = next((s for s in self.state.signals if s.name == spec.signal), None)
            if pending is not None:
                self.consume_signal(scope, pending)
                return
        ctx = self.context(frame)
        data = dataflow.select_input(spec, frame.input, ctx)
        due = _wait_until(spec, data, ctx, self.now)
        if due is not None:
            self.start_timer(scope, spec.name, due, "wait")

    def deliver_signals(self) -> None:
        for scope, frame in list(self.state.frames.items()):
            spec = self.definition.states[frame.state]
            if isinstance(spec, model.Wait) and spec.signal is not None:
                pending = next((s for s in self.state.signals if s.name == spec.signal), None)
                if pending is not None:
                    self.consume_signal(scope, pending)

    def consume_signal(self, scope: str, signal: st.PendingSignal) -> None:
        frame, spec = self.spec(scope)
        self.emit(events.SIGNAL_CONSUMED, scope, spec.name, signal=signal.seq, name=signal.name)
        if frame.timer is not None:
            self.emit(events.TIMER_CANCELLED, scope, spec.name, timer_id=frame.timer)
        self.complete_state(scope, {"signal": signal.name, "payload": signal.payload})

    # -- Parallel and Map -----------------------------------------------------------------
    def start_branches(self, scope: str, frame: st.Frame, spec: model.Parallel | model.Map) -> None:
        """Start the branches (or items) that have no result yet; redrive relies on that."""
        if isinstance(spec, model.Parallel):
            data = dataflow.effective_input(spec, frame.input, self.context(frame))
            for index, branch in enumerate(spec.branches):
                if str(index) not in frame.results:
                    self.emit(events.BRANCH_STARTED, scope, spec.name, index=index)
                    self.goto(st.child_scope(scope, spec.name, index), branch.start_at, data)
            self.complete_if_done(scope)
            return
        items = self.map_items(scope, frame, spec)
        # Every item's input is made now, so a bad item fails the Map as it is entered: an
        # item started later (MaxConcurrency) is made again from the same values, and cannot
        # fail once a branch has ended and nothing is there to take the error.
        for index in range(len(items)):
            self.item_input(frame, spec, index, items)
        self.fill_map(scope, spec, items)
        self.complete_if_done(scope)

    def fill_map(self, scope: str, spec: model.Map, items: list[JSON]) -> None:
        """Start items, lowest index first, until MaxConcurrency of them are running."""
        frame = self.state.frames[scope]
        limit = spec.max_concurrency or len(items)
        running = sum(1 for i in frame.started if str(i) not in frame.results)
        begun = set(frame.started)
        for index in range(len(items)):
            if running >= limit:
                return
            if index not in begun:
                self.start_item(scope, spec, index, self.item_input(frame, spec, index, items))
                running += 1

    def complete_if_done(self, scope: str) -> None:
        """A Parallel or Map whose every branch has its result completes with the list."""
        frame, spec = self.spec(scope)
        if isinstance(spec, model.Map):
            total = len(self.map_items(scope, frame, spec))
        else:
            assert isinstance(spec, model.Parallel)
            total = len(spec.branches)
        if len(frame.results) == total:
            self.complete_state(scope, [frame.results[str(i)] for i in range(total)])

    def map_items(self, scope: str, frame: st.Frame, spec: model.Map) -> list[JSON]:
        ctx = self.context(frame)
        data = dataflow.select_input(spec, frame.input, ctx)
        items = spec.items_path.evaluate(data, ctx) if spec.items_path is not None else data
        if not isinstance(items, list):
            source = spec.items_path.source if spec.items_path else "@"
            raise DataError(f"ItemsPath {source!r} of {spec.name!r} is not an array")
        return items

    def item_input(self, frame: st.Frame, spec: model.Map, index: int, items: list[JSON]) -> JSON:
        """The input of item ``index``: the item itself, or what ItemSelector makes of it."""
        value = items[index]
        if spec.item_selector is None:
            return value
        ctx = self.context(frame, item=(index, value))
        data = dataflow.select_input(spec, frame.input, ctx)
        return spec.item_selector.evaluate(data, ctx)

    def start_item(self, scope: str, spec: model.Map, index: int, value: JSON) -> None:
        self.emit(events.BRANCH_STARTED, scope, spec.name, index=index)
        self.goto(st.child_scope(scope, spec.name, index), spec.processor.start_at, value)

    # -- compensation (sagas) -------------------------------------------------------------
    def pending_compensations(self, scope: str) -> list[st.Completion]:
        return [
            c
            for c in reversed(self.state.completions)
            if not c.compensated and st.within(c.scope, scope)
        ]

    def compensation_of(self, completion: st.Completion) -> model.Compensation:
        spec = self.definition.states[completion.state]
        assert isinstance(spec, model.Task) and spec.compensate is not None
        return spec.compensate

    def begin_compensation(self, scope: str, frame: st.Frame, spec: model.Compensate) -> None:
        steps = [{"seq": c.seq, "state": c.state} for c in self.pending_compensations(scope)]
        self.emit(events.COMPENSATION_SCHEDULED, scope, spec.name, steps=steps)
        self.continue_compensation(scope)

    def continue_compensation(self, scope: str) -> None:
        frame, spec = self.spec(scope)
        pending = self.pending_compensations(scope)
        if not pending:
            self.leave(scope, spec, frame.input, spec.next)
            return
        step = pending[0]
        compensation = self.compensation_of(step)
        data: JSON = {"input": step.input, "result": step.result}
        if compensation.parameters is not None:
            try:
                data = compensation.parameters.evaluate(data, self.context(frame))
            except DataError as exc:
                # Reached from a task's completion too, where no caller turns it into an error.
                self.fail_state(scope, names.RUNTIME, str(exc))
                return
        retries = sum(v for k, v in frame.retries.items() if k.startswith(f"{step.seq}."))
        self.emit(
            events.TASK_SCHEDULED,
            scope,
            spec.name,
            task_id=self.next_id(),
            activity=compensation.activity,
            input=data,
            attempt=retries + 1,
            key=f"{self.key_base()}:{st.state_path(step.scope, step.state)}:undo:{step.seq}",
            queue=compensation.queue,
            timeout=compensation.timeout,
            heartbeat=None,
            compensates=step.seq,
        )


def _checkpoint(details: JSON) -> dict[str, JSON]:
    """Heartbeat details for an event, when there are any (most tasks never leave one)."""
    return {} if details is None else {"heartbeat_details": details}


def _text(expression: Any, data: JSON, ctx: Mapping[str, JSON]) -> str | None:
    if expression is None:
        return None
    value = expression.evaluate(data, ctx)
    return None if value is None else str(value)


def _wait_until(spec: model.Wait, data: JSON, ctx: Mapping[str, JSON], now: float) -> float | None:
    if spec.seconds is not None:
        return now + spec.seconds
    if spec.timestamp is not None:
        return _parse_time(spec.timestamp, spec.name)
    if spec.seconds_path is not None:
        seconds = spec.seconds_path.evaluate(data, ctx)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise DataError(
                f"SecondsPath {spec.seconds_path.source!r} of {spec.name!r} gave {seconds!r}, "
                "not a number of seconds"
            )
        return now + seconds
    if spec.timestamp_path is not None:
        value = spec.timestamp_path.evaluate(data, ctx)
        if not isinstance(value, str):
            raise DataError(
                f"TimestampPath {spec.timestamp_path.source!r} of {spec.name!r} gave {value!r}, "
                "not a timestamp"
            )
        return _parse_time(value, spec.name)
    return None


def _parse_time(text: str, name: str) -> float:
    try:
        # RFC 3339 allows a lower-case "t" and "z"; fromisoformat accepts neither "z" nor "Z"
        # before Python 3.11.
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise DataError(f"Wait {name!r}: {text!r} is not an RFC 3339 timestamp") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
