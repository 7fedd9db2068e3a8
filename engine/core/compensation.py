"""Compensate states (sagas): the undo steps of completed Tasks, newest first.

A Task with ``Compensate`` that succeeds leaves a completion in the state; a Compensate state
runs the undo step of each completion of its scope not yet undone, one at a time, each a
durable task (retried by its own rules, else by ``COMPENSATION_RETRY``), then goes on.
"""

from __future__ import annotations

from cairn.core import events, model, names
from cairn.core import state as st
from cairn.core.expressions import DataError
from cairn.core.scopes import Scopes
from cairn.jsontypes import JSON


class Compensation(Scopes):
    """Scheduling the undo steps of a Compensate state."""

    def begin_compensation(self, scope: str, frame: st.Frame, spec: model.Compensate) -> None:
        steps: list[JSON] = [
            {"seq": c.seq, "state": c.state} for c in self.pending_compensations(scope)
        ]
        self.emit(events.CompensationScheduled(steps=steps), scope, spec.name)
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
            events.TaskScheduled(
                task_id=self.next_id(),
                activity=compensation.activity,
                input=data,
                attempt=retries + 1,
                key=f"{self.key_base()}:{st.state_path(step.scope, step.state)}:undo:{step.seq}",
                queue=compensation.queue,
                timeout=compensation.timeout,
                heartbeat=None,
                compensates=step.seq,
            ),
            scope,
            spec.name,
        )
