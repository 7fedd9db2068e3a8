"""The working memory of one ``decide`` call, and what every part of the interpreter reads.

``decide`` runs one command to the next point where the execution must wait; on the way it
appends events and folds each into the state at once, so the next move reads the state the
events so far lead to.  ``Step`` holds that memory and the moves that concern no one state
type: emitting an event, the context object, going to a state, starting a timer.  The parts
of the interpreter (failures, scopes, waits, compensation, tasks) build on it one by one;
``decider`` puts them together.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone

from cairn.core import events, evolve, limits, model
from cairn.core import state as st
from cairn.jsontypes import JSON

_NO_CONTEXT: dict[str, JSON] = {}
"""The context handed to states that never read it (building it costs a good part of a step)."""


def iso(timestamp: float | None) -> str | None:
    """An epoch time as RFC 3339 UTC text, as the context object shows times."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat().replace("+00:00", "Z")


class Step:
    """The working memory of one ``decide`` call: appends events and folds them as it goes."""

    def __init__(self, definition: model.Definition, state: st.Execution, now: float) -> None:
        self.definition = definition
        self.state = state
        self.now = now
        self.events: list[events.Event] = []
        self.agenda: deque[tuple[str, str, JSON, int]] = deque()
        self.cancelled: list[tuple[str, int]] = []
        """(scope prefix, seq): branches stopped at seq, whose pending moves are dropped."""

    def emit(self, payload: events.Payload, scope: str = "", name: str | None = None) -> None:
        """Record that ``payload`` happened in ``scope`` (at state ``name``) and fold it in."""
        event = events.Event(
            seq=self.state.seq + 1,
            time=self.now,
            payload=payload,
            scope=scope,
            state=name,
            run=payload.run if isinstance(payload, events.ExecutionStarted) else self.state.run,
        )
        self.state = evolve.evolve(self.state, event)
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

    def key_base(self) -> str:
        """The execution id, and after a ContinueAsNew the run: idempotency keys and child ids
        begin with it.  Entry counts and sequence numbers start again in every run, so without
        the run a later run's new work would pass for a repeat of the first run's."""
        s = self.state
        return s.id if s.run <= 1 else f"{s.id}#{s.run}"

    def task_key(self, scope: str, frame: st.Frame) -> str:
        return f"{self.key_base()}:{st.state_path(scope, frame.state)}:{frame.entry}"

    def start_timer(self, scope: str, name: str | None, due: float, purpose: str) -> None:
        # Every due time must stay a date that describe can show and a clock can reach;
        # one before 1970 is past all the same, one after 9999 never comes all the same.
        due = min(max(due, 0.0), limits.LATEST_TIME)
        self.emit(
            events.TimerStarted(timer_id=self.next_id(), due=due, purpose=purpose), scope, name
        )

    def cancel_timers(self, scope: str, purposes: tuple[str, ...]) -> None:
        for timer in list(self.state.timers.values()):
            if timer.scope == scope and timer.purpose in purposes:
                self.emit(events.TimerCancelled(timer_id=timer.id), scope, timer.state)

    def pending_compensations(self, scope: str) -> list[st.Completion]:
        """The undo steps a Compensate state in ``scope`` has left, newest first.

        Here rather than with the compensation: the retry rules read them too, since a failed
        undo step is retried by its own rules.
        """
        return [
            c
            for c in reversed(self.state.completions)
            if not c.compensated and st.within(c.scope, scope)
        ]

    def compensation_of(self, completion: st.Completion) -> model.Compensation:
        spec = self.definition.states[completion.state]
        assert isinstance(spec, model.Task) and spec.compensate is not None
        return spec.compensate
