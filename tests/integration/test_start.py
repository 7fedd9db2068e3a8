"""Starting executions: idempotent on the execution id, refused for input the workflow rejects."""

from __future__ import annotations

import pytest

from cairn import errors
from cairn.client import Client
from cairn.core import events
from cairn.jsontypes import JSON
from cairn.runtime import tables
from tests.integration import support

FLOW = """
Name: checked
Version: 1
InputSchema:
  type: object
  required: [order_id, total]
  properties:
    order_id: {type: string}
    total: {type: number, exclusiveMinimum: 0}
StartAt: Hold
States:
  Hold:
    Type: Wait
    Seconds: 60
    End: true
"""


def test_the_same_id_and_input_returns_the_existing_execution(client: Client) -> None:
    support.deploy(client, FLOW)
    first = client.start("checked", {"order_id": "A1", "total": 5}, execution_id="order-A1")
    again = client.start("checked", {"total": 5, "order_id": "A1"}, execution_id="order-A1")
    assert again["id"] == first["id"] == "order-A1"
    assert {k: again[k] for k in ("workflow", "version", "status", "input", "started_at")} == {
        k: first[k] for k in ("workflow", "version", "status", "input", "started_at")
    }
    started = support.history(client, "order-A1", events.EXECUTION_STARTED)
    assert len(started) == 1
    assert len(client.executions()) == 1
    assert support.count_rows(client, tables.timers) == 1
    support.assert_replays(client)


def test_the_same_id_with_a_different_input_is_refused(client: Client) -> None:
    support.deploy(client, FLOW)
    client.start("checked", {"order_id": "A1", "total": 5}, execution_id="order-A1")
    before = support.types_of(client, "order-A1")
    with pytest.raises(errors.Conflict, match="'order-A1' already exists"):
        client.start("checked", {"order_id": "A1", "total": 6}, execution_id="order-A1")
    assert support.types_of(client, "order-A1") == before
    assert client.describe("order-A1")["input"] == {"order_id": "A1", "total": 5}
    support.assert_replays(client)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"order_id": "A1"}, "'total' is a required property"),
        ({"order_id": "A1", "total": 0}, r"input\.total: 0 is less than or equal to"),
        ({"order_id": 7, "total": 5}, r"input\.order_id: 7 is not of type 'string'"),
        ([], r"input: \[\] is not of type 'object'"),
    ],
)
def test_input_that_breaks_the_input_schema_starts_nothing(
    client: Client, bad: JSON, message: str
) -> None:
    support.deploy(client, FLOW)
    with pytest.raises(errors.InvalidInput, match=message) as caught:
        client.start("checked", bad, execution_id="bad")
    assert "InputSchema of checked@1" in str(caught.value)
    assert caught.value.exit_code == 2
    assert client.executions() == []
    assert support.count_rows(client, tables.events) == 0
    assert support.count_rows(client, tables.timers) == 0
    with pytest.raises(errors.NotFound):
        client.describe("bad")
    # The id stays free for a correct start.
    assert (
        client.start("checked", {"order_id": "A1", "total": 1}, execution_id="bad")["id"] == "bad"
    )
    support.assert_replays(client)


def test_an_unknown_workflow_is_not_found(client: Client) -> None:
    with pytest.raises(errors.NotFound, match="no workflow nothing is deployed"):
        client.start("nothing", {})
    assert client.executions() == []
    support.assert_replays(client)
