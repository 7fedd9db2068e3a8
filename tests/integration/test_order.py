"""The order demo (definitions/order/v1.yaml) end to end through real in-process workers."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from activities import provider
from cairn.client import Client
from cairn.core import events, step
from cairn.definitions import loader
from cairn.runtime import tables, worker
from cairn.runtime.dispatcher import Dispatcher
from cairn.testing import as_list, as_object
from tests.integration import support
from tests.integration.support import FakeClock, Recorder

ORDER_V1 = support.ROOT / "definitions" / "order" / "v1.yaml"
ORDER_V2 = support.ROOT / "definitions" / "order" / "v2.yaml"
DAY = 86_400
QUEUES = ("default", "payments")


@pytest.fixture
def order_client(
    live_dispatcher: Dispatcher,
    live_client: Client,
    demo: Recorder,
    provider_db: Path,
    start_worker: Callable[..., worker.Worker],
) -> Client:
    """A client with order@1 deployed and a worker serving both of its queues."""
    live_client.deploy(loader.load(ORDER_V1))
    start_worker(live_dispatcher, demo.registry, queues=QUEUES)
    return live_client


def order(order_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "email": f"{order_id.lower()}@example.com",
        "card": "4242",
        "total": 25.5,
        "items": [{"sku": "BOOK-1", "qty": 2}],
        "address": "1 Harbour Lane",
        **changes,
    }


def provider_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(query).fetchall()


def test_orders_succeed_and_each_card_is_charged_once(
    order_client: Client, demo: Recorder, provider_db: Path
) -> None:
    started = [
        order_client.start("order", order(f"A{n}"), execution_id=f"order-A{n}") for n in range(4)
    ]
    for execution in started:
        view = support.wait_closed(order_client, execution["id"])
        assert view["status"] == "SUCCEEDED", view
        charge = next(c for c in provider.charges() if c["order_id"] == view["input"]["order_id"])
        assert view["output"] == {
            "order_id": view["input"]["order_id"],
            "status": "shipped",
            "charge_id": charge["charge_id"],
            "tracking_number": "TRK-" + execution["id"][:12].upper(),
        }
        assert support.entered(order_client, execution["id"]) == [
            "ChargeCard",
            "ReserveInventory",
            "ShipPackage",
            "SendConfirmationEmail",
        ]
    books = provider.charges()
    assert sorted(c["idempotency_key"] for c in books) == [
        f"order-A{n}:ChargeCard:1" for n in range(4)
    ]
    assert all(c["requests"] == 1 and not c["refunded"] for c in books)
    assert demo.count("ChargeCard") == 4
    assert len(provider_rows(provider_db, "SELECT * FROM outbox")) == 4
    support.assert_replays(order_client)


def test_a_declined_card_fails_the_order_with_payment_declined(
    order_client: Client, demo: Recorder
) -> None:
    execution = order_client.start("order", order("D1", card="declined"))
    view = support.wait_closed(order_client, execution["id"])
    assert view["status"] == "FAILED"
    assert (view["error"], view["cause"]) == (
        "PaymentDeclined",
        "The card was declined; nothing was charged.",
    )
    failed = support.history(order_client, execution["id"], events.TASK_FAILED)
    assert [(e.details["error"], e.details["cause"]) for e in failed] == [
        ("CardDeclined", "the issuer declined the card")
    ]
    assert support.entered(order_client, execution["id"]) == ["ChargeCard", "PaymentDeclined"]
    assert demo.count() == demo.count("ChargeCard") == 1
    assert provider.charges() == []
    support.assert_replays(order_client)


def test_a_failure_after_the_charge_refunds_and_releases_in_reverse_order(
    order_client: Client, demo: Recorder, provider_db: Path
) -> None:
    execution = order_client.start("order", order("U1", address="unreachable"))
    view = support.wait_closed(order_client, execution["id"])
    assert view["status"] == "FAILED"
    assert (view["error"], view["cause"]) == (
        "AddressUnreachable",
        "no carrier serves this address",
    )
    execution_id = execution["id"]
    assert support.entered(order_client, execution_id) == [
        "ChargeCard",
        "ReserveInventory",
        "ShipPackage",
        "UndoOrder",
        "OrderFailed",
    ]
    (plan,) = support.history(order_client, execution_id, events.COMPENSATION_SCHEDULED)
    steps = as_list(plan.details["steps"])
    assert [as_object(step)["state"] for step in steps] == ["ReserveInventory", "ChargeCard"]
    undo = [
        e.details["activity"]
        for e in support.history(order_client, execution_id, events.TASK_SCHEDULED)
        if e.state == "UndoOrder"
    ]
    assert undo == ["ReleaseInventory", "RefundCard"]
    assert [c.activity for c in demo.calls] == [
        "ChargeCard",
        "ReserveInventory",
        "ShipPackage",
        "ReleaseInventory",
        "RefundCard",
    ]
    (charge,) = provider.charges()
    assert (charge["requests"], charge["refunded"]) == (1, 1)
    assert provider_rows(provider_db, "SELECT released FROM reservations") == [(1,)]
    assert order_client.inspect(execution_id)["compensated"] == ["ChargeCard", "ReserveInventory"]
    support.assert_replays(order_client)


def test_order_v2_holds_for_a_thirty_day_cancel_window(
    dispatcher: Dispatcher,
    client: Client,
    clock: FakeClock,
    demo: Recorder,
    provider_db: Path,
    start_worker: Callable[..., worker.Worker],
) -> None:
    client.deploy(loader.load(ORDER_V1))
    client.deploy(loader.load(ORDER_V2))
    start_worker(dispatcher, demo.registry, queues=QUEUES)

    def holding(execution_id: str) -> bool:
        return support.entered(client, execution_id)[-1:] == ["CancelWindow"]

    # Cancelled during the window: the stock is released and the card refunded.
    cancelled = client.start("order", order("C1"))
    assert cancelled["version"] == 2
    support.wait_until(lambda: holding(cancelled["id"]), "the cancel window")
    timers = {t["purpose"]: t["due"] for t in client.inspect(cancelled["id"])["timers"]}
    assert timers == {
        "wait": step.iso(clock.now + 30 * DAY),
        "execution": step.iso(clock.now + 40 * DAY),  # the workflow's TimeoutSeconds
    }
    client.signal(cancelled["id"], "cancel", {"reason": "changed my mind"})
    view = support.wait_closed(client, cancelled["id"])
    assert (view["status"], view["output"]) == (
        "SUCCEEDED",
        {"order_id": "C1", "status": "cancelled", "reason": "changed my mind"},
    )
    assert [c.activity for c in demo.calls][-2:] == ["ReleaseInventory", "RefundCard"]
    assert provider_rows(provider_db, "SELECT refunded FROM charges") == [(1,)]

    # Not cancelled: thirty days later the order ships, without anyone waiting in between.
    shipped = client.start("order", order("S1"))
    support.wait_until(lambda: holding(shipped["id"]), "the cancel window")
    assert support.count_rows(client, tables.tasks) == 0
    clock.advance(30 * DAY)
    view = support.wait_closed(client, shipped["id"])
    assert view["status"] == "SUCCEEDED", view
    assert view["output"]["status"] == "shipped"
    assert support.entered(client, shipped["id"])[-3:] == [
        "CancelRequested",
        "ShipPackage",
        "SendConfirmationEmail",
    ]
    assert [c["requests"] for c in provider.charges()] == [1, 1]
    support.assert_replays(client)
