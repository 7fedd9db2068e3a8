"""Sagas: a Compensate state undoes, in reverse order of completion, every task of its scope
that completed; the order demo v2 undoes an order cancelled in its 30-day window."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from activities import provider
from cairn.cli.main import main
from cairn.client import Client
from cairn.core import events, step
from cairn.definitions import loader
from cairn.runtime import invoke, tables
from cairn.runtime.dispatcher import Dispatcher
from cairn.testing import as_list, as_object
from tests.integration import actor_flows, support
from tests.integration.support import FakeClock, Recorder

ORDER_V2 = support.ROOT / "definitions" / "order" / "v2.yaml"
DAY = 86_400
QUEUES = ("default", "payments")

TRIP = """
Name: trip
Version: 1
StartAt: Book
States:
  Book:
    Type: Parallel
    Branches:
      - StartAt: Flight
        States:
          Flight:
            Type: Task
            Activity: Actor.Work
            Parameters: {value: flight}
            Compensate: {Activity: Undo, Parameters: {undo.$: result}}
            End: true
      - StartAt: Hotel
        States:
          Hotel:
            Type: Task
            Activity: Actor.Work
            Parameters: {value: hotel}
            Compensate: {Activity: Undo, Parameters: {undo.$: result}}
            Next: Car
          Car:
            Type: Task
            Activity: Actor.Work
            Parameters: {fail: NoCars}
            Compensate: {Activity: Undo, Parameters: {undo: car}}
            End: true
    Catch:
      - ErrorEquals: [States.ALL]
        ResultPath: error
        Next: Unbook
    Next: Done
  Unbook:
    Type: Compensate
    Next: Failed
  Failed:
    Type: Fail
    ErrorPath: error.Error
    CausePath: error.Cause
  Done:
    Type: Succeed
"""
"""Two branches book a flight and a hotel; the car fails, so both bookings are undone."""


@pytest.fixture
def work(recorder: Recorder) -> Recorder:
    recorder.add("Actor.Work", actor_flows.work)
    return recorder


def order(order_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "email": f"{order_id.lower()}@example.com",
        "card": "4242",
        "total": 25.5,
        "items": [{"sku": "BOOK-1", "qty": 2}],
        "address": "1 Harbour Lane",
    }


def drain(dispatcher: Dispatcher, recorder: Recorder) -> int:
    return support.drain(dispatcher, recorder.registry, queues=QUEUES)


def reservations(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT order_id, released FROM reservations").fetchall()


def undo_steps(client: Client, execution_id: str) -> list[tuple[str, str]]:
    """The compensation tasks' events, in history order: (event type, activity)."""
    activity: dict[str, str] = {}
    found = []
    for e in support.history(client, execution_id, events.TASK_SCHEDULED, events.TASK_SUCCEEDED):
        if e.type == events.TASK_SCHEDULED:
            activity[str(e.details["task_id"])] = str(e.details["activity"])
        if e.details.get("compensates") is not None or e.state in ("CancelOrder", "UndoOrder"):
            found.append((e.type, activity[str(e.details["task_id"])]))
    return found


def test_order_v2_cancelled_in_its_window_refunds_and_releases_in_reverse_order(
    dispatcher: Dispatcher,
    client: Client,
    demo: Recorder,
    provider_db: Path,
    clock: FakeClock,
    db_url: str,
) -> None:
    client.deploy(loader.load(ORDER_V2))
    execution_id = client.start("order", order("C1"), execution_id="order-C1")["id"]
    drain(dispatcher, demo)
    view = client.inspect(execution_id)
    assert [s["state"] for s in view["states"]] == ["CancelWindow"]
    assert {t["purpose"]: t["due"] for t in view["timers"]}["wait"] == step.iso(
        clock.now + 30 * DAY
    )
    (charge,) = provider.charges()
    assert client.query(execution_id, "charge") == charge["charge_id"]

    clock.advance(12 * DAY)
    client.signal(execution_id, "cancel", {"reason": "changed my mind"})
    assert drain(dispatcher, demo) == 2
    view = client.inspect(execution_id)
    assert (view["status"], view["output"]) == (
        "SUCCEEDED",
        {"order_id": "C1", "status": "cancelled", "reason": "changed my mind"},
    )
    (plan,) = support.history(client, execution_id, events.COMPENSATION_SCHEDULED)
    assert [as_object(s)["state"] for s in as_list(plan.details["steps"])] == [
        "ReserveInventory",
        "ChargeCard",
    ]
    assert undo_steps(client, execution_id) == [
        (events.TASK_SCHEDULED, "ReleaseInventory"),
        (events.TASK_SUCCEEDED, "ReleaseInventory"),
        (events.TASK_SCHEDULED, "RefundCard"),
        (events.TASK_SUCCEEDED, "RefundCard"),
    ]
    assert view["compensated"] == ["ChargeCard", "ReserveInventory"]
    (charge,) = provider.charges()
    assert (charge["requests"], charge["refunded"]) == (1, 1)
    assert reservations(provider_db) == [("C1", 1)]
    assert demo.count("ShipPackage") == demo.count("SendConfirmationEmail") == 0
    assert [c.activity for c in demo.calls][-2:] == ["ReleaseInventory", "RefundCard"]
    assert (
        support.count_rows(client, tables.timers) == support.count_rows(client, tables.tasks) == 0
    )
    described = CliRunner().invoke(main, ["--db", db_url, "describe", execution_id])
    assert "undone   ChargeCard, ReserveInventory" in described.stdout, described.output
    support.assert_replays(client)


def test_order_v2_cancel_sent_before_the_window_opens_is_not_lost(
    dispatcher: Dispatcher, client: Client, demo: Recorder, provider_db: Path
) -> None:
    client.deploy(loader.load(ORDER_V2))
    execution_id = client.start("order", order("E1"), execution_id="order-E1")["id"]
    client.signal(execution_id, "cancel", {"reason": "too quick"})  # before the fraud screen ran
    drain(dispatcher, demo)
    view = client.describe(execution_id)
    assert view["output"] == {"order_id": "E1", "status": "cancelled", "reason": "too quick"}
    waits = [
        e
        for e in support.history(client, execution_id, events.TIMER_STARTED)
        if e.details["purpose"] == "wait"
    ]
    assert waits == []
    assert [c.activity for c in demo.calls] == [
        "AssessFraudRisk",
        "ChargeCard",
        "ReserveInventory",
        "ReleaseInventory",
        "RefundCard",
    ]
    assert [c["refunded"] for c in provider.charges()] == [1]
    support.assert_replays(client)


def test_order_v2_without_a_cancel_ships_when_the_thirty_days_are_up(
    dispatcher: Dispatcher, client: Client, demo: Recorder, provider_db: Path, clock: FakeClock
) -> None:
    client.deploy(loader.load(ORDER_V2))
    execution_id = client.start("order", order("S1"), execution_id="order-S1")["id"]
    drain(dispatcher, demo)
    clock.advance(30 * DAY - 1)
    assert dispatcher.fire_due_timers() == 0
    assert drain(dispatcher, demo) == 0
    clock.advance(1)
    assert dispatcher.fire_due_timers() == 1
    assert drain(dispatcher, demo) == 2
    view = client.describe(execution_id)
    assert view["status"] == "SUCCEEDED", view
    assert view["output"]["status"] == "shipped"
    assert support.entered(client, execution_id)[-4:] == [
        "CancelWindow",
        "CancelRequested",
        "ShipPackage",
        "SendConfirmationEmail",
    ]
    assert client.history(execution_id)[-1].time == clock.now
    assert demo.count("RefundCard") == demo.count("ReleaseInventory") == 0
    (charge,) = provider.charges()
    assert (charge["requests"], charge["refunded"]) == (1, 0)
    assert reservations(provider_db) == [("S1", 0)]
    support.assert_replays(client)


def test_a_compensate_state_undoes_completed_tasks_only_in_reverse_order(
    dispatcher: Dispatcher, client: Client, work: Recorder
) -> None:
    support.deploy(client, actor_flows.SAGA)
    execution_id = client.start("saga", {}, execution_id="saga-1")["id"]
    support.drain(dispatcher, work.registry)
    view = client.inspect(execution_id)
    assert (view["status"], view["error"]) == ("FAILED", "NoCarrier")
    params = [as_object(c.params) for c in work.calls]
    assert [(p.get("tag"), p.get("value")) for p in params] == [
        (None, "booked"),
        (None, "paid"),
        (None, None),  # Ship, which failed: nothing to undo
        ("UndoPay", "paid"),
        ("UndoBook", "booked"),
    ]
    done = {e.state: e.seq for e in support.history(client, execution_id, events.TASK_SUCCEEDED)}
    assert [c.key for c in work.calls[-2:]] == [
        f"saga-1:Pay:undo:{done['Pay']}",
        f"saga-1:Book:undo:{done['Book']}",
    ]
    assert view["compensated"] == ["Book", "Pay"]
    support.assert_replays(client)


def test_compensation_after_a_parallel_covers_the_branches_that_completed(
    dispatcher: Dispatcher, client: Client, work: Recorder
) -> None:
    undone: list[Any] = []
    work.add("Undo", lambda params, ctx: undone.append(params["undo"]))
    support.deploy(client, TRIP)
    execution_id = client.start("trip", {}, execution_id="trip-1")["id"]
    offer = support.offer(work.registry, slots=2)
    claims = {c.state: c for c in dispatcher.claim(offer)}
    assert sorted(claims) == ["Flight", "Hotel"]
    # The hotel completes first, then the flight; then the car fails.
    for name in ("Hotel", "Flight"):
        dispatcher.finish(claims[name], "hand", support.run_claim(claims[name], work.registry))
    support.drain(dispatcher, work.registry)

    view = client.inspect(execution_id)
    assert (view["status"], view["error"]) == ("FAILED", "NoCars")
    assert undone == ["flight", "hotel"]
    assert view["compensated"] == ["Hotel", "Flight"]
    (plan,) = support.history(client, execution_id, events.COMPENSATION_SCHEDULED)
    assert [as_object(s)["state"] for s in as_list(plan.details["steps"])] == ["Flight", "Hotel"]
    support.assert_replays(client)


def test_a_failing_undo_step_is_retried_with_back_off_and_the_same_key(
    dispatcher: Dispatcher, client: Client, recorder: Recorder, clock: FakeClock
) -> None:
    failures = {"UndoPay": 2}

    def flaky(params: dict[str, Any], ctx: invoke.Context) -> Any:
        tag = params.get("tag")
        if tag in failures and failures[tag] > 0:
            failures[tag] -= 1
            raise ConnectionError("the bank is down")
        return actor_flows.work(params, ctx)

    recorder.add("Actor.Work", flaky)
    work = recorder
    support.deploy(client, actor_flows.SAGA)
    execution_id = client.start("saga", {}, execution_id="saga-2")["id"]
    support.drain(dispatcher, work.registry)
    for _ in range(2):
        assert client.describe(execution_id)["status"] == "RUNNING"
        clock.advance(1)  # the undo steps' Retry: every 0.1 s
        assert dispatcher.fire_due_timers() == 1
        support.drain(dispatcher, work.registry)
    view = client.inspect(execution_id)
    assert (view["status"], view["error"]) == ("FAILED", "NoCarrier")
    pays = [c for c in work.calls if as_object(c.params).get("tag") == "UndoPay"]
    assert [c.attempt for c in pays] == [1, 2, 3]
    assert len({c.key for c in pays}) == 1
    retried = support.history(client, execution_id, events.RETRY_SCHEDULED)
    assert [(e.state, e.details["error"]) for e in retried] == [("Undo", "ConnectionError")] * 2
    assert view["compensated"] == ["Book", "Pay"]
    support.assert_replays(client)
