"""Task deadlines and leases, driven by an injected clock through ``expire_leases``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from cairn.client import Client
from cairn.core import commands, events
from cairn.runtime import leasing, tables, worker
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.writer import Writer
from tests.integration import support
from tests.integration.support import FakeClock, Recorder


def slow_flow(*fields: str) -> str:
    extra = "".join(f"\n    {f}" for f in fields)
    return f"""
Name: slow
Version: 1
StartAt: Work
States:
  Work:
    Type: Task
    Activity: Slow{extra}
    End: true
"""


@pytest.fixture
def slow(recorder: Recorder) -> Recorder:
    recorder.add("Slow", lambda params, ctx: {"done": True})
    return recorder


def task_rows(client: Client) -> list[sa.Row[tuple[object, ...]]]:
    with client.writer.read() as conn:
        return list(conn.execute(sa.select(tables.tasks)))


def done(task_id: str, by: str) -> commands.CompleteTask:
    return commands.CompleteTask(task_id=task_id, result={"by": by})


def test_a_task_past_its_timeout_fails_with_states_timeout(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, slow: Recorder
) -> None:
    support.deploy(client, slow_flow("TimeoutSeconds: 10"))
    execution_id = client.start("slow", {})["id"]
    (claim,) = dispatcher.claim(support.offer(slow.registry, "w1"))
    clock.advance(9.5)
    assert dispatcher.expire_leases() == 0
    assert dispatcher.renew(claim, "w1")  # a heartbeat does not stretch TimeoutSeconds
    clock.advance(0.5)
    assert dispatcher.expire_leases() == 1
    view = client.describe(execution_id)
    assert (view["status"], view["error"], view["cause"]) == (
        "FAILED",
        "States.Timeout",
        "no result within 10s",
    )
    (timed_out,) = support.history(client, execution_id, events.TASK_TIMED_OUT)
    assert timed_out.details["task_id"] == claim.task_id
    assert task_rows(client) == []
    # The worker finishing late changes nothing.
    assert dispatcher.finish(claim, "w1", done(claim.task_id, "w1")) is None
    assert client.describe(execution_id)["status"] == "FAILED"
    assert events.TASK_SUCCEEDED not in support.types_of(client, execution_id)
    support.assert_replays(client)


class TickingClock(FakeClock):
    """A clock that moves a millisecond every time it is read, as a real one does."""

    def __call__(self) -> float:
        return self.advance(0.001)


def test_a_lease_taken_in_passing_ends_with_the_task_s_timeout(
    make_writer: Callable[..., Writer], slow: Recorder
) -> None:
    """The lease a finishing worker takes on the next task, and that task's deadline, count
    from one moment: a dead worker's task past its TimeoutSeconds times out, never goes back
    as the same attempt with a deadline of its own."""
    clock = TickingClock()
    write_path = make_writer(clock)
    client, dispatcher = Client(write_path), Dispatcher(write_path)
    support.deploy(client, TWO_STEPS)
    execution_id = client.start("two", {})["id"]
    offer = support.offer(slow.registry, "w1")
    (first,) = dispatcher.claim(offer)
    (second,) = dispatcher.finish(first, "w1", done(first.task_id, "w1"), offer) or []
    (row,) = task_rows(client)
    assert row.lease_expires_at == row.started_at + 3 == second.deadline
    # The worker died; the clock reads the moment its lease ends.
    clock.now = row.lease_expires_at - 0.001
    assert dispatcher.expire_leases() == 1
    (timed_out,) = support.history(client, execution_id, events.TASK_TIMED_OUT)
    assert timed_out.details["error"] == "States.Timeout"
    support.assert_replays(client)


TWO_STEPS = """
Name: two
Version: 1
StartAt: First
States:
  First: {Type: Task, Activity: Slow, Next: Second}
  Second: {Type: Task, Activity: Slow, TimeoutSeconds: 3, End: true}
"""


def test_a_missed_heartbeat_fails_with_states_heartbeat_timeout(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, slow: Recorder
) -> None:
    support.deploy(client, slow_flow("TimeoutSeconds: 100", "HeartbeatSeconds: 5"))
    execution_id = client.start("slow", {})["id"]
    (claim,) = dispatcher.claim(support.offer(slow.registry, "w1"))
    for _ in range(3):  # heartbeats in time keep the task alive past one interval
        clock.advance(4)
        assert dispatcher.expire_leases() == 0
        assert dispatcher.renew(claim, "w1", {"progress": clock.now})
    clock.advance(5)
    assert dispatcher.expire_leases() == 1
    view = client.describe(execution_id)
    assert (view["status"], view["error"], view["cause"]) == (
        "FAILED",
        "States.HeartbeatTimeout",
        "no heartbeat for 5s",
    )
    assert not dispatcher.renew(claim, "w1")
    assert dispatcher.finish(claim, "w1", done(claim.task_id, "w1")) is None
    support.assert_replays(client)


def test_a_timed_out_task_is_retried_with_the_same_key_and_the_next_attempt(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, slow: Recorder
) -> None:
    support.deploy(
        client,
        slow_flow(
            "TimeoutSeconds: 10",
            "Retry: [{ErrorEquals: [States.Timeout], IntervalSeconds: 1, MaxAttempts: 1}]",
        ),
    )
    execution_id = client.start("slow", {})["id"]
    (first,) = dispatcher.claim(support.offer(slow.registry, "w1"))
    clock.advance(10)
    assert dispatcher.expire_leases() == 1
    assert client.describe(execution_id)["status"] == "RUNNING"
    clock.advance(1)
    assert dispatcher.fire_due_timers() == 1
    (second,) = dispatcher.claim(support.offer(slow.registry, "w2"))
    assert (second.key, second.attempt) == (first.key, 2)
    assert second.task_id != first.task_id
    assert dispatcher.finish(first, "w1", done(first.task_id, "w1")) is None
    assert dispatcher.finish(second, "w2", done(second.task_id, "w2")) == []
    assert client.describe(execution_id)["output"] == {"by": "w2"}
    support.assert_replays(client)


def test_a_vanished_worker_s_task_goes_back_with_the_same_key_and_attempt(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, slow: Recorder
) -> None:
    support.deploy(client, slow_flow())
    execution_id = client.start("slow", {})["id"]
    (old,) = dispatcher.claim(support.offer(slow.registry, "w-old"))
    assert dispatcher.claim(support.offer(slow.registry, "w-new")) == []  # leased, not claimable
    clock.advance(10)
    assert dispatcher.renew(old, "w-old", {"page": 3})  # progress to resume from
    clock.advance(leasing.DEFAULT_LEASE - 1)
    assert dispatcher.expire_leases() == 0
    clock.advance(1)
    assert dispatcher.expire_leases() == 1
    assert client.describe(execution_id)["status"] == "RUNNING"
    (row,) = task_rows(client)
    assert (row.id, row.key, row.attempt, row.lease_owner) == (old.task_id, old.key, 1, None)
    assert not {events.TASK_TIMED_OUT, events.TASK_FAILED} & set(
        support.types_of(client, execution_id)
    )

    (new,) = dispatcher.claim(support.offer(slow.registry, "w-new"))
    assert (new.task_id, new.key, new.attempt) == (old.task_id, old.key, old.attempt)
    assert new.heartbeat_details == {"page": 3}
    # The old worker comes back: its lease is gone, its heartbeat and result are refused.
    assert not dispatcher.renew(old, "w-old")
    assert dispatcher.finish(old, "w-old", done(old.task_id, "w-old")) is None
    assert events.TASK_SUCCEEDED not in support.types_of(client, execution_id)
    assert dispatcher.finish(new, "w-new", done(new.task_id, "w-new")) == []
    assert dispatcher.finish(old, "w-old", done(old.task_id, "w-old")) is None

    view = client.describe(execution_id)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"by": "w-new"})
    (succeeded,) = support.history(client, execution_id, events.TASK_SUCCEEDED)
    assert succeeded.details["result"] == {"by": "w-new"}
    started = support.history(client, execution_id, events.TASK_STARTED)
    assert started[-1].details["worker"] == "w-new"
    assert task_rows(client) == []
    support.assert_replays(client)


def test_a_worker_stopped_past_its_grace_period_hands_its_task_back(
    dispatcher: Dispatcher,
    client: Client,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
) -> None:
    release = threading.Event()

    @recorder.activity("Slow")
    def slow(params: object, ctx: Any) -> dict[str, Any]:
        assert release.wait(support.DEADLINE)
        return {"key": ctx.idempotency_key, "attempt": ctx.attempt}

    support.deploy(client, slow_flow())
    execution_id = client.start("slow", {})["id"]
    seen: list[worker.Progress] = []
    first = start_worker(dispatcher, recorder.registry, concurrency=1, on_progress=seen.append)
    support.wait_until(lambda: recorder.count() == 1, "the activity to start")
    assert first.stop(grace=0.1) == 1
    (row,) = task_rows(client)
    assert row.lease_owner is None

    # The first run ends after all: its result comes too late, is refused and kept aside.
    release.set()
    support.wait_until(lambda: [p.kind for p in seen] == ["started", "lost"], "the lost report")
    assert events.TASK_SUCCEEDED not in support.types_of(client, execution_id)
    (refused,) = client.refused(execution_id)
    assert (refused["worker"], refused["outcome"]) == (first.id, "succeeded")
    assert refused["reason"] == "the lease expired; the task waits for another worker"

    start_worker(dispatcher, recorder.registry)
    view = support.wait_closed(client, execution_id)
    key = f"{execution_id}:Work:1"
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"key": key, "attempt": 1})
    assert [(c.key, c.attempt) for c in recorder.calls] == [(key, 1), (key, 1)]
    assert len(support.history(client, execution_id, events.TASK_SUCCEEDED)) == 1
    support.assert_replays(client)


def refusing_finish(
    dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch, times: int
) -> list[str]:
    """Make ``dispatcher.finish`` fail as a lost connection does, ``times`` times; returns
    the log."""
    finish = dispatcher.finish
    refused: list[str] = []

    def unreachable(claim: leasing.Claim, *args: Any, **kwargs: Any) -> Any:
        if len(refused) < times:
            refused.append(claim.task_id)
            raise sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))
        return finish(claim, *args, **kwargs)

    monkeypatch.setattr(dispatcher, "finish", unreachable)
    return refused


def test_a_worker_records_an_outcome_once_the_database_takes_it_again(
    dispatcher: Dispatcher,
    client: Client,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder.add("Slow", lambda params, ctx: {"attempt": ctx.attempt})
    support.deploy(client, slow_flow())
    execution_id = client.start("slow", {})["id"]
    refused = refusing_finish(dispatcher, monkeypatch, times=3)
    start_worker(dispatcher, recorder.registry, concurrency=1)

    view = support.wait_closed(client, execution_id)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"attempt": 1})
    assert len(refused) == 3
    # The activity did its work once; its outcome waited for the database, not a new run.
    assert [c.key for c in recorder.calls] == [f"{execution_id}:Work:1"]
    support.assert_replays(client)


def test_a_worker_that_stops_before_it_could_record_hands_the_task_back(
    dispatcher: Dispatcher,
    client: Client,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder.add("Slow", lambda params, ctx: {"attempt": ctx.attempt})
    support.deploy(client, slow_flow())
    execution_id = client.start("slow", {})["id"]
    finish = dispatcher.finish
    refused = refusing_finish(dispatcher, monkeypatch, times=1_000_000)
    first = start_worker(dispatcher, recorder.registry, concurrency=1)
    support.wait_until(lambda: len(refused) >= 2, "the outcome to be refused twice")
    assert first.stop(grace=0) == 1
    assert [(r.lease_owner, r.attempt) for r in task_rows(client)] == [(None, 1)]

    monkeypatch.setattr(dispatcher, "finish", finish)  # the database is back
    start_worker(dispatcher, recorder.registry, concurrency=1)
    view = support.wait_closed(client, execution_id)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"attempt": 1})
    assert [c.key for c in recorder.calls] == [f"{execution_id}:Work:1"] * 2
    support.assert_replays(client)


def test_claims_the_database_refuses_are_logged_once_while_it_lasts(
    dispatcher: Dispatcher,
    client: Client,
    slow: Recorder,
    start_worker: Callable[..., worker.Worker],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    support.deploy(client, slow_flow())
    execution_id = client.start("slow", {})["id"]
    claim = dispatcher.claim
    refused: list[leasing.Offer] = []

    def full(offer: leasing.Offer) -> list[leasing.Claim]:
        if len(refused) < 5:
            refused.append(offer)
            raise sa.exc.OperationalError("UPDATE", {}, Exception("database or disk is full"))
        return claim(offer)

    monkeypatch.setattr(dispatcher, "claim", full)
    with caplog.at_level("WARNING", logger="cairn.worker"):
        start_worker(dispatcher, slow.registry, concurrency=1)
        assert support.wait_closed(client, execution_id)["status"] == "SUCCEEDED"
    assert len(refused) == 5
    assert [r.getMessage() for r in caplog.records] == [
        "claiming tasks failed, will try again every poll: database or disk is full",
        "claiming tasks works again",
    ]
