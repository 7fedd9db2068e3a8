"""The activities of the order workflow (definitions/order), registered by name.

Each one calls the demo provider with the task's idempotency key, so a retried or
redelivered attempt never charges, reserves or mails twice.
"""

from __future__ import annotations

import json
from typing import Any

from activities import provider
from cairn import ActivityError, activity
from cairn.runtime.invoke import Context

FRAUD_DOMAIN = "@fraud.test"
"""Orders from this mail domain score as fraud, so the demo can show a rejected order."""
UNREACHABLE = "unreachable"
"""Shipping to this address fails, so the demo can show the saga undoing an order."""


@activity("AssessFraudRisk")
def assess_fraud_risk(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    score = 95 if str(params["email"]).endswith(FRAUD_DOMAIN) else 10
    return {"score": score}


@activity("ChargeCard")
def charge_card(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if params["card"] == "declined":
        raise ActivityError("CardDeclined", "the issuer declined the card", retryable=False)
    return provider.charge(ctx.idempotency_key, params["order_id"], float(params["amount"]))


@activity("RefundCard")
def refund_card(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return provider.refund(params["charge_id"])


@activity("ReserveInventory")
def reserve_inventory(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if any(item["sku"] == "SOLD-OUT" for item in params["items"]):
        raise ActivityError("OutOfStock", "SKU SOLD-OUT has no stock", retryable=False)
    items = json.dumps(params["items"], sort_keys=True)
    return {"reservation_id": provider.reserve(ctx.idempotency_key, params["order_id"], items)}


@activity("ReleaseInventory")
def release_inventory(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    provider.release(params["reservation_id"])
    return {"released": params["reservation_id"]}


@activity("ShipPackage")
def ship_package(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if params["address"] == UNREACHABLE:
        raise ActivityError("AddressUnreachable", "no carrier serves this address", retryable=False)
    return {"tracking_number": "TRK-" + ctx.idempotency_key.split(":")[0][:12].upper()}


@activity("SendConfirmationEmail")
def send_confirmation_email(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    body = f"Order {params['order_id']} is on its way: {params['tracking_number']}"
    provider.send_mail(ctx.idempotency_key, params["email"], body)
    return {"sent": True}
