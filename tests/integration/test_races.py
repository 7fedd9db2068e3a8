"""Two writers on one execution at the same moment: both finish, neither fails.

A task or timer row and the execution row are locked by every writer that touches both.
Each test holds the first writer right after it locked its task or timer row, until the
second writer is waiting for a lock, and then lets it go on.  On PostgreSQL that forces
the interleaving in which two lock orders would deadlock; on SQLite the write lock
serialises the two writers anyway, and the test checks the same outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from cairn.client import Client
from cairn.core import events
from cairn.runtime import store, tables
from cairn.runtime.dispatcher import Dispatcher
from tests.integration import support
from tests.integration.support import FakeClock, Recorder

WAIT = """
Name: hold
Version: 1
StartAt: Hold
States:
  Hold:
    Type: Wait
    Seconds: 10
    Signal: go
    Next: Work
  Work:
    Type: Task
    Activity: Work
    End: true
"""

TWO_TASKS = """
Name: two
Version: 1
StartAt: First
States:
  First:
    Type: Task
    Activity: Work
    Next: Second
  Second:
    Type: Task
    Activity: Work
    End: true
"""


def lock_waiters(db_url: str) -> Callable[[], bool]:
    """Whether a connection of this test waits for a lock (always true on SQLite)."""
    url = sa.make_url(db_url)
    if url.get_backend_name() != "postgresql":
        return lambda: True
    name = url.query["application_name"]
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)

    def waiting() -> bool:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                (name,),
            ).fetchone()
        return bool(row and row[0])

    return waiting


def race(
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    first: Callable[[], Any],
    second: Callable[[], Any],
) -> None:
    """Run ``first`` up to its load of the execution, then ``second``, then both to the end."""
    inside = threading.Event()
    waiting = lock_waiters(db_url)
    load = store.load
    failures: list[BaseException] = []

    def held_load(conn: sa.Connection, execution_id: str, known: Any = None) -> store.Loaded | None:
        if threading.current_thread().name == "first" and not inside.is_set():
            inside.set()
            support.wait_until(waiting, "the second writer to wait for a lock")
        return load(conn, execution_id, known)

    def run(action: Callable[[], Any]) -> None:
        try:
            action()
        except BaseException as exc:
            failures.append(exc)

    monkeypatch.setattr(store, "load", held_load)
    one = threading.Thread(target=run, args=(first,), name="first")
    one.start()
    assert inside.wait(support.DEADLINE)
    two = threading.Thread(target=run, args=(second,), name="second")
    two.start()
    one.join(support.DEADLINE)
    two.join(support.DEADLINE)
    assert not one.is_alive() and not two.is_alive()
    assert failures == []


@pytest.fixture
def work(recorder: Recorder) -> Recorder:
    recorder.add("Work", lambda params, ctx: params)
    return recorder


def test_a_timer_firing_as_the_signal_arrives(
    dispatcher: Dispatcher,
    client: Client,
    clock: FakeClock,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    support.deploy(client, WAIT)
    execution_id = client.start("hold", {})["id"]
    clock.advance(10)
    race(
        monkeypatch,
        db_url,
        dispatcher.fire_due_timers,
        lambda: client.signal(execution_id, "go", "late"),
    )
    types = support.types_of(client, execution_id)
    assert types.count(events.TIMER_FIRED) == 1
    assert events.SIGNAL_RECEIVED in types
    assert support.entered(client, execution_id) == ["Hold", "Work"]
    support.assert_replays(client)


def test_a_task_finishing_as_the_execution_is_cancelled(
    dispatcher: Dispatcher,
    client: Client,
    work: Recorder,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    support.deploy(client, TWO_TASKS)
    execution_id = client.start("two", {"n": 1})["id"]
    (claim,) = dispatcher.claim(support.offer(work.registry, "w1"))
    outcome = support.run_claim(claim, work.registry)
    race(
        monkeypatch,
        db_url,
        lambda: dispatcher.finish(claim, "w1", outcome),
        lambda: client.cancel(execution_id, "no longer needed"),
    )
    view = client.describe(execution_id)
    assert (view["status"], view["cause"]) == ("CANCELLED", "no longer needed")
    assert support.count_rows(client, tables.tasks) == 0
    support.assert_replays(client)
