"""SIGKILL a worker process at chosen points; a new worker finishes every execution.

The points: after the claim but before the activity ran, while it runs, after it returned
but before its outcome was recorded, during a Parallel fan-out, during a Wait, during a
retry back-off.  Each time the execution succeeds, its history replays to its snapshot,
nothing that had been recorded runs again, and the provider was charged once.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from activities import provider
from cairn.client import Client
from cairn.core import events
from cairn.definitions import loader
from cairn.runtime import tables
from tests.crash import handlers, harness
from tests.integration import support
from tests.integration.conftest import _conninfo

pytestmark = pytest.mark.crash

WORKER = ("--lease", "1", "--poll", "0.1", "--concurrency", "4")

HOLD = """
Name: hold
Version: 1
StartAt: First
States:
  First: {Type: Task, Activity: Crash.Step, ResultPath: first, Next: Hold}
  Hold: {Type: Task, Activity: Crash.Hold, Parameters: {amount: 5}, ResultPath: hold, Next: Last}
  Last: {Type: Task, Activity: Crash.Step, ResultPath: last, End: true}
"""

HEARTBEATING = """
Name: beating
Version: 1
StartAt: Hold
States:
  Hold:
    Type: Task
    Activity: Crash.Hold
    HeartbeatSeconds: 1
    Retry: [{ErrorEquals: [States.HeartbeatTimeout], IntervalSeconds: 1, MaxAttempts: 1}]
    End: true
"""

FANOUT = """
Name: fanout
Version: 1
StartAt: Split
States:
  Split:
    Type: Parallel
    Branches:
      - {StartAt: A, States: {A: {Type: Task, Activity: Crash.Step, End: true}}}
      - {StartAt: B, States: {B: {Type: Task, Activity: Crash.Hold, End: true}}}
      - {StartAt: C, States: {C: {Type: Task, Activity: Crash.Step, End: true}}}
    ResultPath: branches
    Next: Join
  Join: {Type: Task, Activity: Crash.Step, ResultPath: join, End: true}
"""

WAIT = """
Name: pause
Version: 1
StartAt: First
States:
  First: {Type: Task, Activity: Crash.Step, ResultPath: first, Next: Pause}
  Pause: {Type: Wait, Seconds: 1, Next: Last}
  Last: {Type: Task, Activity: Crash.Step, ResultPath: last, End: true}
"""

BACKOFF = """
Name: backoff
Version: 1
StartAt: First
States:
  First: {Type: Task, Activity: Crash.Step, ResultPath: first, Next: Flaky}
  Flaky:
    Type: Task
    Activity: Crash.FailOnce
    Retry: [{ErrorEquals: [Flaky], IntervalSeconds: 1, MaxAttempts: 2}]
    ResultPath: flaky
    Next: Last
  Last: {Type: Task, Activity: Crash.Step, ResultPath: last, End: true}
"""


def start(client: Client, text: str) -> str:
    client.deploy(loader.loads(text))
    name = loader.loads(text).name
    return str(client.start(name, {}, execution_id=f"{name}-1")["id"])


def journaled(journal: Path, at: str, activity: str) -> list[dict[str, object]]:
    return [
        line
        for line in handlers.read_journal(journal)
        if line["at"] == at and line["activity"] == activity
    ]


def recorded(client: Client, execution_id: str, *types: str) -> list[events.Event]:
    return support.history(client, execution_id, *types)


def checkpoint(client: Client) -> object:
    with client.writer.read() as conn:
        return conn.execute(sa.select(tables.tasks.c.heartbeat_details)).scalar()


def owner_of(client: Client, state: str) -> str | None:
    T = tables.tasks
    with client.writer.read() as conn:
        row = conn.execute(sa.select(T.c.lease_owner).where(T.c.state == state)).first()
    return None if row is None else row.lease_owner


@contextlib.contextmanager
def database_held(db_url: str, execution_id: str) -> Iterator[None]:
    """Hold the lock a worker needs to record an outcome of ``execution_id``."""
    if db_url.startswith("sqlite"):
        lite = sqlite3.connect(sa.make_url(db_url).database or "", isolation_level=None)
        lite.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            lite.execute("ROLLBACK")
            lite.close()
        return
    with psycopg.connect(_conninfo(db_url)) as conn:
        conn.execute("SELECT 1 FROM executions WHERE id = %s FOR UPDATE", (execution_id,))
        try:
            yield
        finally:
            conn.rollback()


def finished(
    client: Client, execution_id: str, journal: Path, cluster: harness.Cluster
) -> harness.Journal:
    """The execution succeeded, replays, and its reruns are explained by the kill."""
    view = support.wait_closed(client, execution_id)
    assert view["status"] == "SUCCEEDED", view
    support.assert_replays(client)
    runs = harness.Journal.read(journal)
    harness.explain_reruns(runs, cluster.signalled)
    harness.assert_no_overlap(runs, cluster.signalled)
    harness.assert_history_names_workers(client, runs, [execution_id])
    assert client.refused() == []  # a killed worker never comes back with an outcome
    cluster.stop_all()
    return runs


def runs_of(runs: harness.Journal, activity: str) -> list[list[harness.Run]]:
    return [v for (a, _, _), v in runs.by_attempt.items() if a == activity]


def test_killed_after_the_claim_before_the_activity_ran(
    client: Client, cluster: Callable[..., harness.Cluster], journal: Path
) -> None:
    workers = cluster(*WORKER)
    first = workers.start(**{handlers.HOLD: "before"}).ready()
    execution_id = start(client, HOLD)
    support.wait_until(lambda: owner_of(client, "Hold") == first.id, "Hold to be leased")
    assert journaled(journal, "start", "Crash.Hold") == []
    workers.kill(first)
    workers.start().ready()

    runs = finished(client, execution_id, journal, workers)
    assert [len(r) for r in runs_of(runs, "Crash.Hold")] == [1]  # the first run never began
    assert [len(r) for r in runs_of(runs, "Crash.Step")] == [1, 1]
    (charge,) = provider.charges()
    assert charge["requests"] == 1


def test_killed_while_the_activity_runs_resumes_from_its_heartbeat(
    client: Client, cluster: Callable[..., harness.Cluster], journal: Path
) -> None:
    workers = cluster(*WORKER)
    first = workers.start(**{handlers.HOLD: "during"}).ready()
    execution_id = start(client, HOLD)
    support.wait_until(lambda: journaled(journal, "start", "Crash.Hold"), "Hold to run")
    support.wait_until(lambda: checkpoint(client), "the checkpoint")
    workers.kill(first)
    workers.start().ready()

    runs = finished(client, execution_id, journal, workers)
    (hold,) = runs_of(runs, "Crash.Hold")
    assert [(r.pid, r.end is None) for r in hold] == [(first.pid, True), (hold[1].pid, False)]
    output = client.describe(execution_id)["output"]
    assert output["hold"]["resumed_from"] == {"checkpoint": hold_key(client, execution_id, "Hold")}
    assert [c["requests"] for c in provider.charges()] == [1]


def test_killed_while_heartbeating_the_next_attempt_resumes_from_the_checkpoint(
    client: Client, cluster: Callable[..., harness.Cluster], journal: Path
) -> None:
    workers = cluster(*WORKER)
    first = workers.start(**{handlers.HOLD: "during"}).ready()
    execution_id = start(client, HEARTBEATING)
    support.wait_until(lambda: checkpoint(client), "the checkpoint")
    workers.kill(first)
    workers.start().ready()

    runs = finished(client, execution_id, journal, workers)
    assert sorted((r[0].attempt, len(r)) for r in runs_of(runs, "Crash.Hold")) == [(1, 1), (2, 1)]
    key = hold_key(client, execution_id, "Hold")
    assert client.describe(execution_id)["output"]["resumed_from"] == {"checkpoint": key}
    # The history holds the checkpoint, and names the worker of the attempt that timed out.
    history = recorded(client, execution_id)
    (timed_out,) = [e for e in history if e.type == events.TASK_TIMED_OUT]
    assert timed_out.details["error"] == "States.HeartbeatTimeout"
    assert timed_out.details["heartbeat_details"] == {"checkpoint": key}
    retried = [e for e in history if e.type == events.TASK_SCHEDULED][-1]
    assert retried.details["attempt"] == 2
    assert retried.details["heartbeat_details"] == {"checkpoint": key}
    started = [e.details["worker"] for e in history if e.type == events.TASK_STARTED]
    assert started[0] == first.id and len(started) == 2


def test_killed_after_the_activity_returned_before_its_outcome_was_recorded(
    client: Client,
    cluster: Callable[..., harness.Cluster],
    journal: Path,
    db_url: str,
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    workers = cluster(*WORKER)
    first = workers.start(**{handlers.HOLD: "returned", handlers.GATE: str(gate)}).ready()
    execution_id = start(client, HOLD)
    support.wait_until(lambda: journaled(journal, "start", "Crash.Hold"), "Hold to run")
    with database_held(db_url, execution_id):
        gate.touch()
        support.wait_until(lambda: journaled(journal, "end", "Crash.Hold"), "Hold to return")
        workers.kill(first)
    assert events.TASK_SUCCEEDED not in [
        e.type for e in recorded(client, execution_id) if e.state == "Hold"
    ]
    workers.start().ready()

    runs = finished(client, execution_id, journal, workers)
    (hold,) = runs_of(runs, "Crash.Hold")
    assert len(hold) == 2 and hold[0].end is not None and hold[0].pid == first.pid
    # It ran twice; the provider saw the key twice and charged once.
    (charge,) = provider.charges()
    assert (charge["idempotency_key"], charge["requests"]) == (
        hold_key(client, execution_id, "Hold"),
        2,
    )


def test_killed_during_a_parallel_fan_out(
    client: Client, cluster: Callable[..., harness.Cluster], journal: Path
) -> None:
    workers = cluster(*WORKER)
    first = workers.start(**{handlers.HOLD: "during"}).ready()
    execution_id = start(client, FANOUT)

    def branches_done() -> bool:
        done = recorded(client, execution_id, events.TASK_SUCCEEDED)
        return len(done) == 2 and bool(journaled(journal, "start", "Crash.Hold"))

    support.wait_until(branches_done, "branches A and C to succeed while B runs")
    workers.kill(first)
    workers.start().ready()

    runs = finished(client, execution_id, journal, workers)
    assert sorted(len(r) for r in runs_of(runs, "Crash.Step")) == [1, 1, 1]  # A, C, Join
    assert [len(r) for r in runs_of(runs, "Crash.Hold")] == [2]
    a, b, c = client.describe(execution_id)["output"]["branches"]
    assert (a, c) == ({"step": "A"}, {"step": "C"})
    assert b["resumed_from"] == {"checkpoint": hold_key(client, execution_id, "B")}


def hold_key(client: Client, execution_id: str, state: str) -> str:
    keys = {
        e.details["key"]
        for e in recorded(client, execution_id, events.TASK_SCHEDULED)
        if e.state == state
    }
    (key,) = keys  # every attempt of the state, one key
    return str(key)


def test_killed_during_a_wait_the_timer_fires_when_a_worker_is_back(
    client: Client, cluster: Callable[..., harness.Cluster], journal: Path
) -> None:
    workers = cluster(*WORKER)
    first = workers.start().ready()
    execution_id = start(client, WAIT)
    (timer,) = support.wait_until(
        lambda: recorded(client, execution_id, events.TIMER_STARTED), "the Wait to begin"
    )
    workers.kill(first)
    due = timer.details["due"]
    assert isinstance(due, (int, float))
    support.wait_until(lambda: client.writer.clock() > due, "the timer to be due with no worker")
    assert client.describe(execution_id)["status"] == "RUNNING"
    workers.start().ready()

    runs = finished(client, execution_id, journal, workers)
    assert [len(r) for r in runs_of(runs, "Crash.Step")] == [1, 1]
    (fired,) = recorded(client, execution_id, events.TIMER_FIRED)
    assert fired.time >= due


def test_killed_during_a_retry_back_off(
    client: Client, cluster: Callable[..., harness.Cluster], journal: Path
) -> None:
    workers = cluster(*WORKER)
    first = workers.start().ready()
    execution_id = start(client, BACKOFF)
    support.wait_until(
        lambda: recorded(client, execution_id, events.RETRY_SCHEDULED), "the back-off to begin"
    )
    workers.kill(first)
    workers.start().ready()

    runs = finished(client, execution_id, journal, workers)
    assert [len(r) for r in runs_of(runs, "Crash.Step")] == [1, 1]
    assert sorted((r[0].attempt, len(r)) for r in runs_of(runs, "Crash.FailOnce")) == [
        (1, 1),
        (2, 1),
    ]
    assert client.describe(execution_id)["output"]["flaky"] == {"attempt": 2}
