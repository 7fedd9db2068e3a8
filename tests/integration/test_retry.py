"""Retry back-off on the database with an injected clock: no test waits for real time."""

from __future__ import annotations

import pytest

from cairn.client import Client
from cairn.core import commands, events
from cairn.runtime import tables
from cairn.runtime.dispatcher import Dispatcher
from cairn.testing import as_number
from tests.integration import support
from tests.integration.support import FakeClock, Recorder

FLAKY = """
Name: flaky
Version: 1
StartAt: Call
States:
  Call:
    Type: Task
    Activity: Flaky
    Retry:
      - ErrorEquals: [Boom]
        IntervalSeconds: 2
        BackoffRate: 3
        MaxAttempts: {attempts}
        MaxDelaySeconds: 30{jitter}
    End: true
"""


class Boom(Exception):
    pass


@pytest.fixture
def flaky(recorder: Recorder) -> Recorder:
    """``Flaky`` fails with Boom until the attempt given as ``succeed_on`` (never when absent)."""

    @recorder.activity("Flaky")
    def call(params: dict[str, int], ctx: object) -> dict[str, int]:
        attempt = ctx.attempt  # type: ignore[attr-defined]
        if attempt < params.get("succeed_on", 10**9):
            raise Boom(f"attempt {attempt} failed")
        return {"attempt": attempt}

    return recorder


def latest(client: Client, execution_id: str, kind: str) -> events.Event:
    return support.history(client, execution_id, kind)[-1]


def due_times(client: Client) -> list[float]:
    import sqlalchemy as sa

    with client.writer.read() as conn:
        return [r.due_at for r in conn.execute(sa.select(tables.timers.c.due_at))]


def test_back_off_grows_by_the_rate_up_to_the_cap(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, flaky: Recorder
) -> None:
    support.deploy(client, FLAKY.format(attempts=5, jitter=""))
    execution_id = client.start("flaky", {"succeed_on": 5})["id"]
    offer = support.offer(flaky.registry)
    expected = [2.0, 6.0, 18.0, 30.0]  # 2 * 3^n, the last capped by MaxDelaySeconds
    keys = set()
    for n, delay in enumerate(expected):
        (claim,) = dispatcher.claim(offer)
        assert claim.attempt == n + 1
        keys.add(claim.key)
        outcome = support.run_claim(claim, flaky.registry)
        assert isinstance(outcome, commands.FailTask)
        assert (outcome.error, outcome.cause) == ("Boom", f"attempt {n + 1} failed")
        assert dispatcher.finish(claim, "hand", outcome) == []

        retry = latest(client, execution_id, events.RETRY_SCHEDULED)
        assert (retry.details["retry"], retry.details["delay"]) == (n + 1, delay)
        assert retry.details["error"] == "Boom"
        timer = latest(client, execution_id, events.TIMER_STARTED)
        assert timer.details["purpose"] == "retry"
        assert timer.details["due"] == clock.now + delay
        assert due_times(client) == [clock.now + delay]
        assert support.count_rows(client, tables.tasks) == 0

        # Not claimable, and the timer does not fire, a moment before it is due.
        clock.advance(delay - 0.25)
        assert dispatcher.fire_due_timers() == 0
        assert dispatcher.claim(offer) == []
        clock.advance(0.25)
        assert dispatcher.fire_due_timers() == 1
        assert due_times(client) == []

    (claim,) = dispatcher.claim(offer)
    assert claim.attempt == 5
    assert dispatcher.finish(claim, "hand", support.run_claim(claim, flaky.registry)) == []
    view = client.describe(execution_id)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"attempt": 5})
    # Every attempt of one entry of the state carries one idempotency key.
    assert keys == {f"{execution_id}:Call:1"}
    assert [c.attempt for c in flaky.calls] == [1, 2, 3, 4, 5]
    scheduled = support.history(client, execution_id, events.TASK_SCHEDULED)
    assert [e.details["attempt"] for e in scheduled] == [1, 2, 3, 4, 5]
    support.assert_replays(client)


def test_retries_stop_after_max_attempts(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, flaky: Recorder
) -> None:
    support.deploy(client, FLAKY.format(attempts=2, jitter=""))
    execution_id = client.start("flaky", {})["id"]
    for _ in range(3):
        support.work_one(dispatcher, flaky.registry)
        clock.advance(60)
        dispatcher.fire_due_timers()
    assert dispatcher.claim(support.offer(flaky.registry)) == []
    view = client.describe(execution_id)
    assert (view["status"], view["error"], view["cause"]) == ("FAILED", "Boom", "attempt 3 failed")
    assert flaky.count() == 3
    assert len(support.history(client, execution_id, events.RETRY_SCHEDULED)) == 2
    support.assert_replays(client)


def test_full_jitter_stays_within_the_back_off_and_is_recorded(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, flaky: Recorder
) -> None:
    support.deploy(client, FLAKY.format(attempts=5, jitter="\n        JitterStrategy: FULL"))
    execution_id = client.start("flaky", {"succeed_on": 4})["id"]
    for n in range(3):
        support.work_one(dispatcher, flaky.registry)
        retry = latest(client, execution_id, events.RETRY_SCHEDULED)
        delay = as_number(retry.details["delay"])
        assert 0 <= delay <= min(2 * 3**n, 30)
        timer = latest(client, execution_id, events.TIMER_STARTED)
        assert timer.details["due"] == pytest.approx(clock.now + delay)
        clock.advance(delay)
        assert dispatcher.fire_due_timers() == 1
    support.work_one(dispatcher, flaky.registry)
    assert client.describe(execution_id)["status"] == "SUCCEEDED"
    support.assert_replays(client)
