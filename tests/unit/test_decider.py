"""The decider: given a history, when a command arrives, then these events (and tasks, timers).

Each test builds its history through ``decide`` itself (or writes it by hand), hands one more
command to ``decide`` and compares the events it returns.  No database, no worker, no mocks:
the clock is a number passed in.
"""

from __future__ import annotations

from typing import Any

import pytest

from cairn.core import commands, decider, events, failures, model, names
from cairn.core import state as st
from cairn.core.commands import (
    BeginTask,
    Cancel,
    CompleteTask,
    FailTask,
    FireTimer,
    Signal,
    Start,
    TimeOutTask,
)
from cairn.testing import START_TIME as T0
from cairn.testing import Harness, Outcome, as_number, as_object, changes, simulate

ID = "exec-1"


def flow(states: dict[str, Any], start: str | None = None, **top: Any) -> dict[str, Any]:
    """A definition document with these states, starting at the first unless told."""
    return {
        "Name": "test",
        "Version": 1,
        "StartAt": start or next(iter(states)),
        "States": states,
        **top,
    }


def task(activity: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Type": "Task", "Activity": activity, **fields}
    if "Next" not in body:
        body["End"] = True
    return body


def ev(type_: str, state: str | None = None, scope: str = "", **details: Any) -> tuple[Any, ...]:
    """An expected event: type, scope, state and all of its details."""
    return (type_, scope, state, details)


def log(found: tuple[events.Event, ...] | list[events.Event]) -> list[tuple[Any, ...]]:
    return [(e.type, e.scope, e.state, e.details) for e in found]


def steps(found: tuple[events.Event, ...] | list[events.Event]) -> list[tuple[str, str | None]]:
    """Events as (type, state): for tests about the order of things rather than their data."""
    return [(e.type, e.state) for e in found]


def harness(*states: tuple[str, dict[str, Any]], **top: Any) -> Harness:
    return Harness.of(flow(dict(states), **top))


# -- start, tasks, and commands that do not apply ---------------------------------------------


def test_start_records_the_input_and_schedules_the_first_task() -> None:
    h = harness(
        (
            "Charge",
            task(
                "ChargeCard",
                TaskQueue="payments",
                TimeoutSeconds=30,
                HeartbeatSeconds=10,
                Parameters={"amount.$": "total"},
            ),
        )
    )

    decision = h.start({"total": 5})

    assert log(decision.events) == [
        ev(
            events.EXECUTION_STARTED,
            execution_id=ID,
            run=1,
            workflow="test",
            version=1,
            input={"total": 5},
        ),
        ev(events.STATE_ENTERED, "Charge", input={"total": 5}, entry=1),
        ev(
            events.TASK_SCHEDULED,
            "Charge",
            task_id=f"{ID}:1:3",
            activity="ChargeCard",
            input={"amount": 5},
            attempt=1,
            key=f"{ID}:Charge:1",
            queue="payments",
            timeout=30,
            heartbeat=10,
        ),
    ]
    assert [e.seq for e in decision.events] == [1, 2, 3]
    assert all(e.time == T0 for e in decision.events)
    work = changes(st.initial_state(), decision.state)
    assert work.new_tasks == (
        st.Task(
            id=f"{ID}:1:3",
            scope="",
            state="Charge",
            activity="ChargeCard",
            input={"amount": 5},
            attempt=1,
            key=f"{ID}:Charge:1",
            queue="payments",
            timeout=30,
            heartbeat=10,
        ),
    )
    assert decision.state.status == "RUNNING"
    assert (work.dropped_tasks, work.new_timers, work.dropped_timers) == ((), (), ())


def test_a_completed_task_moves_on_and_its_result_is_placed() -> None:
    h = harness(
        ("Charge", task("ChargeCard", ResultPath="charge", Next="Ship")),
        ("Ship", task("Ship")),
    )
    h.start({"order": 1})
    charge = h.task("Charge").id

    begun = h.when(BeginTask(task_id=charge, worker="w1"))
    done = h.when(CompleteTask(task_id=charge, result={"id": "ch"}))
    work = changes(begun.state, done.state)

    assert log(begun.events) == [
        ev(events.TASK_STARTED, "Charge", task_id=charge, worker="w1", attempt=1)
    ]
    assert begun.state.tasks[charge].worker == "w1"
    output = {"order": 1, "charge": {"id": "ch"}}
    assert log(done.events) == [
        ev(events.TASK_SUCCEEDED, "Charge", task_id=charge, result={"id": "ch"}, compensable=False),
        ev(events.STATE_EXITED, "Charge", output=output),
        ev(events.STATE_ENTERED, "Ship", input=output, entry=1),
        ev(
            events.TASK_SCHEDULED,
            "Ship",
            task_id=f"{ID}:1:8",
            activity="Ship",
            input=output,
            attempt=1,
            key=f"{ID}:Ship:1",
            queue="default",
            timeout=None,
            heartbeat=None,
        ),
    ]
    assert work.dropped_tasks == (charge,)
    assert [t.state for t in work.new_tasks] == ["Ship"]


def test_the_last_state_ending_succeeds_the_execution() -> None:
    h = harness(("Only", task("A", OutputPath="v")))
    h.start({})

    decision = h.complete("Only", {"v": 7})

    assert steps(decision.events)[-2:] == [
        (events.STATE_EXITED, "Only"),
        (events.EXECUTION_SUCCEEDED, None),
    ]
    assert decision.events[-1].details == {"output": 7}
    assert (decision.state.status, decision.state.output) == ("SUCCEEDED", 7)
    assert decision.state.closed_at == T0


def test_a_history_written_by_hand_is_decided_like_one_decide_wrote() -> None:
    h = harness(("Only", task("A")))
    h.given(
        events.Event(
            seq=1,
            time=T0,
            payload=events.read(
                events.EXECUTION_STARTED,
                {"execution_id": ID, "run": 1, "workflow": "test", "version": 1, "input": 1},
            ),
        ),
        events.Event(
            seq=2,
            time=T0,
            state="Only",
            payload=events.read(events.STATE_ENTERED, {"input": 1, "entry": 1}),
        ),
        events.Event(
            seq=3,
            time=T0,
            state="Only",
            payload=events.read(
                events.TASK_SCHEDULED,
                {
                    "task_id": "t-1",
                    "activity": "A",
                    "input": 1,
                    "attempt": 1,
                    "key": "k",
                    "queue": "default",
                },
            ),
        ),
    )

    decision = h.when(CompleteTask(task_id="t-1", result=2), at=T0 + 5)

    assert log(decision.events) == [
        ev(events.TASK_SUCCEEDED, "Only", task_id="t-1", result=2, compensable=False),
        ev(events.STATE_EXITED, "Only", output=2),
        ev(events.EXECUTION_SUCCEEDED, output=2),
    ]
    assert [e.seq for e in decision.events] == [4, 5, 6]
    assert all(e.time == T0 + 5 for e in decision.events)


@pytest.mark.parametrize(
    "command",
    [
        BeginTask(task_id="nope", worker="w"),
        CompleteTask(task_id="nope", result=1),
        FailTask(task_id="nope", error="E", cause=""),
        TimeOutTask(task_id="nope", error=names.TIMEOUT, cause=""),
        FireTimer(timer_id="nope"),
        Start(execution_id="other", input=2),
    ],
    ids=lambda c: type(c).__name__,
)
def test_commands_for_unknown_tasks_and_timers_change_nothing(command: commands.Command) -> None:
    h = harness(("Only", task("A")))
    h.start(1)
    before = h.state

    decision = h.when(command)

    assert decision.events == ()
    assert decision.state == before


def test_a_task_finished_once_is_not_finished_again() -> None:
    h = harness(("First", task("A", Next="Second")), ("Second", task("B")))
    h.start(1)
    first = h.task("First").id
    h.when(CompleteTask(task_id=first, result=1))

    again = h.when(CompleteTask(task_id=first, result=2))
    failed = h.when(FailTask(task_id=first, error="E", cause=""))

    assert again.events == failed.events == ()
    assert [t.state for t in h.state.tasks.values()] == ["Second"]


@pytest.mark.parametrize(
    "command",
    [Signal(name="early"), Cancel(reason="early"), CompleteTask(task_id=f"{ID}:1:3", result=1)],
    ids=lambda c: type(c).__name__,
)
def test_nothing_is_recorded_before_the_execution_starts(command: commands.Command) -> None:
    h = harness(("Only", task("A")))

    decision = h.when(command)

    assert decision.events == ()
    assert decision.state == st.initial_state()
    assert h.start(1).events[0].type == events.EXECUTION_STARTED


@pytest.mark.parametrize(
    "command",
    [
        CompleteTask(task_id=f"{ID}:1:3", result=1),
        Signal(name="go"),
        Cancel(reason="late"),
        Start(execution_id=ID, input=1),
    ],
    ids=lambda c: type(c).__name__,
)
def test_a_closed_execution_ignores_every_command(command: commands.Command) -> None:
    h = harness(("Only", task("A")))
    h.start(1)
    h.when(Cancel(reason="stop"))

    decision = h.when(command)

    assert decision.events == ()
    assert decision.state.status == "CANCELLED"


# -- Pass --------------------------------------------------------------------------------------


def test_pass_hands_on_its_result_or_its_effective_input() -> None:
    h = harness(
        ("Fixed", {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "fixed", "Next": "Shaped"}),
        ("Shaped", {"Type": "Pass", "Parameters": {"a.$": "fixed.x", "b": "lit"}, "End": True}),
    )

    decision = h.start({"keep": True})

    assert log(decision.events)[1:] == [
        ev(events.STATE_ENTERED, "Fixed", input={"keep": True}, entry=1),
        ev(events.STATE_EXITED, "Fixed", output={"keep": True, "fixed": {"x": 1}}),
        ev(events.STATE_ENTERED, "Shaped", input={"keep": True, "fixed": {"x": 1}}, entry=1),
        ev(events.STATE_EXITED, "Shaped", output={"a": 1, "b": "lit"}),
        ev(events.EXECUTION_SUCCEEDED, output={"a": 1, "b": "lit"}),
    ]


# -- Wait --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "input", "due"),
    [
        ({"Seconds": 30}, {}, T0 + 30),
        ({"Seconds": 0}, {}, T0),
        ({"SecondsPath": "delay"}, {"delay": 90}, T0 + 90),
        ({"SecondsPath": "delay"}, {"delay": 1.5}, T0 + 1.5),
        ({"Timestamp": "2026-01-02T00:00:00Z"}, {}, T0 + 86400),
        ({"TimestampPath": "at"}, {"at": "2026-01-01T01:00:00+01:00"}, T0),
        ({"TimestampPath": "at"}, {"at": "2026-01-01T00:00:10.5Z"}, T0 + 10.5),
        ({"TimestampPath": "at"}, {"at": "2026-01-01t00:00:20z"}, T0 + 20),
    ],
)
def test_wait_starts_a_timer_due_when_its_field_says(
    fields: dict[str, Any], input: Any, due: float
) -> None:
    h = harness(
        ("Pause", {"Type": "Wait", **fields, "Next": "Done"}), ("Done", {"Type": "Succeed"})
    )

    started = h.start(input)
    fired = h.fire("wait")

    timer_id = f"{ID}:1:3"
    assert log(started.events)[1:] == [
        ev(events.STATE_ENTERED, "Pause", input=input, entry=1),
        ev(events.TIMER_STARTED, "Pause", timer_id=timer_id, due=due, purpose="wait"),
    ]
    assert changes(st.initial_state(), started.state).new_timers == (
        st.Timer(id=timer_id, scope="", state="Pause", due=due, purpose="wait"),
    )
    assert log(fired.events) == [
        ev(events.TIMER_FIRED, "Pause", timer_id=timer_id),
        ev(events.STATE_EXITED, "Pause", output=input),
        ev(events.STATE_ENTERED, "Done", input=input, entry=1),
        ev(events.STATE_EXITED, "Done", output=input),
        ev(events.EXECUTION_SUCCEEDED, output=input),
    ]
    assert changes(started.state, fired.state).dropped_timers == (timer_id,)


@pytest.mark.parametrize(
    ("fields", "input"),
    [
        ({"SecondsPath": "delay"}, {"delay": "soon"}),
        ({"SecondsPath": "delay"}, {"delay": -1}),
        ({"SecondsPath": "delay"}, {}),
        ({"TimestampPath": "at"}, {"at": "next tuesday"}),
        ({"TimestampPath": "at"}, {"at": 12}),
    ],
)
def test_wait_on_bad_data_fails_with_states_runtime(fields: dict[str, Any], input: Any) -> None:
    h = harness(("Pause", {"Type": "Wait", **fields, "End": True}))

    decision = h.start(input)

    assert steps(decision.events)[-1] == (events.EXECUTION_FAILED, None)
    assert decision.state.error == names.RUNTIME
    assert decision.state.timers == {}


WAIT_FOR_SIGNAL = (
    ("Work", task("Work", Next="Hold")),
    (
        "Hold",
        {"Type": "Wait", "Seconds": 3600, "Signal": "approve", "ResultPath": "got", "End": True},
    ),
)


def test_a_signal_that_came_before_the_wait_is_consumed_on_entry() -> None:
    h = harness(*WAIT_FOR_SIGNAL)
    h.start({})
    received = h.when(Signal(name="approve", payload={"by": "ann"}))
    assert log(received.events) == [
        ev(events.SIGNAL_RECEIVED, name="approve", payload={"by": "ann"})
    ]
    assert [s.name for s in received.state.signals] == ["approve"]

    decision = h.complete("Work", {})

    work = changes(received.state, decision.state)
    got = {"got": {"signal": "approve", "payload": {"by": "ann"}}}
    assert log(decision.events)[2:] == [
        ev(events.STATE_ENTERED, "Hold", input={}, entry=1),
        ev(events.SIGNAL_CONSUMED, "Hold", signal=received.events[0].seq, name="approve"),
        ev(events.STATE_EXITED, "Hold", output=got),
        ev(events.EXECUTION_SUCCEEDED, output=got),
    ]
    assert work.new_timers == ()
    assert decision.state.signals == ()


def test_a_signal_during_the_wait_ends_it_and_cancels_its_timer() -> None:
    h = harness(*WAIT_FOR_SIGNAL)
    h.start({})
    h.complete("Work", {})
    timer = h.timer("wait")
    before = h.state

    decision = h.when(Signal(name="approve", payload=1), at=T0 + 60)

    got = {"got": {"signal": "approve", "payload": 1}}
    received = decision.events[0].seq
    assert log(decision.events) == [
        ev(events.SIGNAL_RECEIVED, name="approve", payload=1),
        ev(events.SIGNAL_CONSUMED, "Hold", signal=received, name="approve"),
        ev(events.TIMER_CANCELLED, "Hold", timer_id=timer.id),
        ev(events.STATE_EXITED, "Hold", output=got),
        ev(events.EXECUTION_SUCCEEDED, output=got),
    ]
    assert changes(before, decision.state).dropped_timers == (timer.id,)


def test_when_the_timer_fires_first_the_wait_result_is_null_and_a_late_signal_waits() -> None:
    h = harness(
        (
            "Hold",
            {
                "Type": "Wait",
                "Seconds": 60,
                "Signal": "approve",
                "ResultPath": "got",
                "Next": "Work",
            },
        ),
        ("Work", task("Work", ResultPath=None)),
    )
    h.start({})

    fired = h.fire("wait", "Hold")
    late = h.when(Signal(name="approve", payload=2))

    assert log(fired.events)[:3] == [
        ev(events.TIMER_FIRED, "Hold", timer_id=f"{ID}:1:3"),
        ev(events.STATE_EXITED, "Hold", output={"got": None}),
        ev(events.STATE_ENTERED, "Work", input={"got": None}, entry=1),
    ]
    assert fired.events[0].time == T0 + 60
    assert log(late.events) == [ev(events.SIGNAL_RECEIVED, name="approve", payload=2)]
    assert late.state.signals == (
        st.PendingSignal(seq=late.events[0].seq, name="approve", payload=2),
    )
    assert h.complete("Work", None).state.output == {"got": None}


def test_a_wait_for_a_signal_alone_has_no_timer_and_other_signals_do_not_end_it() -> None:
    h = harness(("Hold", {"Type": "Wait", "Signal": "go", "ResultPath": "s", "End": True}))

    started = h.start({})
    other = h.when(Signal(name="stop"))
    go = h.when(Signal(name="go", payload="now"))

    assert changes(st.initial_state(), started.state).new_timers == ()
    assert steps(other.events) == [(events.SIGNAL_RECEIVED, None)]
    assert [s.name for s in other.state.signals] == ["stop"]
    assert go.state.output == {"s": {"signal": "go", "payload": "now"}}
    assert [s.name for s in go.state.signals] == ["stop"]


def test_signals_are_consumed_in_arrival_order() -> None:
    wait = {"Type": "Wait", "Signal": "next"}
    h = harness(
        ("Work", task("Work", Next="One")),
        ("One", {**wait, "ResultPath": "one", "Next": "Two"}),
        ("Two", {**wait, "ResultPath": "two", "End": True}),
    )
    h.start({})
    h.when(Signal(name="next", payload=1))
    h.when(Signal(name="next", payload=2))
    h.when(Signal(name="next", payload=3))

    decision = h.complete("Work", {})

    assert decision.state.output == {
        "one": {"signal": "next", "payload": 1},
        "two": {"signal": "next", "payload": 2},
    }


def test_one_signal_ends_one_of_two_waits_for_it() -> None:
    wait = {"Type": "Wait", "Signal": "go", "End": True}
    h = harness(
        (
            "Both",
            {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "A", "States": {"A": wait}},
                    {"StartAt": "B", "States": {"B": wait}},
                ],
                "End": True,
            },
        )
    )
    h.start({})

    first = h.when(Signal(name="go"))
    second = h.when(Signal(name="go"))

    assert [e.type for e in first.events].count(events.SIGNAL_CONSUMED) == 1
    assert first.state.status == "RUNNING"
    assert second.state.status == "SUCCEEDED"


# -- Choice ------------------------------------------------------------------------------------

CHOOSE = (
    (
        "Route",
        {
            "Type": "Choice",
            "InputPath": "order",
            "Choices": [
                {"Condition": "total > `100`", "Next": "Big"},
                {"Condition": "express", "Next": "Fast"},
            ],
            "Default": "Normal",
        },
    ),
    ("Big", {"Type": "Succeed"}),
    ("Fast", {"Type": "Succeed"}),
    ("Normal", {"Type": "Succeed"}),
)


@pytest.mark.parametrize(
    ("order", "chosen"),
    [
        ({"total": 500, "express": True}, "Big"),
        ({"total": 5, "express": True}, "Fast"),
        ({"total": 5, "express": 0}, "Fast"),  # JMESPath: 0 is true
        ({"total": 5, "express": []}, "Normal"),  # ... and an empty list false
        ({"total": 5, "express": ""}, "Normal"),
        ({"total": 5}, "Normal"),
    ],
)
def test_choice_takes_the_first_true_rule_or_the_default(order: Any, chosen: str) -> None:
    h = harness(*CHOOSE)

    decision = h.start({"order": order, "other": 1})

    assert log(decision.events)[1:3] == [
        ev(events.STATE_ENTERED, "Route", input={"order": order, "other": 1}, entry=1),
        ev(events.STATE_EXITED, "Route", output=order),
    ]
    assert steps(decision.events)[3] == (events.STATE_ENTERED, chosen)
    assert decision.state.output == order


def test_choice_without_a_match_or_default_fails_with_no_choice_matched() -> None:
    h = harness(
        ("Route", {"Type": "Choice", "Choices": [{"Condition": "ok", "Next": "Done"}]}),
        ("Done", {"Type": "Succeed"}),
    )

    decision = h.start({"ok": False})

    assert log(decision.events)[-1] == ev(
        events.EXECUTION_FAILED,
        error="States.NoChoiceMatched",
        cause="no choice of 'Route' matched",
    )


# -- Parallel ----------------------------------------------------------------------------------


def parallel(*branches: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Type": "Parallel", "Branches": list(branches), **fields}
    if "Next" not in body:
        body["End"] = True
    return body


def branch(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": name, "States": {name: body}}


def test_parallel_runs_every_branch_and_gives_results_in_branch_order() -> None:
    h = harness(
        (
            "Both",
            parallel(
                branch("Left", task("L")),
                branch("Right", task("R")),
                Parameters={"n.$": "n"},
                ResultPath="both",
            ),
        )
    )

    started = h.start({"n": 1})
    right = h.complete("Right", "r")
    left = h.complete("Left", "l")

    assert log(started.events)[1:] == [
        ev(events.STATE_ENTERED, "Both", input={"n": 1}, entry=1),
        ev(events.BRANCH_STARTED, "Both", index=0),
        ev(events.BRANCH_STARTED, "Both", index=1),
        ev(events.STATE_ENTERED, "Left", "Both[0]", input={"n": 1}, entry=1),
        ev(
            events.TASK_SCHEDULED,
            "Left",
            "Both[0]",
            task_id=f"{ID}:1:6",
            activity="L",
            input={"n": 1},
            attempt=1,
            key=f"{ID}:Both[0]/Left:1",
            queue="default",
            timeout=None,
            heartbeat=None,
        ),
        ev(events.STATE_ENTERED, "Right", "Both[1]", input={"n": 1}, entry=1),
        ev(
            events.TASK_SCHEDULED,
            "Right",
            "Both[1]",
            task_id=f"{ID}:1:8",
            activity="R",
            input={"n": 1},
            attempt=1,
            key=f"{ID}:Both[1]/Right:1",
            queue="default",
            timeout=None,
            heartbeat=None,
        ),
    ]
    assert steps(right.events) == [
        (events.TASK_SUCCEEDED, "Right"),
        (events.STATE_EXITED, "Right"),
        (events.BRANCH_SUCCEEDED, "Both"),
    ]
    assert log(left.events)[2:] == [
        ev(events.BRANCH_SUCCEEDED, "Both", index=0, output="l"),
        ev(events.STATE_EXITED, "Both", output={"n": 1, "both": ["l", "r"]}),
        ev(events.EXECUTION_SUCCEEDED, output={"n": 1, "both": ["l", "r"]}),
    ]


def test_a_failing_branch_cancels_the_others_and_the_parallel_catch_applies() -> None:
    h = harness(
        (
            "Both",
            parallel(
                branch("Slow", task("Slow")),
                branch("Pause", {"Type": "Wait", "Seconds": 60, "End": True}),
                branch("Bad", task("Bad")),
                Catch=[{"ErrorEquals": ["Boom"], "ResultPath": "error", "Next": "Recover"}],
            ),
        ),
        ("Recover", {"Type": "Pass", "End": True}),
    )
    h.start({"n": 1})
    slow, bad, pause = h.task("Slow").id, h.task("Bad").id, h.timer("wait").id
    before = h.state

    decision = h.fail("Bad", "Boom", "it broke")

    caught = {"n": 1, "error": {"Error": "Boom", "Cause": "it broke"}}
    assert log(decision.events)[1:] == [
        ev(events.BRANCH_FAILED, "Both", index=2, error="Boom", cause="it broke"),
        ev(events.BRANCHES_CANCELLED, "Both"),
        ev(events.STATE_EXITED, "Both", output=caught, error="Boom"),
        ev(events.STATE_ENTERED, "Recover", input=caught, entry=1),
        ev(events.STATE_EXITED, "Recover", output=caught),
        ev(events.EXECUTION_SUCCEEDED, output=caught),
    ]
    work = changes(before, decision.state)
    assert sorted(work.dropped_tasks) == sorted([slow, bad])
    assert work.dropped_timers == (pause,)
    late = h.when(CompleteTask(task_id=slow, result=1))
    assert late.events == ()


def test_a_branch_failure_with_no_catch_fails_the_execution_and_drops_every_task() -> None:
    h = harness(("Both", parallel(branch("A", task("A")), branch("B", task("B")))))
    h.start({})
    a = h.task("A").id
    before = h.state

    decision = h.fail("B", "Boom")

    assert steps(decision.events)[-1] == (events.EXECUTION_FAILED, None)
    assert decision.state.error == "Boom"
    assert a in changes(before, decision.state).dropped_tasks
    assert decision.state.tasks == {} and decision.state.frames == {}


def test_a_retried_parallel_runs_its_branches_again_with_new_keys() -> None:
    h = harness(
        (
            "Both",
            parallel(
                branch("A", task("A")),
                Retry=[{"ErrorEquals": ["Boom"], "IntervalSeconds": 5}],
            ),
        )
    )
    h.start({})
    first_key = h.task("A").key
    failed = h.fail("A", "Boom")

    again = h.fire("retry")

    assert steps(failed.events)[-2:] == [
        (events.RETRY_SCHEDULED, "Both"),
        (events.TIMER_STARTED, "Both"),
    ]
    assert steps(again.events) == [
        (events.TIMER_FIRED, "Both"),
        (events.BRANCH_STARTED, "Both"),
        (events.STATE_ENTERED, "A"),
        (events.TASK_SCHEDULED, "A"),
    ]
    assert (first_key, h.task("A").key) == (f"{ID}:Both[0]/A:1", f"{ID}:Both[0]/A:2")
    assert h.complete("A", 1).state.output == [1]


def test_succeed_ends_a_branch_and_fail_fails_it() -> None:
    done = {"Type": "Succeed", "OutputPath": "x"}
    fail = {"Type": "Fail", "Error": "Nope", "Cause": "said no"}
    ok = harness(("P", parallel(branch("S", done), branch("T", {"Type": "Pass", "End": True}))))
    bad = harness(
        (
            "P",
            parallel(
                branch("F", fail),
                Catch=[{"ErrorEquals": ["Nope"], "Next": "After"}],
            ),
        ),
        ("After", {"Type": "Pass", "End": True}),
    )

    assert ok.start({"x": 1}).state.output == [1, {"x": 1}]
    assert bad.start({}).state.output == {"Error": "Nope", "Cause": "said no"}


# -- Map ---------------------------------------------------------------------------------------


def mapping(processor: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Type": "Map", "ItemProcessor": processor, **fields}
    if "Next" not in body:
        body["End"] = True
    return body


def test_map_runs_its_processor_per_item_with_item_selector_context() -> None:
    h = harness(
        (
            "Each",
            mapping(
                branch("Work", task("Work")),
                ItemsPath="order.lines",
                ItemSelector={
                    "index.$": "$$.Map.Item.Index",
                    "line.$": "$$.Map.Item.Value",
                    "order.$": "order.id",
                },
                ResultPath="done",
            ),
        )
    )

    started = h.start({"order": {"id": "o1", "lines": ["a", "b"]}})

    new_tasks = changes(st.initial_state(), started.state).new_tasks
    assert [t.input for t in new_tasks] == [
        {"index": 0, "line": "a", "order": "o1"},
        {"index": 1, "line": "b", "order": "o1"},
    ]
    assert [t.key for t in new_tasks] == [f"{ID}:Each[0]/Work:1", f"{ID}:Each[1]/Work:1"]
    second, first = sorted(new_tasks, key=lambda t: t.scope, reverse=True)
    h.when(CompleteTask(task_id=second.id, result="B"))
    finished = h.when(CompleteTask(task_id=first.id, result="A"))
    assert finished.state.output == {"order": {"id": "o1", "lines": ["a", "b"]}, "done": ["A", "B"]}


def test_map_max_concurrency_starts_the_next_item_when_one_finishes() -> None:
    h = harness(("Each", mapping(branch("Work", task("Work")), MaxConcurrency=2)))

    started = h.start([10, 20, 30, 40])
    new_tasks = changes(st.initial_state(), started.state).new_tasks
    assert [t.input for t in new_tasks] == [10, 20]
    open_tasks = {t.input: t.id for t in new_tasks}

    after_second = h.when(CompleteTask(task_id=open_tasks[20], result=2))
    assert [t.input for t in changes(started.state, after_second.state).new_tasks] == [30]
    assert sorted(as_number(t.input) for t in after_second.state.tasks.values()) == [10, 30]
    assert steps(after_second.events)[2:] == [
        (events.BRANCH_SUCCEEDED, "Each"),
        (events.BRANCH_STARTED, "Each"),
        (events.STATE_ENTERED, "Work"),
        (events.TASK_SCHEDULED, "Work"),
    ]

    run = simulate(
        flow({"Each": mapping(branch("Work", task("Work")), MaxConcurrency=2)}),
        [10, 20, 30, 40, 50],
        {"Work": lambda t: Outcome.succeed(as_number(t.input) + 1, after=as_number(t.input))},
    )
    most_open = max(len(s.decision.state.tasks) for s in run.steps)
    assert most_open == 2
    assert run.output == [11, 21, 31, 41, 51]


def test_map_over_an_empty_list_succeeds_with_an_empty_list() -> None:
    h = harness(
        ("Each", mapping(branch("Work", task("Work")), ItemsPath="items", ResultPath="out"))
    )

    decision = h.start({"items": []})

    assert steps(decision.events)[1:] == [
        (events.STATE_ENTERED, "Each"),
        (events.STATE_EXITED, "Each"),
        (events.EXECUTION_SUCCEEDED, None),
    ]
    assert decision.state.output == {"items": [], "out": []}


@pytest.mark.parametrize("items", [{"a": 1}, "text", None, 3])
def test_map_items_not_an_array_fail_with_states_runtime_even_with_catch_all(items: Any) -> None:
    h = harness(
        (
            "Each",
            mapping(
                branch("Work", task("Work")),
                ItemsPath="items",
                Retry=[{"ErrorEquals": ["States.ALL"]}],
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            ),
        ),
        ("Caught", {"Type": "Succeed"}),
    )

    decision = h.start({"items": items})

    assert steps(decision.events)[1:] == [
        (events.STATE_ENTERED, "Each"),
        (events.EXECUTION_FAILED, None),
    ]
    assert decision.state.error == names.RUNTIME
    assert "not an array" in (decision.state.cause or "")


def test_a_bad_item_selector_fails_the_map_on_entry_even_for_items_started_later() -> None:
    h = harness(
        (
            "Each",
            mapping(
                branch("Work", task("Work")),
                MaxConcurrency=1,
                ItemSelector={"n.$": "$$.length(Map.Item.Value)"},
            ),
        )
    )

    decision = h.start(["ab", "c", 5])

    assert decision.state.error == names.RUNTIME
    assert changes(st.initial_state(), decision.state).new_tasks == ()


# -- Succeed and Fail --------------------------------------------------------------------------


def test_succeed_applies_input_and_output_paths() -> None:
    h = harness(("Done", {"Type": "Succeed", "InputPath": "a", "OutputPath": "b"}))

    assert h.start({"a": {"b": 3}, "c": 4}).state.output == 3


@pytest.mark.parametrize(
    ("fields", "error", "cause"),
    [
        ({"Error": "Declined", "Cause": "card said no"}, "Declined", "card said no"),
        ({"ErrorPath": "e.name", "CausePath": "e.why"}, "FromData", "because"),
        ({"Error": "Only"}, "Only", ""),
        ({"ErrorPath": "$$.State.Name"}, "Stop", ""),
    ],
)
def test_fail_sets_the_error_and_cause(fields: dict[str, Any], error: str, cause: str) -> None:
    h = harness(("Stop", {"Type": "Fail", **fields}))

    decision = h.start({"e": {"name": "FromData", "why": "because"}})

    assert log(decision.events)[1:] == [
        ev(
            events.STATE_ENTERED,
            "Stop",
            input={"e": {"name": "FromData", "why": "because"}},
            entry=1,
        ),
        ev(events.EXECUTION_FAILED, error=error, cause=cause),
    ]
    assert (decision.state.status, decision.state.error, decision.state.cause) == (
        "FAILED",
        error,
        cause,
    )


# -- Compensate --------------------------------------------------------------------------------

SAGA = (
    ("Charge", task("Charge", Compensate={"Activity": "Refund"}, ResultPath="charge", Next="Note")),
    ("Note", task("Note", ResultPath=None, Next="Reserve")),
    (
        "Reserve",
        task(
            "Reserve",
            ResultPath="reservation",
            Compensate={
                "Activity": "Release",
                "Parameters": {"id.$": "result.id", "sku.$": "input.sku"},
                "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 2, "MaxAttempts": 1}],
            },
            Next="Ship",
        ),
    ),
    (
        "Ship",
        task(
            "Ship", Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "error", "Next": "Undo"}]
        ),
    ),
    ("Undo", {"Type": "Compensate", "Next": "Failed"}),
    ("Failed", {"Type": "Fail", "ErrorPath": "error.Error", "CausePath": "error.Cause"}),
)


def saga_until_undo() -> Harness:
    h = harness(*SAGA)
    h.start({"sku": "x"})
    h.complete("Charge", {"charge": 1})
    h.complete("Note", "noted")
    h.complete("Reserve", {"id": "r1"})
    return h


def test_compensate_undoes_completed_tasks_in_reverse_completion_order() -> None:
    h = saga_until_undo()
    charged, reserved = [
        e.seq for e in h.history if e.type == events.TASK_SUCCEEDED and e.details["compensable"]
    ]

    failed = h.fail("Ship", "Lost", "truck")
    release = h.task("Undo")
    released = h.complete("Undo", "released")
    refunded = h.complete("Undo", "refunded")

    assert log(failed.events)[3:] == [
        ev(
            events.COMPENSATION_SCHEDULED,
            "Undo",
            steps=[{"seq": reserved, "state": "Reserve"}, {"seq": charged, "state": "Charge"}],
        ),
        ev(
            events.TASK_SCHEDULED,
            "Undo",
            task_id=release.id,
            activity="Release",
            input={"id": "r1", "sku": "x"},
            attempt=1,
            key=f"{ID}:Reserve:undo:{reserved}",
            queue="default",
            timeout=None,
            heartbeat=None,
            compensates=reserved,
        ),
    ]
    assert release.compensates == reserved
    refund = changes(failed.state, released.state).new_tasks[0]
    assert (refund.activity, refund.compensates, refund.input) == (
        "Refund",
        charged,
        {"input": {"sku": "x"}, "result": {"charge": 1}},
    )
    assert steps(refunded.events) == [
        (events.TASK_SUCCEEDED, "Undo"),
        (events.STATE_EXITED, "Undo"),
        (events.STATE_ENTERED, "Failed"),
        (events.EXECUTION_FAILED, None),
    ]
    assert (refunded.state.error, refunded.state.cause) == ("Lost", "truck")
    assert all(c.compensated for c in refunded.state.completions)


def test_an_undo_step_that_fails_is_retried_with_its_own_rules_then_by_default() -> None:
    h = saga_until_undo()
    h.fail("Ship", "Lost")
    first_key = h.task("Undo").key

    busy = h.fail("Undo", "Busy")
    again = h.fire("retry")
    busy_again = h.fail("Undo", "Busy")  # its own rule allows one retry only

    assert log(busy.events)[1:] == [
        ev(
            events.RETRY_SCHEDULED,
            "Undo",
            retrier=busy.events[1].details["retrier"],
            retry=1,
            delay=2.0,
            error="Busy",
            cause="",
        ),
        ev(
            events.TIMER_STARTED,
            "Undo",
            timer_id=busy.events[2].details["timer_id"],
            due=T0 + 2,
            purpose="retry",
        ),
    ]
    retried = changes(busy.state, again.state).new_tasks
    assert [(t.activity, t.attempt, t.key) for t in retried] == [("Release", 2, first_key)]
    assert busy_again.state.status == "FAILED"
    assert busy_again.state.error == "Busy"

    plain = saga_until_undo()
    plain.fail("Ship", "Lost")
    plain.complete("Undo", "released")
    refund_failed = plain.fail("Undo", "Down")  # Refund has no Retry: the default applies
    assert steps(refund_failed.events)[-2:] == [
        (events.RETRY_SCHEDULED, "Undo"),
        (events.TIMER_STARTED, "Undo"),
    ]
    assert refund_failed.events[-2].details["delay"] == failures.COMPENSATION_RETRY.interval


def test_undo_parameters_that_do_not_fit_fail_with_states_runtime() -> None:
    h = harness(
        (
            "One",
            task(
                "One",
                Compensate={"Activity": "UndoOne", "Parameters": {"n.$": "length(result)"}},
                ResultPath=None,
                Next="Two",
            ),
        ),
        ("Two", task("Two", Compensate={"Activity": "UndoTwo"}, ResultPath=None, Next="Undo")),
        ("Undo", {"Type": "Compensate", "End": True}),
    )
    h.start({})
    h.complete("One", 5)
    h.complete("Two", "ab")

    decision = h.complete("Undo", None)  # UndoTwo is done; One's undo needs length(5)

    assert steps(decision.events) == [
        (events.TASK_SUCCEEDED, "Undo"),
        (events.EXECUTION_FAILED, None),
    ]
    assert decision.state.error == names.RUNTIME
    assert "length()" in (decision.state.cause or "")


def test_compensate_with_nothing_to_undo_passes_its_input_on() -> None:
    h = harness(
        ("Plain", task("Plain", Next="Undo")),
        ("Undo", {"Type": "Compensate", "End": True}),
    )
    h.start({"a": 1})

    decision = h.complete("Plain", 2)

    assert log(decision.events)[-3:] == [
        ev(events.COMPENSATION_SCHEDULED, "Undo", steps=[]),
        ev(events.STATE_EXITED, "Undo", output=2),
        ev(events.EXECUTION_SUCCEEDED, output=2),
    ]


def test_compensate_undoes_only_tasks_of_its_scope() -> None:
    comp = {"Compensate": {"Activity": "Undo"}}
    h = harness(
        ("Outer", task("Outer", **comp, Next="Both")),
        (
            "Both",
            parallel(
                {
                    "StartAt": "Inner",
                    "States": {
                        "Inner": task("Inner", **comp, Next="UndoInner"),
                        "UndoInner": {"Type": "Compensate", "End": True},
                    },
                },
            ),
        ),
    )
    h.start({})
    h.complete("Outer", 1)
    before = h.state

    decision = h.complete("Inner", 2)

    new_tasks = changes(before, decision.state).new_tasks
    assert [(t.scope, as_object(t.input)["result"]) for t in new_tasks] == [("Both[0]", 2)]


def test_compensation_follows_completion_order_not_definition_order() -> None:
    comp = {"Compensate": {"Activity": "Undo", "Parameters": {"of.$": "result"}}}
    h = harness(
        (
            "Both",
            parallel(branch("A", task("A", **comp)), branch("B", task("B", **comp)), Next="Undo"),
        ),
        ("Undo", {"Type": "Compensate", "End": True}),
    )
    h.start({})
    completed_b = h.complete("B", "b")

    decision = h.complete("A", "a")
    first_undo = changes(completed_b.state, decision.state).new_tasks[0]
    second = h.when(CompleteTask(task_id=first_undo.id, result=None))

    assert first_undo.input == {"of": "a"}
    assert [t.input for t in changes(decision.state, second.state).new_tasks] == [{"of": "b"}]


# -- data flow ---------------------------------------------------------------------------------


def test_parameters_read_the_context_object() -> None:
    h = harness(
        (
            "Call",
            task(
                "Call",
                InputPath="order",
                Parameters={
                    "key.$": "$$.Task.IdempotencyKey",
                    "retries.$": "$$.State.RetryCount",
                    "execution.$": "$$.Execution.Id",
                    "state.$": "$$.State.Name",
                    "entered.$": "$$.State.EnteredTime",
                    "started.$": "$$.Execution.StartTime",
                    "first.$": "$$.Execution.Input.order.id",
                    "workflow.$": "$$.Workflow",
                    "id.$": "id",
                    "nested": {"id.$": "id", "fixed": [1, {"again.$": "id"}]},
                    "literal": "as is",
                },
                Retry=[{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1}],
            ),
        )
    )
    h.start({"order": {"id": "o7"}})
    first = h.task("Call").input
    h.fail("Call", "Flaky")
    h.fire("retry")
    second = as_object(h.task("Call").input)

    assert first == {
        "key": f"{ID}:Call:1",
        "retries": 0,
        "execution": ID,
        "state": "Call",
        "entered": "2026-01-01T00:00:00Z",
        "started": "2026-01-01T00:00:00Z",
        "first": "o7",
        "workflow": {"Name": "test", "Version": 1},
        "id": "o7",
        "nested": {"id": "o7", "fixed": [1, {"again": "o7"}]},
        "literal": "as is",
    }
    assert (second["key"], second["retries"]) == (f"{ID}:Call:1", 1)


@pytest.mark.parametrize(
    ("fields", "output"),
    [
        ({}, {"r": 1}),
        ({"ResultPath": "@"}, {"r": 1}),
        ({"ResultPath": None}, {"a": {"b": 1}}),
        ({"ResultPath": "res"}, {"a": {"b": 1}, "res": {"r": 1}}),
        ({"ResultPath": "a.c"}, {"a": {"b": 1, "c": {"r": 1}}}),
        ({"ResultPath": "x.y.z"}, {"a": {"b": 1}, "x": {"y": {"z": {"r": 1}}}}),
        (
            {"ResultSelector": {"got.$": "r", "k": 0}, "ResultPath": "s"},
            {"a": {"b": 1}, "s": {"got": 1, "k": 0}},
        ),
        ({"ResultPath": "res", "OutputPath": "res.r"}, 1),
        ({"InputPath": "a", "ResultPath": "res"}, {"a": {"b": 1}, "res": {"r": 1}}),
        ({"InputPath": None}, {"r": 1}),
        ({"OutputPath": None}, {}),
        ({"ResultPath": None, "OutputPath": "a"}, {"b": 1}),
    ],
)
def test_task_result_data_flow(fields: dict[str, Any], output: Any) -> None:
    h = harness(("Call", task("Call", **fields)))
    h.start({"a": {"b": 1}})

    assert h.complete("Call", {"r": 1}).state.output == output


def test_input_path_and_null_input_path_shape_what_the_activity_gets() -> None:
    picked = harness(("Call", task("Call", InputPath="a")))
    empty = harness(("Call", task("Call", InputPath=None, Parameters={"k": 1})))

    def first_input(h: Harness) -> Any:
        return changes(st.initial_state(), h.start({"a": [1]}).state).new_tasks[0].input

    assert first_input(picked) == [1]
    assert first_input(empty) == {"k": 1}


@pytest.mark.parametrize(
    ("input", "result_path"),
    [([1, 2], "res"), ("text", "res"), ({"a": 5}, "a.b"), ({"a": [1]}, "a.b")],
)
def test_a_result_path_into_a_non_object_fails_with_states_runtime(
    input: Any, result_path: str
) -> None:
    h = harness(
        (
            "Call",
            task(
                "Call",
                ResultPath=result_path,
                Retry=[{"ErrorEquals": ["States.ALL"]}],
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            ),
        ),
        ("Caught", {"Type": "Succeed"}),
    )
    h.start(input)

    decision = h.complete("Call", 1)

    assert steps(decision.events) == [
        (events.TASK_SUCCEEDED, "Call"),
        (events.EXECUTION_FAILED, None),
    ]
    assert decision.state.error == names.RUNTIME


def test_a_catch_result_path_into_a_non_object_fails_with_states_runtime() -> None:
    h = harness(
        ("Call", task("Call", Catch=[{"ErrorEquals": ["E"], "ResultPath": "e", "Next": "C"}])),
        ("C", {"Type": "Succeed"}),
    )
    h.start([1])

    decision = h.fail("Call", "E")

    assert (decision.state.status, decision.state.error) == ("FAILED", names.RUNTIME)


# -- retry and catch ---------------------------------------------------------------------------


def fail_n_times(h: Harness, state: str, error: str, n: int) -> list[events.Event]:
    """Fail the task ``n`` times, firing each retry timer; return the RetryScheduled events."""
    for _ in range(n):
        h.fail(state, error)
        if h.state.closed or not h.state.timers:
            break
        h.fire("retry", state)
    return [e for e in h.history if e.type == events.RETRY_SCHEDULED]


def test_retry_delays_grow_by_the_backoff_rate_up_to_the_cap() -> None:
    h = harness(
        (
            "Call",
            task(
                "Call",
                Retry=[
                    {
                        "ErrorEquals": ["Flaky"],
                        "IntervalSeconds": 2,
                        "BackoffRate": 3,
                        "MaxAttempts": 5,
                        "MaxDelaySeconds": 50,
                    }
                ],
            ),
        )
    )
    h.start({})
    timers: list[tuple[float, float]] = []
    for _ in range(5):
        failed_at = h.now
        h.fail("Call", "Flaky")
        timer = h.timer("retry")
        timers.append((failed_at, timer.due))
        h.fire("retry")
        h.now += 7  # the next attempt runs for a while before it fails

    retries = [e.details for e in h.history if e.type == events.RETRY_SCHEDULED]
    assert [(r["retry"], r["delay"]) for r in retries] == [
        (1, 2.0),
        (2, 6.0),
        (3, 18.0),
        (4, 50.0),
        (5, 50.0),
    ]
    assert [due - at for at, due in timers] == [2.0, 6.0, 18.0, 50.0, 50.0]
    assert [t.attempt for t in h.state.tasks.values()] == [6]
    exhausted = h.fail("Call", "Flaky")
    assert (exhausted.state.status, exhausted.state.error) == ("FAILED", "Flaky")


def test_retry_keeps_the_idempotency_key_and_counts_attempts() -> None:
    h = harness(("Call", task("Call", Retry=[{"ErrorEquals": ["Flaky"]}])))
    h.start({})
    scheduled = []
    for _ in range(3):
        scheduled.append(h.task("Call"))
        h.fail("Call", "Flaky")
        h.fire("retry")
    scheduled.append(h.task("Call"))

    assert [(t.attempt, t.key) for t in scheduled] == [(n, f"{ID}:Call:1") for n in (1, 2, 3, 4)]
    assert len({t.id for t in scheduled}) == 4


def test_exhausted_retries_go_to_the_catch() -> None:
    h = harness(
        (
            "Call",
            task(
                "Call",
                Retry=[{"ErrorEquals": ["Flaky"], "MaxAttempts": 2}],
                Catch=[{"ErrorEquals": ["Flaky"], "ResultPath": "err", "Next": "Handle"}],
            ),
        ),
        ("Handle", {"Type": "Pass", "End": True}),
    )
    h.start({})

    retries = fail_n_times(h, "Call", "Flaky", 3)

    assert [r.details["retry"] for r in retries] == [1, 2]
    assert h.state.output == {"err": {"Error": "Flaky", "Cause": ""}}


def test_max_attempts_zero_never_retries() -> None:
    h = harness(("Call", task("Call", Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}])))
    h.start({})

    decision = h.fail("Call", "Any")

    assert steps(decision.events) == [(events.TASK_FAILED, "Call"), (events.EXECUTION_FAILED, None)]


def test_the_first_matching_retrier_decides_even_when_exhausted() -> None:
    h = harness(
        (
            "Call",
            task(
                "Call",
                Retry=[
                    {"ErrorEquals": ["A"], "MaxAttempts": 1, "IntervalSeconds": 1},
                    {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5, "IntervalSeconds": 9},
                ],
            ),
        )
    )
    h.start({})

    h.fail("Call", "B")
    h.fire("retry")
    h.fail("Call", "A")
    h.fire("retry")
    last = h.fail("Call", "A")

    retries = [e.details for e in h.history if e.type == events.RETRY_SCHEDULED]
    assert [(r["retrier"], r["error"], r["delay"]) for r in retries] == [
        ("1", "B", 9.0),
        ("0", "A", 1.0),
    ]
    assert last.state.error == "A"
    assert last.state.status == "FAILED"


def test_full_jitter_stays_within_the_delay_and_is_the_same_on_replay() -> None:
    body = flow(
        {
            "Call": task(
                "Call",
                Retry=[
                    {
                        "ErrorEquals": ["Flaky"],
                        "IntervalSeconds": 4,
                        "BackoffRate": 2,
                        "MaxAttempts": 6,
                        "JitterStrategy": "FULL",
                    }
                ],
            )
        }
    )
    script = {"Call": [Outcome.fail("Flaky")] * 6 + [Outcome.succeed(1)]}

    one = simulate(body, {}, script)
    two = simulate(body, {}, script)

    delays = [as_number(e.details["delay"]) for e in one.of_type(events.RETRY_SCHEDULED)]
    assert len(delays) == 6
    assert all(0 <= d <= 4 * 2**n for n, d in enumerate(delays))
    assert delays != [4 * 2**n for n in range(6)]
    assert delays == [e.details["delay"] for e in two.of_type(events.RETRY_SCHEDULED)]
    assert one.output == 1


def test_backoff_is_capped_then_jittered_deterministically() -> None:
    rule = model.Retrier(errors=("E",), interval=3, backoff_rate=2, max_delay=10, full_jitter=True)
    plain = model.Retrier(errors=("E",), interval=3, backoff_rate=2, max_delay=10)

    assert [failures.backoff(plain, n, "k") for n in range(4)] == [3, 6, 10, 10]
    jittered = [failures.backoff(rule, n, "k") for n in range(200)]
    assert all(0 <= d <= 10 for d in jittered)
    assert jittered == [failures.backoff(rule, n, "k") for n in range(200)]
    assert jittered != [failures.backoff(rule, n, "other") for n in range(200)]
    assert max(jittered) > 5 and min(jittered) < 5


def test_backoff_of_a_long_retry_policy_stays_at_its_cap() -> None:
    capped = model.Retrier(errors=("E",), interval=1.0, backoff_rate=2.0, max_delay=60)
    uncapped = model.Retrier(errors=("E",), interval=1.0, backoff_rate=2.0)

    assert failures.backoff(capped, 5000, "k") == 60
    assert failures.backoff(uncapped, 5000, "k") == failures.MAX_RETRY_DELAY
    assert failures.backoff(uncapped, 10, "k") == 1024


@pytest.mark.parametrize(
    ("names", "error", "expected"),
    [
        (("States.ALL",), "Anything", True),
        (("States.ALL",), "States.Timeout", True),
        (("States.ALL",), "States.Runtime", False),
        (("States.TaskFailed",), "CardDeclined", True),
        (("States.TaskFailed",), "States.Timeout", False),
        (("States.TaskFailed",), "States.HeartbeatTimeout", False),
        (("States.Timeout",), "States.HeartbeatTimeout", True),
        (("States.HeartbeatTimeout",), "States.Timeout", False),
        (("States.Timeout",), "States.TaskFailed", False),
        (("A", "B"), "B", True),
        (("A",), "a", False),
    ],
)
def test_error_matching(names: tuple[str, ...], error: str, expected: bool) -> None:
    assert failures.matches(names, error) is expected


def test_a_timeout_is_not_a_task_failure() -> None:
    h = harness(
        (
            "Call",
            task(
                "Call",
                Retry=[{"ErrorEquals": ["States.TaskFailed"]}],
                Catch=[{"ErrorEquals": ["States.Timeout"], "Next": "Late"}],
            ),
        ),
        ("Late", {"Type": "Pass", "End": True}),
    )
    h.start({})
    call = h.task("Call").id

    decision = h.when(TimeOutTask(task_id=call, error=names.TIMEOUT, cause="30 s"))

    assert log(decision.events)[:2] == [
        ev(events.TASK_TIMED_OUT, "Call", task_id=call, error=names.TIMEOUT, cause="30 s"),
        ev(
            events.STATE_EXITED,
            "Call",
            output={"Error": names.TIMEOUT, "Cause": "30 s"},
            error=names.TIMEOUT,
        ),
    ]
    assert decision.state.status == "SUCCEEDED"


@pytest.mark.parametrize("rule", ["States.HeartbeatTimeout", "States.Timeout", "States.ALL"])
def test_a_heartbeat_timeout_goes_through_retry(rule: str) -> None:
    h = harness(("Call", task("Call", HeartbeatSeconds=5, Retry=[{"ErrorEquals": [rule]}])))
    h.start({})

    decision = h.when(
        TimeOutTask(task_id=h.task("Call").id, error=names.HEARTBEAT_TIMEOUT, cause="")
    )

    assert steps(decision.events) == [
        (events.TASK_TIMED_OUT, "Call"),
        (events.RETRY_SCHEDULED, "Call"),
        (events.TIMER_STARTED, "Call"),
    ]


def test_a_non_retryable_failure_skips_retry_but_is_caught() -> None:
    h = harness(
        (
            "Call",
            task(
                "Call",
                Retry=[{"ErrorEquals": ["States.ALL"]}],
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            ),
        ),
        ("Caught", {"Type": "Pass", "End": True}),
    )
    h.start({})

    decision = h.when(
        FailTask(task_id=h.task("Call").id, error="Fatal", cause="no", retryable=False)
    )

    assert events.RETRY_SCHEDULED not in [e.type for e in decision.events]
    assert decision.state.output == {"Error": "Fatal", "Cause": "no"}


def test_catchers_are_tried_in_order() -> None:
    h = harness(
        (
            "Call",
            task(
                "Call",
                Catch=[
                    {"ErrorEquals": ["Other"], "Next": "Wrong"},
                    {"ErrorEquals": ["E"], "ResultPath": None, "Next": "Right"},
                    {"ErrorEquals": ["States.ALL"], "Next": "Wrong"},
                ],
            ),
        ),
        ("Right", {"Type": "Pass", "Result": "right", "End": True}),
        ("Wrong", {"Type": "Pass", "Result": "wrong", "End": True}),
    )
    h.start({"keep": 1})

    assert h.fail("Call", "E").state.output == "right"
    assert [e.state for e in h.history if e.type == events.STATE_ENTERED] == ["Call", "Right"]


def test_states_runtime_inside_a_branch_is_not_caught_by_the_parallel() -> None:
    h = harness(
        (
            "Both",
            parallel(
                branch("Bad", task("Bad", ResultPath="x")),
                Retry=[{"ErrorEquals": ["States.ALL"]}],
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            ),
        ),
        ("Caught", {"Type": "Succeed"}),
    )
    h.start("not an object")

    decision = h.complete("Bad", 1)

    assert steps(decision.events)[-3:] == [
        (events.BRANCH_FAILED, "Both"),
        (events.BRANCHES_CANCELLED, "Both"),
        (events.EXECUTION_FAILED, None),
    ]
    assert decision.state.error == names.RUNTIME


# -- execution timeout and cancel --------------------------------------------------------------


def test_the_execution_times_out_when_its_timer_fires() -> None:
    h = harness(("Call", task("Call")), TimeoutSeconds=600)
    started = h.start({})
    call = h.task("Call").id

    decision = h.fire("execution")

    timer = changes(st.initial_state(), started.state).new_timers[0]
    assert (timer.due, timer.purpose, timer.state) == (T0 + 600, "execution", None)
    assert log(decision.events) == [
        ev(events.TIMER_FIRED, timer_id=timer.id),
        ev(
            events.EXECUTION_TIMED_OUT,
            error=names.TIMEOUT,
            cause="the execution ran longer than its TimeoutSeconds (600)",
        ),
    ]
    assert decision.events[-1].time == T0 + 600
    assert decision.state.status == "TIMED_OUT"
    assert changes(started.state, decision.state).dropped_tasks == (call,)


def test_an_execution_that_ends_drops_its_timeout_timer() -> None:
    h = harness(("Call", task("Call")), TimeoutSeconds=600)
    started = h.start({})

    decision = h.complete("Call", 1)

    assert len(changes(started.state, decision.state).dropped_timers) == 1
    assert decision.state.timers == {}


def test_cancel_closes_the_execution_and_drops_its_tasks_and_timers() -> None:
    h = harness(
        (
            "Both",
            parallel(
                branch("Call", task("Call")),
                branch("Pause", {"Type": "Wait", "Seconds": 60, "End": True}),
            ),
        ),
        TimeoutSeconds=600,
    )
    h.start({})
    call = h.task("Call").id
    before = h.state

    decision = h.when(Cancel(reason="customer asked"))

    assert log(decision.events) == [
        ev(events.EXECUTION_CANCELLED, error="Execution.Cancelled", reason="customer asked")
    ]
    work = changes(before, decision.state)
    assert work.dropped_tasks == (call,)
    assert len(work.dropped_timers) == 2
    state = decision.state
    assert (state.status, state.error, state.cause) == (
        "CANCELLED",
        "Execution.Cancelled",
        "customer asked",
    )
    assert h.when(CompleteTask(task_id=call, result=1)).events == ()


# -- idempotency keys and loops ----------------------------------------------------------------


def test_idempotency_keys_differ_on_each_entry_of_a_loop() -> None:
    body = flow(
        {
            "Poll": task("Poll", ResultPath="status", Next="Ready?"),
            "Ready?": {
                "Type": "Choice",
                "Choices": [{"Condition": "status == 'done'", "Next": "Done"}],
                "Default": "Poll",
            },
            "Done": {"Type": "Succeed"},
        }
    )
    run = simulate(
        body,
        {},
        {"Poll": lambda t: Outcome.succeed("done" if t.key.endswith(":3") else "busy")},
    )

    keys = [e.details["key"] for e in run.of_type(events.TASK_SCHEDULED)]
    assert keys == [f"{ID}:Poll:1", f"{ID}:Poll:2", f"{ID}:Poll:3"]
    assert run.entered == ["Poll", "Ready?", "Poll", "Ready?", "Poll", "Ready?", "Done"]


def test_a_loop_of_pure_states_that_never_waits_fails_the_execution() -> None:
    h = harness(
        (
            "Spin",
            {
                "Type": "Choice",
                "Choices": [{"Condition": "`true`", "Next": "Again"}],
                "Default": "Out",
            },
        ),
        ("Again", {"Type": "Pass", "Next": "Spin"}),
        ("Out", {"Type": "Succeed"}),
    )

    decision = h.start({})

    assert decision.state.status == "FAILED"
    assert decision.state.error == names.RUNTIME
    assert len(decision.events) < 3 * decider.MAX_STEPS
