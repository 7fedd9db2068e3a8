"""Pure, in-memory drivers for the decider: run a workflow with no database and no worker.

``decide`` needs a shell around it: something that hands it commands (a worker claimed a
task, an activity returned, a timer is due, a signal arrived) and keeps the history.  The
drivers here are that shell in memory, with a clock that moves only when told to, so tests
of the interpreter, and of anything built on it, run whole workflows in microseconds and
read the history they leave.

- ``simulate`` runs a definition to its end from a script of activity outcomes, firing
  timers in due order.
- ``Harness`` applies commands one at a time, for given / when / then tests of ``decide``.
- ``changes`` tells which tasks and timers a decision opened and closed.
- ``as_object``, ``as_list`` and ``as_number`` narrow a JSON value a test reads into.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from cairn.core import commands, decider, events, evolve, model, names
from cairn.core import state as st
from cairn.core.expressions import Expression
from cairn.jsontypes import JSON

START_TIME = 1_767_225_600.0
"""2026-01-01T00:00:00Z: the default clock reading at which a simulated execution starts."""

EXECUTION_ID = "exec-1"
"""The default execution id of a simulated execution."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one task attempt does: return a result, fail, time out, or never finish.

    ``after`` is how long the attempt runs, in seconds of the simulated clock.
    """

    kind: Literal["result", "error", "timeout", "hold"] = "result"
    result: JSON = None
    result_of: Expression | None = None
    error: str = ""
    cause: str = ""
    retryable: bool = True
    after: float = 0.0

    @classmethod
    def succeed(cls, result: JSON = None, *, after: float = 0.0) -> Outcome:
        """The activity returns ``result``."""
        return cls(kind="result", result=result, after=after)

    @classmethod
    def fail(
        cls, error: str, cause: str = "", *, retryable: bool = True, after: float = 0.0
    ) -> Outcome:
        """The activity raises ``error`` (an exception class name) with ``cause``."""
        return cls(kind="error", error=error, cause=cause, retryable=retryable, after=after)

    @classmethod
    def time_out(
        cls, error: str = names.TIMEOUT, cause: str = "", *, after: float = 0.0
    ) -> Outcome:
        """The attempt runs past its TimeoutSeconds (or misses a heartbeat: pass that error)."""
        return cls(kind="timeout", error=error, cause=cause, after=after)

    @classmethod
    def hold(cls) -> Outcome:
        """The attempt is claimed and never finishes (a stuck worker, a long activity)."""
        return cls(kind="hold")

    @classmethod
    def parse(cls, spec: Outcome | Mapping[str, Any]) -> Outcome:
        """Read an outcome written as data, as conformance cases do.

        ``{result: V}``, ``{result.$: EXPR}`` (JMESPath over the task's input; ``$$.`` reads
        ``{Task: {Activity, Attempt, IdempotencyKey}}``), ``{error: NAME, cause: TEXT,
        retryable: BOOL}``, ``{timeout: NAME}`` or ``{hold: true}``; each may add
        ``after: SECONDS``.
        """
        if isinstance(spec, Outcome):
            return spec
        after = float(spec.get("after", 0.0))
        if "result.$" in spec:
            return cls(kind="result", result_of=Expression.compile(spec["result.$"]), after=after)
        if "error" in spec:
            return cls.fail(
                spec["error"],
                spec.get("cause", ""),
                retryable=bool(spec.get("retryable", True)),
                after=after,
            )
        if "timeout" in spec:
            return cls.time_out(
                spec["timeout"] or names.TIMEOUT, spec.get("cause", ""), after=after
            )
        if spec.get("hold"):
            return cls.hold()
        if "result" in spec:
            return cls.succeed(spec["result"], after=after)
        raise ValueError(f"not an outcome: {dict(spec)!r}")

    def command(self, task: st.Task) -> commands.Command:
        """The command a worker reports when this outcome happens to ``task``."""
        if self.kind == "error":
            return commands.FailTask(
                task_id=task.id, error=self.error, cause=self.cause, retryable=self.retryable
            )
        if self.kind == "timeout":
            return commands.TimeOutTask(task_id=task.id, error=self.error, cause=self.cause)
        result = self.result
        if self.result_of is not None:
            context: dict[str, JSON] = {
                "Task": {
                    "Activity": task.activity,
                    "Attempt": task.attempt,
                    "IdempotencyKey": task.key,
                }
            }
            result = self.result_of.evaluate(task.input, context)
        return commands.CompleteTask(task_id=task.id, result=result)


OutcomeSpec: TypeAlias = "Outcome | Mapping[str, Any]"
Script: TypeAlias = (
    "Mapping[str, OutcomeSpec | Sequence[OutcomeSpec] | Callable[[st.Task], OutcomeSpec]]"
    " | Callable[[st.Task], OutcomeSpec]"
)
"""Activity outcomes: per activity name, one outcome for every attempt, a list indexed by
attempt (from 1; the last entry repeats), ``{"calls": [...]}`` indexed by how many tasks of
the activity were scheduled so far (for a state entered again, whose attempts start over),
or a function of the task; or one function for all tasks."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A signal the outside world sends ``at`` seconds after the execution started."""

    at: float
    name: str
    payload: JSON = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One call of ``decide``: the command, the clock reading, and what it decided."""

    command: commands.Command
    now: float
    decision: decider.Decision


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """The record of a simulated execution."""

    definition: model.Definition
    history: tuple[events.Event, ...]
    state: st.Execution
    steps: tuple[Step, ...]

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def output(self) -> JSON:
        return self.state.output

    @property
    def error(self) -> str | None:
        return self.state.error

    @property
    def cause(self) -> str | None:
        return self.state.cause

    @property
    def entered(self) -> list[str]:
        """The names of the states entered, in order."""
        return [e.state or "" for e in self.history if e.type == events.STATE_ENTERED]

    def of_type(self, *types: str) -> list[events.Event]:
        """The events of the given types, in order."""
        return [e for e in self.history if e.type in types]


@dataclass(frozen=True, slots=True, kw_only=True)
class Changes:
    """The tasks and timers one decision opened and closed."""

    new_tasks: tuple[st.Task, ...]
    dropped_tasks: tuple[str, ...]
    new_timers: tuple[st.Timer, ...]
    dropped_timers: tuple[str, ...]


def changes(before: st.Execution, after: st.Execution) -> Changes:
    """What a decision did to the open work, from the states before and after it.

    A shell reads the state itself; tests and the simulator want the difference, to claim
    new tasks, fire new timers and check that what ended was dropped.
    """
    return Changes(
        new_tasks=tuple(t for k, t in after.tasks.items() if k not in before.tasks),
        dropped_tasks=tuple(k for k in before.tasks if k not in after.tasks),
        new_timers=tuple(t for k, t in after.timers.items() if k not in before.timers),
        dropped_timers=tuple(k for k in before.timers if k not in after.timers),
    )


def as_object(value: JSON) -> dict[str, JSON]:
    """``value``, which a test expects to be a JSON object."""
    if not isinstance(value, dict):
        raise TypeError(f"not a JSON object: {value!r}")
    return value


def as_list(value: JSON) -> list[JSON]:
    """``value``, which a test expects to be a JSON array."""
    if not isinstance(value, list):
        raise TypeError(f"not a JSON array: {value!r}")
    return value


def as_number(value: JSON) -> float:
    """``value``, which a test expects to be a JSON number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a JSON number: {value!r}")
    return value


_Due: TypeAlias = "st.Task | tuple[st.Task, Outcome] | str | Signal | None"
"""What the simulator's agenda holds, each due at a time."""


def definition_of(definition: model.Definition | Mapping[str, Any]) -> model.Definition:
    """The model of a definition given as a model or as a (valid) document."""
    return definition if isinstance(definition, model.Definition) else model.build(definition)


def simulate(
    definition: model.Definition | Mapping[str, Any],
    input: JSON = None,
    outcomes: Script | None = None,
    *,
    signals: Iterable[Signal | Mapping[str, Any]] = (),
    cancel_at: float | None = None,
    execution_id: str = EXECUTION_ID,
    start_time: float = START_TIME,
    max_steps: int = 10_000,
    history_limit: int = decider.HISTORY_LIMIT,
) -> Run:
    """Run an execution to its end, or until nothing more can happen, entirely in memory.

    Every task is claimed (``BeginTask``) as soon as it is scheduled and finishes ``after``
    seconds later as its scripted outcome says; timers fire at their due time; signals and a
    cancel arrive at their time.  Things due at the same moment happen in this order: task
    claims and outcomes, then signals and the cancel, then timers; within each, first
    created first.  The clock jumps to the next due thing; nothing sleeps.  The run stops when
    the execution closes, or stays RUNNING when nothing is left to happen (a held task, a
    Wait for a signal that never comes).  More than ``max_steps`` commands raise
    ``RuntimeError``.  ``history_limit`` is the events a run may hold, as the writer's is: a
    smaller one reaches ``States.HistoryLimitExceeded`` in fewer steps.
    """
    machine = definition_of(definition)
    script = _script(outcomes)
    order = itertools.count()
    # (due, rank, order, what): a task to claim, a task and how it ends, a timer id, a
    # signal, or None for the cancel; rank and then order break ties, so ``what`` is never
    # compared.
    agenda: list[tuple[float, int, int, _Due]] = []
    for raw in signals:
        signal = raw if isinstance(raw, Signal) else Signal(**raw)
        heapq.heappush(agenda, (start_time + signal.at, 1, next(order), signal))
    if cancel_at is not None:
        heapq.heappush(agenda, (start_time + cancel_at, 1, next(order), None))

    now = start_time
    state = st.initial_state()
    history: list[events.Event] = []
    steps: list[Step] = []

    def apply(command: commands.Command) -> None:
        nonlocal state
        if len(steps) >= max_steps:
            raise RuntimeError(f"the execution did not close within {max_steps} commands")
        decision = decider.decide(machine, state, command, now, history_limit=history_limit)
        opened = changes(state, decision.state)
        state = decision.state
        history.extend(decision.events)
        steps.append(Step(command=command, now=now, decision=decision))
        for task in opened.new_tasks:
            heapq.heappush(agenda, (now, 0, next(order), task))
        for timer in opened.new_timers:
            heapq.heappush(agenda, (timer.due, 2, next(order), timer.id))

    apply(commands.Start(execution_id=execution_id, input=input))
    while agenda and not state.closed:
        due, _, _, what = heapq.heappop(agenda)
        now = max(now, due)
        match what:
            case st.Task() as task:
                if task.id not in state.tasks:
                    continue
                apply(commands.BeginTask(task_id=task.id, worker="simulator"))
                outcome = script(task)
                if outcome.kind != "hold":
                    heapq.heappush(agenda, (now + outcome.after, 0, next(order), (task, outcome)))
            case (task, outcome):
                if task.id in state.tasks:
                    apply(outcome.command(state.tasks[task.id]))
            case str() as timer_id:
                if timer_id in state.timers:
                    apply(commands.FireTimer(timer_id=timer_id))
            case Signal() as signal:
                apply(commands.Signal(name=signal.name, payload=signal.payload))
            case None:
                apply(commands.Cancel(reason="cancelled by the script"))
    return Run(definition=machine, history=tuple(history), state=state, steps=tuple(steps))


def _script(outcomes: Script | None) -> Callable[[st.Task], Outcome]:
    if outcomes is None:
        outcomes = {}
    if callable(outcomes):
        whole = outcomes
        return lambda task: Outcome.parse(whole(task))
    table = outcomes
    calls: dict[str, int] = {}

    def pick(task: st.Task) -> Outcome:
        if task.activity not in table:
            raise LookupError(f"no outcome scripted for activity {task.activity!r}")
        entry = table[task.activity]
        if callable(entry):
            return Outcome.parse(entry(task))
        if isinstance(entry, Mapping) and "calls" in entry:
            calls[task.activity] = count = calls.get(task.activity, 0) + 1
            return Outcome.parse(entry["calls"][min(count, len(entry["calls"])) - 1])
        if isinstance(entry, (Outcome, Mapping)):
            return Outcome.parse(entry)
        return Outcome.parse(entry[min(task.attempt, len(entry)) - 1])

    return pick


@dataclass(slots=True)
class Harness:
    """Drives ``decide`` one command at a time, for given / when / then tests.

    ``given`` builds the history (from events, or from commands run through ``decide``);
    ``when`` runs one more command against the fold of that history and returns its
    ``Decision``, whose events are then appended too.
    """

    definition: model.Definition
    execution_id: str = EXECUTION_ID
    now: float = START_TIME
    history: list[events.Event] = field(default_factory=list)

    @classmethod
    def of(cls, definition: model.Definition | Mapping[str, Any], **kwargs: Any) -> Harness:
        """A harness for a definition given as a model or as a (valid) document."""
        return cls(definition=definition_of(definition), **kwargs)

    @property
    def state(self) -> st.Execution:
        """The fold of the history so far."""
        return evolve.fold(self.history)

    def start(self, input: JSON = None) -> decider.Decision:
        """Start the execution with ``input``."""
        return self.when(commands.Start(execution_id=self.execution_id, input=input))

    def given(self, *steps: events.Event | commands.Command) -> Harness:
        """Append events as they are, and the events of commands as ``decide`` makes them."""
        for step in steps:
            if isinstance(step, events.Event):
                self.history.append(step)
            else:
                self.when(step)
        return self

    def when(self, command: commands.Command, *, at: float | None = None) -> decider.Decision:
        """Decide ``command`` (at ``at``, else the current clock) and record its events."""
        if at is not None:
            self.now = at
        decision = decider.decide(self.definition, self.state, command, self.now)
        self.history.extend(decision.events)
        return decision

    def task(self, state: str) -> st.Task:
        """The open task of the named state (there must be exactly one)."""
        found = [t for t in self.state.tasks.values() if t.state == state]
        if len(found) != 1:
            raise LookupError(f"{len(found)} open tasks for state {state!r}")
        return found[0]

    def timer(self, purpose: str, state: str | None = None) -> st.Timer:
        """The open timer with this purpose (and state, if given); there must be one."""
        found = [
            t
            for t in self.state.timers.values()
            if t.purpose == purpose and (state is None or t.state == state)
        ]
        if len(found) != 1:
            raise LookupError(f"{len(found)} open {purpose} timers for state {state!r}")
        return found[0]

    def complete(self, state: str, result: JSON = None) -> decider.Decision:
        """The open task of ``state`` returns ``result``."""
        return self.when(commands.CompleteTask(task_id=self.task(state).id, result=result))

    def fail(self, state: str, error: str, cause: str = "") -> decider.Decision:
        """The open task of ``state`` fails with ``error``."""
        return self.when(commands.FailTask(task_id=self.task(state).id, error=error, cause=cause))

    def fire(self, purpose: str, state: str | None = None) -> decider.Decision:
        """Move the clock to the due time of the open timer and fire it."""
        timer = self.timer(purpose, state)
        return self.when(commands.FireTimer(timer_id=timer.id), at=max(self.now, timer.due))
