"""Cancel: the execution closes as CANCELLED, its timers and tasks go, and an activity that
is still running learns of it at its next heartbeat and its late result is not recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from cairn import errors
from cairn.cli.main import main
from cairn.client import Client
from cairn.core import events
from cairn.jsontypes import JSON
from cairn.runtime import invoke, tables, worker
from cairn.runtime.dispatcher import Dispatcher
from cairn.testing import as_object
from tests.integration import actor_flows, support
from tests.integration.support import FakeClock, Recorder

HOLD = """
Name: hold
Version: 1
StartAt: Long
TimeoutSeconds: 86400
States:
  Long:
    Type: Task
    Activity: Long
    HeartbeatSeconds: 60
    ResultPath: long
    Next: Pause
  Pause:
    Type: Wait
    Seconds: 3600
    Next: Done
  Done:
    Type: Succeed
"""


BOOKING = """
Name: booking
Version: 1
StartAt: Reserve
OnCancel: Undo
States:
  Reserve:
    Type: Task
    Activity: Actor.Work
    Parameters: {value: reserved}
    ResultPath: reserved
    Compensate: {Activity: Actor.Work, Parameters: {tag: Unreserve, value.$: result}}
    Next: Charge
  Charge:
    Type: Task
    Activity: Actor.Work
    Parameters: {value: charged}
    ResultPath: charged
    Compensate: {Activity: Actor.Work, Parameters: {tag: Refund, value.$: result}}
    Next: Hold
  Hold:
    Type: Wait
    Seconds: 86400
    Next: Done
  Done:
    Type: Succeed
  Undo:
    Type: Compensate
    Next: Cancelled
  Cancelled:
    Type: Pass
    Parameters:
      status: cancelled
      reserved.$: reserved
    End: true
"""
"""Reserve, charge, hold a day; a cancel undoes what completed and ends CANCELLED."""


@pytest.fixture
def booking(client: Client, recorder: Recorder) -> Client:
    recorder.add("Actor.Work", actor_flows.work)
    support.deploy(client, BOOKING)
    return client


def undo_tags(recorder: Recorder) -> list[JSON]:
    return [as_object(c.params)["tag"] for c in recorder.calls if as_object(c.params).get("tag")]


@pytest.fixture
def hold(client: Client) -> Client:
    support.deploy(client, HOLD)
    return client


def test_cancel_a_waiting_execution_drops_its_timers_and_closes_it(
    dispatcher: Dispatcher, hold: Client, recorder: Recorder, db_url: str
) -> None:
    recorder.add("Long", lambda params, ctx: "done")
    execution_id = hold.start("hold", {}, execution_id="c-wait")["id"]
    support.drain(dispatcher, recorder.registry)
    assert support.count_rows(hold, tables.timers, execution_id) == 2  # Pause and the timeout

    result = CliRunner().invoke(
        main, ["--db", db_url, "cancel", execution_id, "--reason", "customer left"]
    )
    assert result.exit_code == 0, result.output
    view = hold.describe(execution_id)
    assert (view["status"], view["error"], view["cause"]) == (
        "CANCELLED",
        "Execution.Cancelled",
        "customer left",
    )
    assert view["closed_at"] is not None
    assert support.types_of(hold, execution_id)[-1] == events.EXECUTION_CANCELLED
    assert support.count_rows(hold, tables.timers) == 0
    assert support.count_rows(hold, tables.tasks) == 0
    assert dispatcher.fire_due_timers() == 0

    seq = len(hold.history(execution_id))
    with pytest.raises(errors.Conflict, match="is CANCELLED, not running"):
        hold.cancel(execution_id)
    with pytest.raises(errors.NotFound):
        hold.cancel("nobody")
    again = CliRunner().invoke(main, ["--db", db_url, "cancel", execution_id])
    assert again.exit_code == 1
    assert len(hold.history(execution_id)) == seq
    support.assert_replays(hold)


def test_cancel_a_pending_task_removes_it_from_the_queue(
    dispatcher: Dispatcher, hold: Client, recorder: Recorder
) -> None:
    recorder.add("Long", lambda params, ctx: "done")
    execution_id = hold.start("hold", {}, execution_id="c-queued")["id"]
    assert support.count_rows(hold, tables.tasks) == 1
    hold.cancel(execution_id)
    assert support.count_rows(hold, tables.tasks) == 0
    assert dispatcher.claim(support.offer(recorder.registry)) == []
    assert recorder.count() == 0
    support.assert_replays(hold)


def test_a_running_activity_sees_the_cancel_at_its_heartbeat_and_its_result_is_dropped(
    dispatcher: Dispatcher,
    hold: Client,
    recorder: Recorder,
    clock: FakeClock,
    start_worker: Callable[..., worker.Worker],
) -> None:
    running = threading.Event()
    saw: list[bool] = []

    def long(params: Any, ctx: invoke.Context) -> str:
        running.set()
        deadline = time.monotonic() + support.DEADLINE
        while not ctx.cancelled and time.monotonic() < deadline:
            ctx.heartbeat({"progress": 1})
            time.sleep(0.02)  # the activity's own heartbeat interval
        saw.append(ctx.cancelled)
        return "finished anyway"

    recorder.add("Long", long)
    progress: list[worker.Progress] = []
    start_worker(dispatcher, recorder.registry, concurrency=1, on_progress=progress.append)
    execution_id = hold.start("hold", {}, execution_id="c-running")["id"]
    assert running.wait(support.DEADLINE)
    hold.cancel(execution_id, "stop it")

    support.wait_until(lambda: saw, "the activity to notice the cancel")
    assert saw == [True]
    support.wait_until(lambda: any(p.kind == "lost" for p in progress), "the worker to give up")
    assert [p.kind for p in progress] == ["started", "lost"]
    assert hold.describe(execution_id)["status"] == "CANCELLED"
    types = support.types_of(hold, execution_id)
    assert types[-1] == events.EXECUTION_CANCELLED
    assert events.TASK_SUCCEEDED not in types
    assert support.count_rows(hold, tables.tasks) == 0
    support.assert_replays(hold)


def test_on_cancel_undoes_the_completed_work_then_ends_cancelled(
    dispatcher: Dispatcher, booking: Client, recorder: Recorder
) -> None:
    execution_id = booking.start("booking", {}, execution_id="oc-hold")["id"]
    support.drain(dispatcher, recorder.registry)
    assert [s["state"] for s in booking.inspect(execution_id)["states"]] == ["Hold"]

    booking.cancel(execution_id, "customer asked")
    view = booking.inspect(execution_id)
    assert view["status"] == "RUNNING"  # going on at OnCancel
    assert [s["state"] for s in view["states"]] == ["Undo"]
    assert view["timers"] == []
    assert support.count_rows(booking, tables.timers) == 0
    support.drain(dispatcher, recorder.registry)

    view = booking.inspect(execution_id)
    assert (view["status"], view["error"], view["cause"]) == (
        "CANCELLED",
        "Execution.Cancelled",
        "customer asked",
    )
    assert view["output"] == {"status": "cancelled", "reserved": "reserved"}
    assert undo_tags(recorder) == ["Refund", "Unreserve"]
    assert view["compensated"] == ["Reserve", "Charge"]
    types = support.types_of(booking, execution_id)
    assert types.index(events.CANCEL_REQUESTED) < types.index(events.COMPENSATION_SCHEDULED)
    assert types[-1] == events.EXECUTION_CANCELLED
    support.assert_replays(booking)


def test_on_cancel_drops_the_task_in_flight_and_a_second_cancel_stops_the_undo(
    dispatcher: Dispatcher, booking: Client, recorder: Recorder
) -> None:
    execution_id = booking.start("booking", {}, execution_id="oc-flight")["id"]
    support.work_one(dispatcher, recorder.registry)  # Reserve
    (charge,) = dispatcher.claim(support.offer(recorder.registry))
    booking.cancel(execution_id, "too slow")
    # The charge's late result is not recorded, and only the reservation is undone.
    assert dispatcher.finish(charge, "hand", support.run_claim(charge, recorder.registry)) is None
    view = booking.inspect(execution_id)
    assert [(t["state"], t["compensates"] is not None) for t in view["tasks"]] == [("Undo", True)]
    assert [t["activity"] for t in view["tasks"]] == ["Actor.Work"]

    booking.cancel(execution_id, "stop everything")
    view = booking.inspect(execution_id)
    assert (view["status"], view["cause"]) == ("CANCELLED", "stop everything")
    assert support.count_rows(booking, tables.tasks) == 0
    assert support.drain(dispatcher, recorder.registry) == 0
    assert undo_tags(recorder) == []
    assert view["compensated"] == []
    support.assert_replays(booking)
