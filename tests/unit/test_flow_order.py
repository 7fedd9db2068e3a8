"""The order flow written in Python (definitions/order_code/v1.py) is definitions/order/v2.yaml.

Both definitions are run by the pure interpreter from the same inputs, activity outcomes,
signals and clock, and must leave the same history: the same events, of the same types, in
the same states and scopes, at the same times, with the same details (only the workflow's
name and version differ, in ExecutionStarted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cairn import testing
from cairn.codeflow import adapter
from cairn.core import events
from cairn.definitions import loader

ROOT = Path(__file__).resolve().parents[2]
V2 = loader.load(ROOT / "definitions" / "order" / "v2.yaml")
(CODE,) = adapter.load(str(ROOT / "definitions" / "order_code" / "v1.py"))

ORDER = {
    "order_id": "o-9",
    "email": "ada@example.com",
    "card": "tok_visa",
    "total": 42.5,
    "items": [{"sku": "BOOK-1", "qty": 2}],
    "address": "1 Main St",
    "cancel_window_seconds": 600,
}
CHARGED = {"charge_id": "ch_9"}
RESERVED = {"reservation_id": "res_9"}
SHIPPED = {"tracking_number": "TRK9"}
HAPPY: dict[str, testing.OutcomeSpec] = {
    "AssessFraudRisk": {"result": {"score": 10}},
    "ChargeCard": {"result": CHARGED},
    "ReserveInventory": {"result": RESERVED},
    "ShipPackage": {"result": SHIPPED},
    "SendConfirmationEmail": {"result": {"sent": True}},
    "RefundCard": {"result": {"refunded": True}},
    "ReleaseInventory": {"result": {"released": True}},
}

SCENARIOS: dict[str, dict[str, Any]] = {
    "ships": {},
    "card-declined": {"outcomes": {"ChargeCard": {"error": "CardDeclined", "retryable": False}}},
    "card-network-retried-with-jitter": {
        "outcomes": {
            "ChargeCard": [
                {"error": "CardNetworkError"},
                {"error": "CardNetworkError"},
                {"result": CHARGED},
            ]
        }
    },
    "out-of-stock-refunds": {"outcomes": {"ReserveInventory": {"error": "OutOfStock"}}},
    "shipping-fails-and-the-saga-undoes": {
        "outcomes": {"ShipPackage": {"error": "AddressUnreachable", "retryable": False}}
    },
    "carrier-busy-then-ships": {
        "outcomes": {"ShipPackage": [{"error": "CarrierUnavailable"}, {"result": SHIPPED}]}
    },
    "fraud-task-times-out-then-scores-high": {
        "outcomes": {"AssessFraudRisk": [{"timeout": None}, {"result": {"score": 95}}]}
    },
    "mail-keeps-failing": {
        "outcomes": {"SendConfirmationEmail": {"error": "SmtpDown", "after": 5}}
    },
    "cancel-signal-in-the-window": {
        "signals": [{"at": 60, "name": "cancel", "payload": {"reason": "cheaper elsewhere"}}]
    },
    "cancel-signal-too-late": {"signals": [{"at": 700, "name": "cancel", "payload": {}}]},
    "execution-cancelled-while-waiting": {"cancel_at": 120},
    "bad-input-fails-at-runtime": {"input": {**ORDER, "cancel_window_seconds": "soon"}},
}


def conformance_cases() -> dict[str, dict[str, Any]]:
    """The repository's order v2 conformance cases, as scenarios."""
    text = (ROOT / "tests" / "conformance" / "cases" / "order.yaml").read_text(encoding="utf-8")
    return {
        case["name"]: case
        for case in yaml.safe_load(text)
        if case["definition"] == {"file": "definitions/order/v2.yaml"}
    }


ALL = {**conformance_cases(), **SCENARIOS}


def run(body: dict[str, Any], scenario: dict[str, Any]) -> testing.Run:
    return testing.simulate(
        body,
        scenario.get("input", ORDER),
        {**HAPPY, **scenario.get("outcomes", {})},
        signals=scenario.get("signals", ()),
        cancel_at=scenario.get("cancel_at"),
    )


def comparable(history: tuple[events.Event, ...]) -> list[tuple[Any, ...]]:
    rows = []
    for event in history:
        details = dict(event.details)
        if event.type == events.EXECUTION_STARTED:
            assert (details.pop("workflow"), details.pop("version")) in (
                ("order", 2),
                ("order_code", 1),
            )
        rows.append((event.seq, event.type, event.time, event.scope, event.state, details))
    return rows


def test_the_code_flow_compiles_to_the_states_of_v2_field_for_field() -> None:
    code = CODE.compile()
    assert (code.name, code.version) == ("order_code", 1)
    different = {k for k in code.body.keys() | V2.body.keys() if code.body.get(k) != V2.body.get(k)}
    assert different == {"Name", "Version", "Comment"}


def test_the_example_lives_where_its_name_and_version_say() -> None:
    path = Path(CODE.file)
    assert path.parts[-3:] == ("definitions", CODE.name, f"v{CODE.version}.py")


@pytest.mark.parametrize("name", sorted(ALL))
def test_both_definitions_leave_the_same_history(name: str) -> None:
    scenario = ALL[name]
    from_yaml = run(V2.body, scenario)
    from_code = run(CODE.compile().body, scenario)
    assert len(from_yaml.history) > 5
    assert comparable(from_code.history) == comparable(from_yaml.history)
    assert (from_code.status, from_code.output, from_code.error, from_code.cause) == (
        from_yaml.status,
        from_yaml.output,
        from_yaml.error,
        from_yaml.cause,
    )
    if "states" in scenario:
        assert from_code.entered == scenario["states"]


def test_the_scenarios_cover_every_state_of_the_flow() -> None:
    entered = {state for s in ALL.values() for state in run(V2.body, s).entered}
    assert entered == set(V2.body["States"])
