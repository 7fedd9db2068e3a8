"""Nothing an activity does stops a worker slot or leaves an execution running for ever.

Each test runs a real worker with one slot on SQLite and on PostgreSQL: the misbehaving
task ends as a recorded failure, and the same slot then runs the next execution.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from cairn.activities import ActivityError
from cairn.client import Client
from cairn.errors import CairnError
from cairn.runtime import database, roster, tables, worker
from cairn.runtime.dispatcher import Dispatcher
from tests.integration import support
from tests.integration.support import Recorder

GUARDED = """
Name: guarded
Version: 1
StartAt: Work
States:
  Work:
    Type: Task
    Activity: Work
    Catch:
      - ErrorEquals: [States.TaskFailed]
        ResultPath: error
        Next: Caught
    End: true
  Caught:
    Type: Pass
    End: true
"""

PLAIN = """
Name: plain
Version: 1
StartAt: Work
States:
  Work: {Type: Task, Activity: Work, End: true}
"""


def exiting(params: Any, ctx: Any) -> Any:
    sys.exit(3)


def interrupted(params: Any, ctx: Any) -> Any:
    raise KeyboardInterrupt


def base(params: Any, ctx: Any) -> Any:
    raise BaseException("out of band")


async def cancelled(params: Any, ctx: Any) -> Any:
    import asyncio

    raise asyncio.CancelledError


def one_slot(
    start_worker: Callable[..., worker.Worker],
    dispatcher: Dispatcher,
    recorder: Recorder,
    misbehave: Callable[..., Any],
) -> worker.Worker:
    """A worker with a single slot whose Work activity misbehaves once, then echoes."""
    calls = iter([misbehave])

    def work(params: Any, ctx: Any) -> Any:
        handler = next(calls, None)
        return handler(params, ctx) if handler is not None else {"ok": True}

    if misbehave is cancelled:

        async def work_async(params: Any, ctx: Any) -> Any:
            handler = next(calls, None)
            return await handler(params, ctx) if handler is not None else {"ok": True}

        recorder.add("Work", work_async)
    else:
        recorder.add("Work", work)
    return start_worker(dispatcher, recorder.registry, concurrency=1)


def assert_slot_goes_on(client: Client) -> None:
    """The one slot runs the next execution to the end."""
    after = client.start("plain", {})["id"]
    view = support.wait_closed(client, after)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"ok": True})


@pytest.mark.parametrize(
    ("misbehave", "raised"),
    [
        (exiting, "SystemExit(3)"),
        (interrupted, "KeyboardInterrupt()"),
        (base, "BaseException(out of band)"),
        (cancelled, "CancelledError()"),
    ],
    ids=["sys.exit", "KeyboardInterrupt", "BaseException", "async-CancelledError"],
)
def test_an_activity_that_raises_a_base_exception_fails_its_task_catchably(
    live_client: Client,
    live_dispatcher: Dispatcher,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
    misbehave: Callable[..., Any],
    raised: str,
) -> None:
    support.deploy(live_client, GUARDED)
    support.deploy(live_client, PLAIN)
    one_slot(start_worker, live_dispatcher, recorder, misbehave)
    execution_id = live_client.start("guarded", {})["id"]
    view = support.wait_closed(live_client, execution_id)
    assert view["status"] == "SUCCEEDED"  # caught by the States.TaskFailed rule
    assert view["output"]["error"] == {
        "Error": "States.TaskFailed",
        "Cause": f"activity Work raised {raised}, which would have stopped its worker",
    }
    assert_slot_goes_on(live_client)
    support.assert_replays(live_client)


@pytest.mark.parametrize(
    ("result", "cause"),
    [
        (
            {"text": "a\u0000b"},
            "activity Work returned a result with a NUL character (\\u0000), "
            "which cannot be stored",
        ),
        ({"n": 2**64}, "activity Work returned a result that is not JSON: Integer exceeds"),
        ({"deep": [[[[]]]] * 1}, None),
    ],
    ids=["nul", "int-over-64-bits", "fine"],
)
def test_a_result_that_cannot_be_stored_fails_its_task(
    live_client: Client,
    live_dispatcher: Dispatcher,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
    result: Any,
    cause: str | None,
) -> None:
    support.deploy(live_client, PLAIN)
    one_slot(start_worker, live_dispatcher, recorder, lambda params, ctx: result)
    execution_id = live_client.start("plain", {})["id"]
    view = support.wait_closed(live_client, execution_id)
    if cause is None:
        assert (view["status"], view["output"]) == ("SUCCEEDED", result)
    else:
        assert (view["status"], view["error"]) == ("FAILED", "States.Runtime")
        assert view["cause"].startswith(cause)
    assert_slot_goes_on(live_client)
    support.assert_replays(live_client)


def test_an_error_the_database_refuses_becomes_a_failure_it_takes(
    live_client: Client,
    live_dispatcher: Dispatcher,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
    db_url: str,
) -> None:
    """PostgreSQL refuses NUL in the cause of a failure; the task fails once, as Runtime."""

    def refused(params: Any, ctx: Any) -> Any:
        raise ActivityError("Bad", "a\u0000b")

    support.deploy(live_client, PLAIN)
    one_slot(start_worker, live_dispatcher, recorder, refused)
    execution_id = live_client.start("plain", {})["id"]
    view = support.wait_closed(live_client, execution_id)
    if db_url.startswith("postgresql"):
        assert (view["status"], view["error"]) == ("FAILED", "States.Runtime")
        assert view["cause"].startswith("the outcome of activity Work could not be stored: ")
        assert "SELECT" not in view["cause"] and "INSERT" not in view["cause"]
    else:
        assert (view["status"], view["error"], view["cause"]) == ("FAILED", "Bad", "a\u0000b")
    assert recorder.count("Work") == 1
    assert_slot_goes_on(live_client)
    support.assert_replays(live_client)


def test_a_failure_whose_checkpoint_cannot_be_stored_fails_the_task_once(
    live_client: Client,
    live_dispatcher: Dispatcher,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
) -> None:
    """A failure carries the last heartbeat details to the next attempt; details no event
    can hold made it unrecordable, and the slot tried again for ever."""

    def beating(params: Any, ctx: Any) -> Any:
        ctx.heartbeat({"n": 2**64})
        raise RuntimeError("gave up")

    support.deploy(live_client, PLAIN)
    one_slot(start_worker, live_dispatcher, recorder, beating)
    execution_id = live_client.start("plain", {})["id"]
    view = support.wait_closed(live_client, execution_id)
    assert (view["status"], view["error"]) == ("FAILED", "States.Runtime")
    assert view["cause"] == (
        "the outcome of activity Work could not be stored: TypeError: Integer exceeds 64-bit range"
    )
    assert recorder.count("Work") == 1
    assert_slot_goes_on(live_client)
    support.assert_replays(live_client)


def test_a_slot_that_dies_is_started_again_and_the_worker_says_so(
    live_client: Client,
    live_dispatcher: Dispatcher,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
    db_url: str,
) -> None:
    """A progress callback (the embedding program's code) raising kills the slot's loop."""
    reports = iter([RuntimeError("the display is gone")])

    def on_progress(progress: worker.Progress) -> None:
        failure = next(reports, None) if progress.kind == "started" else None
        if failure is not None:
            raise failure

    recorder.add("Work", lambda params, ctx: {"ok": True})
    support.deploy(live_client, PLAIN)
    runner = start_worker(
        live_dispatcher, recorder.registry, concurrency=1, lease=1.0, on_progress=on_progress
    )
    execution_id = live_client.start("plain", {})["id"]
    # The task, no longer renewed, comes back when its lease runs out, to the same slot.
    view = support.wait_closed(live_client, execution_id)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"ok": True})
    assert recorder.count("Work") == 1
    assert runner.slot_restarts == 1
    (listed,) = support.wait_until(
        lambda: [w for w in live_client.workers() if w["slot_restarts"] == 1],
        "the worker to report its restarted slot",
    )
    assert listed["id"] == runner.id
    shown = support.cairn("--db", db_url, "workers")
    assert "SLOT RESTARTS" in shown.stdout


def test_a_database_at_schema_2_gains_the_slot_restarts_column(db_url: str) -> None:
    engine = database.connect(db_url, upgrade=True)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE workers DROP COLUMN slot_restarts"))
        conn.execute(tables.schema_version.update().values(version=2))
    assert database.migrate(engine) == tables.SCHEMA_VERSION == 3
    presence = roster.Presence(
        id="w",
        host="h",
        pid=1,
        queues=["q"],
        activities=["A"],
        concurrency=1,
        lease=30,
        started_at=0.0,
        slot_restarts=2,
    )
    with engine.begin() as conn:
        roster.beat(conn, presence, [], 1.0)
        (listed,) = roster.listing(conn, 2.0)
    assert listed["slot_restarts"] == 2
    engine.dispose()


COMPUTING = """
Name: computing
Version: 1
StartAt: Price
States:
  Price: {Type: Task, Activity: Work, ResultPath: quote, Next: Dear?}
  Dear?:
    Type: Choice
    Choices:
      - Condition: quote.price > `100`
        Next: Total
    Default: Total
  Total:
    Type: Pass
    Parameters:
      total.$: multiply(quote.price, quote.qty)
    End: true
"""


@pytest.mark.parametrize(
    ("quote", "cause"),
    [
        (
            {"price": 4294967296, "qty": 4294967296},
            "expression 'multiply(quote.price, quote.qty)' failed: "
            "multiply() gives an integer beyond 64 bits",
        ),
        (
            {"price": "12", "qty": 1},
            "expression 'quote.price > `100`' failed: "
            "TypeError: '>' not supported between instances of 'str' and 'int'",
        ),
    ],
    ids=["overflow", "string"],
)
def test_an_expression_failing_on_a_result_fails_the_execution_on_the_worker(
    live_client: Client,
    live_dispatcher: Dispatcher,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
    quote: dict[str, Any],
    cause: str,
) -> None:
    """The decision after the task fails the state; the worker records it and goes on."""
    support.deploy(live_client, COMPUTING)
    support.deploy(live_client, PLAIN)
    one_slot(start_worker, live_dispatcher, recorder, lambda params, ctx: quote)
    execution_id = live_client.start("computing", {})["id"]
    view = support.wait_closed(live_client, execution_id)
    assert (view["status"], view["error"]) == ("FAILED", "States.Runtime")
    assert view["cause"].startswith(cause)
    assert_slot_goes_on(live_client)
    support.assert_replays(live_client)


@pytest.mark.parametrize(
    ("limit", "error"),
    [("TimeoutSeconds: 1", "States.Timeout"), ("HeartbeatSeconds: 1", "States.HeartbeatTimeout")],
    ids=["timeout", "heartbeat"],
)
def test_an_activity_that_outlives_its_timeout_no_longer_holds_the_slot(
    live_client: Client,
    live_dispatcher: Dispatcher,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
    limit: str,
    error: str,
) -> None:
    released = threading.Event()
    hung = threading.Event()

    def hang(params: Any, ctx: Any) -> Any:
        ctx.heartbeat()
        hung.set()
        released.wait(support.DEADLINE * 3)  # longer than any wait of the test
        return {"late": True}

    recorder.add("Hang", hang)
    recorder.add("Work", lambda params, ctx: {"ok": True})
    support.deploy(
        live_client,
        f"""
Name: hanging
Version: 1
StartAt: Hang
States:
  Hang: {{Type: Task, Activity: Hang, {limit}, End: true}}
""",
    )
    support.deploy(live_client, PLAIN)
    start_worker(live_dispatcher, recorder.registry, concurrency=1)
    try:
        execution_id = live_client.start("hanging", {})["id"]
        view = support.wait_closed(live_client, execution_id)
        assert (view["status"], view["error"]) == ("FAILED", error)
        assert_slot_goes_on(live_client)  # while the first activity still hangs
        assert hung.is_set() and not released.is_set()
    finally:
        released.set()
    assert live_client.describe(execution_id)["status"] == "FAILED"
    assert recorder.count("Hang") == 1
    support.assert_replays(live_client)


def test_a_query_that_fails_on_the_data_is_one_clear_error(
    live_client: Client, db_url: str
) -> None:
    support.deploy(
        live_client,
        """
Name: asked
Version: 1
StartAt: Hold
Queries:
  cheap: price < `10`
States:
  Hold: {Type: Wait, Signal: go, Next: Done}
  Done: {Type: Succeed}
""",
    )
    execution_id = live_client.start("asked", {"price": "5"})["id"]
    with pytest.raises(CairnError) as raised:
        live_client.query(execution_id, "cheap")
    assert str(raised.value) == (
        "query 'cheap' of asked@1: expression 'price < `10`' failed: "
        "TypeError: '<' not supported between instances of 'str' and 'int'"
    )
    shown = support.cairn("--db", db_url, "query", execution_id, "cheap")
    assert shown.returncode == 1
    assert "Traceback" not in shown.stderr
    assert "expression 'price < `10`' failed" in shown.stderr
