"""Durable timers: a long Wait is one database row, fired by whoever looks once it is due."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cairn import errors
from cairn.client import Client
from cairn.core import events
from cairn.runtime import tables, worker
from cairn.runtime.dispatcher import Dispatcher
from tests.integration import support
from tests.integration.support import FakeClock, Recorder

DAY = 86_400

MONTH = """
Name: month
Version: 1
StartAt: Hold
States:
  Hold:
    Type: Wait
    Seconds: 2592000
    Next: After
  After:
    Type: Task
    Activity: Echo
    End: true
"""

APPROVAL = """
Name: approval
Version: 1
StartAt: Prepare
States:
  Prepare:
    Type: Task
    Activity: Echo
    Next: Await
  Await:
    Type: Wait
    Seconds: 86400
    Signal: approve
    ResultPath: approval
    Next: Done
  Done:
    Type: Succeed
"""


@pytest.fixture
def echo(recorder: Recorder) -> Recorder:
    recorder.add("Echo", lambda params, ctx: params)
    return recorder


def test_a_thirty_day_wait_is_one_timer_row_fired_once_due(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, echo: Recorder
) -> None:
    support.deploy(client, MONTH)
    execution_id = client.start("month", {"n": 1})["id"]
    assert support.types_of(client, execution_id) == [
        events.EXECUTION_STARTED,
        events.STATE_ENTERED,
        events.TIMER_STARTED,
    ]
    assert support.count_rows(client, tables.timers) == 1
    assert support.count_rows(client, tables.tasks) == 0
    (timer,) = client.inspect(execution_id)["timers"]
    assert (timer["purpose"], timer["due"]) == ("wait", "2026-01-31T00:00:00Z")

    clock.advance(30 * DAY - 1)
    assert dispatcher.fire_due_timers() == 0
    assert client.describe(execution_id)["status"] == "RUNNING"
    clock.advance(1)
    assert dispatcher.fire_due_timers() == 1
    assert support.count_rows(client, tables.timers) == 0
    support.work_one(dispatcher, echo.registry)
    view = client.describe(execution_id)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"n": 1})
    assert support.entered(client, execution_id) == ["Hold", "After"]
    support.assert_replays(client)


def test_a_worker_started_after_the_due_time_fires_the_timer_at_once(
    dispatcher: Dispatcher,
    client: Client,
    clock: FakeClock,
    echo: Recorder,
    start_worker: Callable[..., worker.Worker],
) -> None:
    support.deploy(client, MONTH)
    execution_id = client.start("month", {"n": 2})["id"]
    clock.advance(45 * DAY)  # nobody was running while the timer came due
    start_worker(dispatcher, echo.registry)
    view = support.wait_closed(client, execution_id)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"n": 2})
    (fired,) = support.history(client, execution_id, events.TIMER_FIRED)
    assert fired.time == clock.now
    support.assert_replays(client)


def test_a_signal_ends_the_wait_and_removes_its_timer(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, echo: Recorder
) -> None:
    support.deploy(client, APPROVAL)
    execution_id = client.start("approval", {})["id"]
    support.work_one(dispatcher, echo.registry)
    assert support.count_rows(client, tables.timers) == 1
    clock.advance(3600)
    client.signal(execution_id, "approve", {"by": "ann"})
    assert support.count_rows(client, tables.timers) == 0
    view = client.describe(execution_id)
    assert view["status"] == "SUCCEEDED"
    assert view["output"] == {"approval": {"signal": "approve", "payload": {"by": "ann"}}}
    types = support.types_of(client, execution_id)
    assert types.index(events.SIGNAL_RECEIVED) < types.index(events.SIGNAL_CONSUMED)
    assert events.TIMER_CANCELLED in types and events.TIMER_FIRED not in types
    clock.advance(2 * DAY)
    assert dispatcher.fire_due_timers() == 0
    with pytest.raises(errors.Conflict, match="is SUCCEEDED, not running"):
        client.signal(execution_id, "approve")
    support.assert_replays(client)


def test_a_signal_sent_before_the_wait_is_kept_until_the_wait_takes_it(
    dispatcher: Dispatcher, client: Client, echo: Recorder
) -> None:
    support.deploy(client, APPROVAL)
    execution_id = client.start("approval", {})["id"]
    client.signal(execution_id, "approve", "first")
    client.signal(execution_id, "approve", "second")
    assert [s["payload"] for s in client.inspect(execution_id)["signals"]] == ["first", "second"]
    support.work_one(dispatcher, echo.registry)
    view = client.describe(execution_id)
    assert view["status"] == "SUCCEEDED"
    assert view["output"]["approval"] == {"signal": "approve", "payload": "first"}
    assert support.count_rows(client, tables.timers) == 0
    assert events.TIMER_STARTED not in support.types_of(client, execution_id)
    support.assert_replays(client)


def test_without_a_signal_the_timer_ends_the_wait_with_a_null_result(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, echo: Recorder
) -> None:
    support.deploy(client, APPROVAL)
    execution_id = client.start("approval", {"id": 7})["id"]
    support.work_one(dispatcher, echo.registry)
    clock.advance(DAY)
    assert dispatcher.fire_due_timers() == 1
    view = client.describe(execution_id)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"id": 7, "approval": None})
    support.assert_replays(client)
