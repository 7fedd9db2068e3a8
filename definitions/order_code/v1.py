"""The order flow of definitions/order/v2.yaml, written in Python.

`cairn deploy definitions/order_code/v1.py` runs `order` once to build the definition and
deploys it as order_code@1; `cairn export definitions/order_code/v1.py` prints it as YAML.
The states are v2's, field for field, so both versions leave the same history.
"""

from __future__ import annotations

from datetime import timedelta

import activities  # noqa: F401  (registers the handlers this flow names)
from cairn import Errors, Flow, Retry, Undo, Value, workflow

THIRTY_DAYS = 30 * 24 * 3600

ORDER = {
    "type": "object",
    "required": ["order_id", "email", "card", "total", "items", "address"],
    "properties": {
        "order_id": {"type": "string"},
        "email": {"type": "string"},
        "card": {"type": "string"},
        "total": {"type": "number", "exclusiveMinimum": 0},
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            },
        },
        "address": {"type": "string"},
        "cancel_window_seconds": {"type": "integer", "minimum": 0},
    },
}


@workflow(name="order_code", version=1, timeout=timedelta(days=40), input_schema=ORDER)
def order(flow: Flow, order: Value) -> object:
    """Fulfil an order: screen it for fraud, charge the card, reserve the stock, then hold
    it for a cancel window (30 days unless the input says otherwise) before shipping. A
    `cancel` signal during the window, or a failure after the charge, refunds the card and
    releases the stock."""

    def payment_declined() -> None:
        flow.fail("PaymentDeclined", "The card was declined; nothing was charged.")

    def undo_order(error: Value) -> None:
        flow.compensate(
            name="UndoOrder",
            comment="Refund the card and release the stock, in reverse order of completion.",
        )
        flow.fail(error.Error, error.Cause, name="OrderFailed")

    fraud = flow.task(
        "AssessFraudRisk",
        name="AssessFraud",
        order_id=order.order_id,
        email=order.email,
        total=order.total,
        select=lambda scored: {"score": scored.score},
        result="fraud",
        timeout=10,
        retry=Retry(max_attempts=3),
    )
    with flow.if_(fraud.score >= 80, name="FraudCheck"):
        flow.fail(
            "FraudSuspected",
            "The fraud screen scored this order too high; nothing was charged.",
            name="RejectOrder",
        )

    charge = flow.task(
        "ChargeCard",
        queue="payments",
        order_id=order.order_id,
        card=order.card,
        amount=order.total,
        result="charge",
        timeout=30,
        retry=Retry(
            "CardNetworkError",
            interval=1,
            backoff_rate=2.0,
            max_attempts=5,
            max_delay=60,
            jitter=True,
        ),
        catch={"CardDeclined": payment_declined},
        compensate=lambda done: Undo(
            "RefundCard",
            queue="payments",
            charge_id=done.result.charge_id,
            amount=done.input.amount,
        ),
    )
    reservation = flow.task(
        "ReserveInventory",
        order_id=order.order_id,
        items=order.items,
        result="reservation",
        retry=Retry(Errors.TIMEOUT, max_attempts=3),
        catch={"OutOfStock": undo_order},
        compensate=lambda done: Undo("ReleaseInventory", reservation_id=done.result.reservation_id),
    )

    cancellation = flow.wait(
        order.cancel_window_seconds | THIRTY_DAYS,
        signal="cancel",
        name="CancelWindow",
        result="cancellation",
        comment="Hold the order for the cancel window; a `cancel` signal ends the wait early.",
    )
    with flow.if_(cancellation.signal == "cancel", name="CancelRequested"):
        flow.compensate(name="CancelOrder", comment="Release the stock, then refund the card.")
        flow.end(
            {
                "order_id": order.order_id,
                "status": "cancelled",
                "reason": cancellation.payload.reason,
            },
            name="OrderCancelled",
        )

    shipment = flow.task(
        "ShipPackage",
        order_id=order.order_id,
        address=order.address,
        reservation_id=reservation.reservation_id,
        result="shipment",
        timeout=60,
        retry=Retry("CarrierUnavailable", interval=2, max_attempts=3),
        catch={Errors.ALL: undo_order},
    )
    flow.task(
        "SendConfirmationEmail",
        email=order.email,
        order_id=order.order_id,
        tracking_number=shipment.tracking_number,
        result=None,
        retry=Retry(max_attempts=10, max_delay=300),
    )
    flow.query("cancellation", cancellation)
    flow.query("charge", charge.charge_id)
    flow.query("tracking", shipment.tracking_number)
    return {
        "order_id": order.order_id,
        "status": "shipped",
        "charge_id": charge.charge_id,
        "tracking_number": shipment.tracking_number,
    }
