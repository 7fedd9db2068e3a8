"""Signals and queries: a signal is recorded when it arrives, whether or not a Wait is there
to take it, and consumed in arrival order; a query reads and never writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cairn import errors
from cairn.cli.main import main
from cairn.client import Client
from cairn.core import events, step
from cairn.runtime import tables
from cairn.runtime.dispatcher import Dispatcher
from tests.integration import actor_flows, support
from tests.integration.support import FakeClock, Recorder

HOUR = 3600

WAITER = """
Name: waiter
Version: 1
StartAt: Prepare
Queries:
  stage: stage
  approval: got.payload
States:
  Prepare:
    Type: Task
    Activity: Actor.Work
    Parameters: {value: prepared}
    ResultPath: stage
    Next: Approval
  Approval:
    Type: Wait
    Seconds: 3600
    Signal: approve
    ResultPath: got
    Next: Second
  Second:
    Type: Wait
    Signal: approve
    ResultPath: again
    End: true
"""
"""A task, then a Wait of an hour that an `approve` signal ends early, then a Wait for a
second `approve` alone (no timer)."""


@pytest.fixture
def work(recorder: Recorder) -> Recorder:
    recorder.add("Actor.Work", actor_flows.work)
    return recorder


@pytest.fixture
def waiter(client: Client) -> Client:
    support.deploy(client, WAITER)
    return client


def stored(client: Client, execution_id: str) -> tuple[Any, ...]:
    """Everything a read must leave alone: the execution row and the number of events."""
    with client.writer.read() as conn:
        row = conn.execute(
            sa.select(tables.executions).where(tables.executions.c.id == execution_id)
        ).one()
    return (tuple(row), support.count_rows(client, tables.events, execution_id))


def test_signals_sent_before_the_wait_are_kept_and_consumed_in_arrival_order(
    dispatcher: Dispatcher, waiter: Client, work: Recorder
) -> None:
    execution_id = waiter.start("waiter", {}, execution_id="w-early")["id"]
    # Nothing waits yet: Prepare has not even run.
    waiter.signal(execution_id, "approve", {"by": "ann"})
    waiter.signal(execution_id, "approve", {"by": "bob"})
    waiter.signal(execution_id, "unrelated", 1)
    assert [(s["name"], s["payload"]) for s in waiter.inspect(execution_id)["signals"]] == [
        ("approve", {"by": "ann"}),
        ("approve", {"by": "bob"}),
        ("unrelated", 1),
    ]
    support.drain(dispatcher, work.registry)

    view = waiter.inspect(execution_id)
    assert view["status"] == "SUCCEEDED", view
    assert view["output"]["got"] == {"signal": "approve", "payload": {"by": "ann"}}
    assert view["output"]["again"] == {"signal": "approve", "payload": {"by": "bob"}}
    assert view["signals"] == [{"name": "unrelated", "payload": 1}]
    received = support.history(waiter, execution_id, events.SIGNAL_RECEIVED)
    consumed = support.history(waiter, execution_id, events.SIGNAL_CONSUMED)
    assert [(e.state, e.details["signal"]) for e in consumed] == [
        ("Approval", received[0].seq),
        ("Second", received[1].seq),
    ]
    # Received before the Wait was entered; the Wait never started its hour.
    entered = support.history(waiter, execution_id, events.STATE_ENTERED)
    assert received[-1].seq < next(e.seq for e in entered if e.state == "Approval")
    assert support.history(waiter, execution_id, events.TIMER_STARTED) == []
    support.assert_replays(waiter)


def test_a_signal_ends_a_timed_wait_and_a_wait_without_timer_waits_for_it(
    dispatcher: Dispatcher, waiter: Client, work: Recorder, clock: FakeClock
) -> None:
    execution_id = waiter.start("waiter", {}, execution_id="w-late")["id"]
    support.drain(dispatcher, work.registry)
    view = waiter.inspect(execution_id)
    assert [s["state"] for s in view["states"]] == ["Approval"]
    assert [(t["purpose"], t["due"]) for t in view["timers"]] == [
        ("wait", step.iso(clock.now + HOUR))
    ]

    clock.advance(HOUR / 2)
    waiter.signal(execution_id, "approve", {"by": "cy"})
    assert support.types_of(waiter, execution_id)[-5:] == [
        events.SIGNAL_RECEIVED,
        events.SIGNAL_CONSUMED,
        events.TIMER_CANCELLED,
        events.STATE_EXITED,
        events.STATE_ENTERED,
    ]
    view = waiter.inspect(execution_id)
    assert [s["state"] for s in view["states"]] == ["Second"]
    assert view["timers"] == []
    assert support.count_rows(waiter, tables.timers) == 0

    # Second waits for the signal alone: time passing changes nothing.
    clock.advance(400 * 86_400)
    assert dispatcher.fire_due_timers() == 0
    assert waiter.describe(execution_id)["status"] == "RUNNING"
    waiter.signal(execution_id, "approve", "twice")
    view = support.wait_closed(waiter, execution_id)
    assert view["status"] == "SUCCEEDED"
    assert view["output"]["again"] == {"signal": "approve", "payload": "twice"}
    support.assert_replays(waiter)


def test_without_a_signal_the_timer_ends_the_wait_with_null(
    dispatcher: Dispatcher, waiter: Client, work: Recorder, clock: FakeClock
) -> None:
    execution_id = waiter.start("waiter", {}, execution_id="w-none")["id"]
    support.drain(dispatcher, work.registry)
    clock.advance(HOUR - 1)
    assert dispatcher.fire_due_timers() == 0
    clock.advance(1)
    assert dispatcher.fire_due_timers() == 1
    view = waiter.inspect(execution_id)
    assert [s["state"] for s in view["states"]] == ["Second"]
    assert view["states"][0]["input"]["got"] is None
    assert waiter.query(execution_id, "approval") is None
    support.assert_replays(waiter)


def test_signals_to_closed_or_unknown_executions_are_refused(
    waiter: Client, work: Recorder, db_url: str
) -> None:
    with pytest.raises(errors.NotFound, match="no execution 'nobody'"):
        waiter.signal("nobody", "approve")
    execution_id = waiter.start("waiter", {}, execution_id="w-closed")["id"]
    waiter.cancel(execution_id, "not needed")
    before = stored(waiter, execution_id)
    with pytest.raises(errors.Conflict, match="is CANCELLED, not running"):
        waiter.signal(execution_id, "approve")
    assert stored(waiter, execution_id) == before

    runner = CliRunner()
    unknown = runner.invoke(main, ["--db", db_url, "signal", "nobody", "approve"])
    assert unknown.exit_code == 2, unknown.output
    assert "no execution 'nobody'" in unknown.stderr
    closed = runner.invoke(main, ["--db", db_url, "signal", execution_id, "approve"])
    assert closed.exit_code == 1, closed.output
    assert "CANCELLED" in closed.stderr and "Traceback" not in closed.output
    assert stored(waiter, execution_id) == before


def test_queries_read_the_current_data_and_never_write(
    dispatcher: Dispatcher, waiter: Client, work: Recorder, db_url: str
) -> None:
    execution_id = waiter.start("waiter", {}, execution_id="w-query")["id"]
    support.drain(dispatcher, work.registry)
    waiter.signal(execution_id, "later", {"n": 1})
    before = stored(waiter, execution_id)

    assert waiter.query(execution_id, "stage") == "prepared"
    assert waiter.query(execution_id, "approval") is None
    view = waiter.inspect(execution_id)
    assert [s["state"] for s in view["states"]] == ["Approval"]
    assert view["signals"] == [{"name": "later", "payload": {"n": 1}}]
    waiter.describe(execution_id)
    with pytest.raises(errors.NotFound, match=r"no query 'nope' \(queries: approval, stage\)"):
        waiter.query(execution_id, "nope")
    with pytest.raises(errors.NotFound):
        waiter.query("nobody", "stage")
    runner = CliRunner()
    named = runner.invoke(main, ["--db", db_url, "query", execution_id, "stage"])
    assert named.exit_code == 0, named.output
    assert json.loads(named.stdout) == "prepared"
    whole = runner.invoke(main, ["--db", db_url, "query", execution_id])
    assert whole.exit_code == 0, whole.output
    assert [s["state"] for s in json.loads(whole.stdout)["states"]] == ["Approval"]
    assert stored(waiter, execution_id) == before

    # Once the execution succeeded, queries read its output.
    waiter.signal(execution_id, "approve", {"by": "dee"})
    waiter.signal(execution_id, "approve", None)
    assert waiter.describe(execution_id)["status"] == "SUCCEEDED"
    assert waiter.query(execution_id, "approval") == {"by": "dee"}
    support.assert_replays(waiter)
