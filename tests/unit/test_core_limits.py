"""The pure core at its limits: the history limit fails a run cleanly, whichever event passes
it, and a wait whose end is no date fails its state or is held at the last date."""

from __future__ import annotations

from typing import Any

from cairn.core import commands, decider, events, limits, model, names, step
from cairn.core import state as st
from cairn.testing import START_TIME as T0
from cairn.testing import Harness

ID = "exec-1"

SPIN: dict[str, Any] = {
    "Name": "spin",
    "Version": 1,
    "StartAt": "Work",
    "States": {
        "Work": {"Type": "Task", "Activity": "Work", "Next": "Again?"},
        "Again?": {"Type": "Choice", "Choices": [{"Condition": "`true`", "Next": "Work"}]},
    },
}


def spin_until_closed(limit: int) -> tuple[list[events.Event], st.Execution]:
    """Run the Task->Choice loop, each task started and completed, until the run closes."""
    definition = model.build(SPIN)
    decision = decider.decide(
        definition,
        st.initial_state(),
        commands.Start(execution_id=ID, input={}),
        T0,
        history_limit=limit,
    )
    history, state = list(decision.events), decision.state
    while not state.closed:
        (task_id,) = state.tasks
        for command in (
            commands.BeginTask(task_id=task_id, worker="w"),
            commands.CompleteTask(task_id=task_id, result={}),
        ):
            decision = decider.decide(definition, state, command, T0, history_limit=limit)
            history += decision.events
            state = decision.state
    return history, state


def test_a_loop_fails_with_history_limit_exceeded_wherever_the_limit_falls() -> None:
    for limit in range(10, 17):  # seven events a turn: every event of a turn meets one
        history, state = spin_until_closed(limit)
        last = history[-1]
        assert isinstance(last.payload, events.ExecutionFailed)
        assert last.payload.error == names.HISTORY_LIMIT_EXCEEDED
        assert limit < last.seq - 1 <= limit + 7
        assert (state.status, state.tasks, state.timers) == ("FAILED", {}, {})


def test_recording_a_start_past_the_limit_fails_the_run_and_drops_the_task() -> None:
    definition = model.build(SPIN)
    started = decider.decide(
        definition, st.initial_state(), commands.Start(execution_id=ID, input={}), T0
    )
    (task_id,) = started.state.tasks
    assert started.state.seq == 3

    decision = decider.decide(
        definition,
        started.state,
        commands.BeginTask(task_id=task_id, worker="w"),
        T0,
        history_limit=3,
    )

    assert [e.type for e in decision.events] == ["TaskStarted", "ExecutionFailed"]
    assert decision.state.status == "FAILED"
    assert decision.state.error == names.HISTORY_LIMIT_EXCEEDED
    assert decision.state.tasks == {}


def wait(**fields: Any) -> Harness:
    return Harness.of(
        {
            "Name": "w",
            "Version": 1,
            "StartAt": "Nap",
            "States": {"Nap": {"Type": "Wait", "End": True, **fields}},
        }
    )


def test_a_seconds_path_past_the_longest_wait_fails_the_state() -> None:
    decision = wait(SecondsPath="seconds").start({"seconds": 1e300})
    assert decision.state.status == "FAILED"
    assert decision.state.error == names.RUNTIME
    assert decision.state.cause == (
        "SecondsPath 'seconds' of 'Nap' is 1e+300 seconds, longer than the longest wait "
        "(99,999,999 seconds); wait in steps, or until a Timestamp"
    )


def test_seconds_deployed_before_the_limit_fail_the_state_not_describe() -> None:
    # The model takes what is stored: a definition deployed before validation bounded it.
    decision = wait(Seconds=300_000_000_000).start({})
    assert (decision.state.status, decision.state.error) == ("FAILED", names.RUNTIME)
    assert decision.state.timers == {}


def test_the_longest_wait_is_a_timer() -> None:
    decision = wait(Seconds=limits.MAX_SECONDS).start({})
    (timer,) = decision.state.timers.values()
    assert timer.due == T0 + limits.MAX_SECONDS


def test_a_timestamp_past_the_year_9999_is_held_at_its_last_second() -> None:
    decision = wait(TimestampPath="until").start({"until": "9999-12-31T23:59:59-01:00"})
    (timer,) = decision.state.timers.values()
    assert timer.due == limits.LATEST_TIME
    assert step.iso(timer.due) == "9999-12-31T23:59:59Z"


def test_a_timestamp_before_1970_is_due_at_once() -> None:
    decision = wait(Timestamp="0001-01-01T00:00:00+01:00").start({})
    (timer,) = decision.state.timers.values()
    assert timer.due == 0.0
    assert step.iso(timer.due) == "1970-01-01T00:00:00Z"
