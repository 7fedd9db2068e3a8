"""Task states: scheduling the activity (or child workflow), its outcome, and callbacks.

A Task's work is a durable task row that a worker claims, or a child execution; its outcome
completes the state or fails it (then Retry and Catch apply).  A callback task, once its
activity has run, waits for its token to be completed, with timers for its timeout and
heartbeat.  An undo step is a task too: its success goes on with the compensation.
"""

from __future__ import annotations

from cairn.core import dataflow, events, model
from cairn.core import state as st
from cairn.core.compensation import Compensation
from cairn.jsontypes import JSON

CALLBACK_TIMERS = ("callback_timeout", "callback_heartbeat")


class Tasks(Compensation):
    """Scheduling tasks and child workflows, their outcomes, and callback tokens."""

    def schedule(self, scope: str, frame: st.Frame, spec: model.Task) -> None:
        key = self.task_key(scope, frame)
        data = dataflow.effective_input(spec, frame.input, self.context(frame, key))
        if spec.workflow is not None:
            name, _, version = spec.workflow.partition("@")
            self.emit(
                events.ChildStarted(
                    child_id=f"{key}:{frame.retry_count + 1}",
                    workflow=name,
                    version=int(version) if version else None,
                    input=data,
                ),
                scope,
                spec.name,
            )
            return
        assert spec.activity is not None
        self.emit(
            events.TaskScheduled(
                task_id=self.next_id(),
                activity=spec.activity,
                input=data,
                attempt=frame.retry_count + 1,
                key=key,
                queue=spec.queue,
                timeout=spec.timeout,
                heartbeat=spec.heartbeat,
                callback=spec.callback,
                heartbeat_details=frame.checkpoint,
            ),
            scope,
            spec.name,
        )

    def task_succeeded(self, task: st.Task, result: JSON) -> None:
        spec = self.definition.states[task.state]
        compensable = (
            task.compensates is None
            and isinstance(spec, model.Task)
            and spec.compensate is not None
        )
        self.emit(
            events.TaskSucceeded(task_id=task.id, result=result, compensable=compensable),
            task.scope,
            task.state,
        )
        if task.compensates is not None:
            self.continue_compensation(task.scope)
        else:
            self.complete_state(task.scope, result)

    def task_failed(
        self,
        task: st.Task,
        kind: type[events.TaskFailed | events.TaskTimedOut],
        error: str,
        cause: str,
        retryable: bool = True,
        checkpoint: JSON = None,
    ) -> None:
        """A task failed or timed out: record it (with the last heartbeat details it left,
        for the next attempt), then retry, catch or fail its state."""
        self.end_callback(task)
        self.emit(
            kind(task_id=task.id, error=error, cause=cause, heartbeat_details=checkpoint),
            task.scope,
            task.state,
        )
        self.fail_state(task.scope, error, cause, retryable=retryable)

    # -- callbacks ------------------------------------------------------------------------
    def await_callback(self, task: st.Task) -> None:
        """The activity of a callback task has run: wait for its token to be completed."""
        self.emit(events.CallbackAwaited(task_id=task.id), task.scope, task.state)
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
