"""OnCancel: a cancelled execution drops its work in flight and goes on at the named state."""

from __future__ import annotations

from cairn import testing
from cairn.core import commands, decider, evolve, model
from cairn.core import events as ev
from cairn.core import state as st
from cairn.definitions import loader

SAGA = """
Name: hold
Version: 1
StartAt: Charge
OnCancel: Undo
States:
  Charge:
    Type: Task
    Activity: Charge
    Compensate: {Activity: Refund}
    ResultPath: charge
    Next: Hold
  Hold:
    Type: Wait
    Seconds: 1000
    Next: Done
  Done:
    Type: Succeed
  Undo:
    Type: Compensate
    Next: Cancelled
  Cancelled:
    Type: Pass
    Result: {status: cancelled}
    End: true
"""


def holding() -> tuple[model.Definition, st.Execution]:
    """The saga charged and waiting in Hold."""
    spec = model.build(loader.loads(SAGA).body)
    state = decider.decide(
        spec, st.initial_state(), commands.Start(execution_id="x", input={}), 1
    ).state
    (task,) = state.tasks
    state = decider.decide(
        spec, state, commands.CompleteTask(task_id=task, result={"id": 7}), 2
    ).state
    assert [f.state for f in state.frames.values()] == ["Hold"] and state.timers
    return spec, state


def test_cancel_drops_the_wait_and_compensates_then_ends_cancelled() -> None:
    spec, state = holding()
    cancelled = decider.decide(spec, state, commands.Cancel(reason="customer asked"), 3)
    assert [e.type for e in cancelled.events][:2] == [ev.CANCEL_REQUESTED, ev.STATE_ENTERED]
    work = testing.changes(state, cancelled.state)
    assert work.dropped_timers == tuple(state.timers)
    (undo,) = work.new_tasks
    assert (undo.activity, undo.input) == ("Refund", {"input": {}, "result": {"id": 7}})

    done = decider.decide(
        spec, cancelled.state, commands.CompleteTask(task_id=undo.id, result={}), 4
    )
    assert done.state.status == "CANCELLED"
    assert done.state.output == {"status": "cancelled"}
    assert done.state.cause == "customer asked"
    history = [*cancelled.events, *done.events]
    assert st.to_json(evolve.fold([*_history(spec), *history])) == st.to_json(done.state)


def test_a_second_cancel_stops_the_undo_path_at_once() -> None:
    spec, state = holding()
    state = decider.decide(spec, state, commands.Cancel(reason="first"), 3).state
    assert state.status == "RUNNING" and state.tasks
    forced = decider.decide(spec, state, commands.Cancel(reason="now"), 4)
    assert forced.state.status == "CANCELLED" and not forced.state.tasks


def _history(spec: model.Definition) -> list[ev.Event]:
    start = decider.decide(spec, st.initial_state(), commands.Start(execution_id="x", input={}), 1)
    (task,) = start.state.tasks
    charged = decider.decide(
        spec, start.state, commands.CompleteTask(task_id=task, result={"id": 7}), 2
    )
    return [*start.events, *charged.events]
