"""What activities hand back: results checked for JSON and size, async handlers, chosen errors."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

from cairn import ActivityError
from cairn.client import Client
from cairn.core import events
from cairn.runtime import worker
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.payloads import PAYLOAD_LIMIT
from tests.integration import support
from tests.integration.support import FakeClock, Recorder

ONE_TASK = """
Name: one
Version: 1
StartAt: Call
States:
  Call:
    Type: Task
    Activity: Call
    Retry:
      - ErrorEquals: [States.ALL]
        IntervalSeconds: 1
        MaxAttempts: 3
    End: true
"""

CAUGHT = """
Name: caught
Version: 1
StartAt: Call
States:
  Call:
    Type: Task
    Activity: Call
    Retry:
      - ErrorEquals: [States.ALL]
        MaxAttempts: 3
    Catch:
      - ErrorEquals: [Refused]
        ResultPath: problem
        Next: Handled
    End: true
  Handled:
    Type: Succeed
"""


def run_to_end(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, recorder: Recorder, execution_id: str
) -> dict[str, Any]:
    """Work the execution by hand, firing retry timers, until it closes."""
    for _ in range(20):
        support.drain(dispatcher, recorder.registry)
        clock.advance(3600)
        if not dispatcher.fire_due_timers():
            break
    view = client.describe(execution_id)
    assert view["status"] != "RUNNING"
    return view


@pytest.mark.parametrize(
    ("result", "detail"),
    [
        ({"at": object()}, "Object of type object is not JSON serializable"),
        ({"tags": {"a", "b"}}, "Object of type set is not JSON serializable"),
        ({"ratio": math.nan}, "Out of range float values are not JSON compliant"),
    ],
    ids=["object", "set", "nan"],
)
def test_a_result_that_is_not_json_fails_the_task_with_states_runtime(
    dispatcher: Dispatcher,
    client: Client,
    clock: FakeClock,
    recorder: Recorder,
    result: Any,
    detail: str,
) -> None:
    recorder.add("Call", lambda params, ctx: result)
    support.deploy(client, ONE_TASK)
    execution_id = client.start("one", {})["id"]
    view = run_to_end(dispatcher, client, clock, recorder, execution_id)
    assert (view["status"], view["error"]) == ("FAILED", "States.Runtime")
    assert view["cause"].startswith("activity Call returned a result that is not JSON")
    assert detail in view["cause"]
    assert recorder.count() == 1  # never retried, not even by a States.ALL rule
    assert events.RETRY_SCHEDULED not in support.types_of(client, execution_id)
    support.assert_replays(client)


@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-limit", "one-byte-over"])
def test_a_result_over_256_kib_fails_with_states_data_limit_exceeded(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, recorder: Recorder, extra: int
) -> None:
    text = "x" * (PAYLOAD_LIMIT - 2 + extra)  # a JSON string: the text plus two quotes
    recorder.add("Call", lambda params, ctx: text)
    support.deploy(client, ONE_TASK)
    execution_id = client.start("one", {})["id"]
    view = run_to_end(dispatcher, client, clock, recorder, execution_id)
    if extra == 0:
        assert view["status"] == "SUCCEEDED"
        assert view["output"] == text
    else:
        assert (view["status"], view["error"]) == ("FAILED", "States.DataLimitExceeded")
        assert view["cause"] == (
            f"activity Call returned {PAYLOAD_LIMIT + 1} bytes; the limit is 256 KiB"
        )
    assert recorder.count() == 1
    support.assert_replays(client)


def test_an_async_activity_runs_on_a_worker(
    dispatcher: Dispatcher,
    client: Client,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
) -> None:
    @recorder.activity("Call")
    async def call(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"doubled": params["n"] * 2, "key": ctx.idempotency_key}

    support.deploy(client, ONE_TASK)
    ids = [client.start("one", {"n": n})["id"] for n in range(3)]
    start_worker(dispatcher, recorder.registry)
    for n, execution_id in enumerate(ids):
        view = support.wait_closed(client, execution_id)
        assert view["status"] == "SUCCEEDED"
        assert view["output"] == {"doubled": 2 * n, "key": f"{execution_id}:Call:1"}
    assert recorder.count() == 3
    support.assert_replays(client)


def test_a_non_retryable_activity_error_skips_the_retries(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, recorder: Recorder
) -> None:
    @recorder.activity("Call")
    def call(params: dict[str, Any], ctx: Any) -> None:
        raise ActivityError("Refused", "the order is closed", retryable=params["retryable"])

    support.deploy(client, ONE_TASK)
    final = client.start("one", {"retryable": False})["id"]
    view = run_to_end(dispatcher, client, clock, recorder, final)
    assert (view["status"], view["error"], view["cause"]) == (
        "FAILED",
        "Refused",
        "the order is closed",
    )
    assert recorder.count() == 1
    assert events.RETRY_SCHEDULED not in support.types_of(client, final)

    retried = client.start("one", {"retryable": True})["id"]
    view = run_to_end(dispatcher, client, clock, recorder, retried)
    assert (view["status"], view["error"]) == ("FAILED", "Refused")
    assert recorder.count() == 1 + 4  # the first attempt and three retries
    support.assert_replays(client)


def test_a_non_retryable_error_is_still_caught(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, recorder: Recorder
) -> None:
    @recorder.activity("Call")
    def call(params: dict[str, Any], ctx: Any) -> None:
        raise ActivityError("Refused", "the order is closed", retryable=False)

    support.deploy(client, CAUGHT)
    execution_id = client.start("caught", {"order": 1})["id"]
    view = run_to_end(dispatcher, client, clock, recorder, execution_id)
    assert view["status"] == "SUCCEEDED"
    assert view["output"] == {
        "order": 1,
        "problem": {"Error": "Refused", "Cause": "the order is closed"},
    }
    assert recorder.count() == 1
    support.assert_replays(client)


def test_an_exception_is_named_after_its_class(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, recorder: Recorder
) -> None:
    @recorder.activity("Call")
    def call(params: dict[str, Any], ctx: Any) -> None:
        raise KeyError("sku")

    support.deploy(client, ONE_TASK)
    execution_id = client.start("one", {})["id"]
    view = run_to_end(dispatcher, client, clock, recorder, execution_id)
    assert (view["status"], view["error"], view["cause"]) == ("FAILED", "KeyError", "'sku'")
    assert [c.attempt for c in recorder.calls] == [1, 2, 3, 4]
    support.assert_replays(client)
