"""Workers at scale: batched claims, who is running, wake-ups from other processes, handing over.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner

from cairn.cli.main import main
from cairn.client import Client
from cairn.core import commands, events
from cairn.runtime import database, leasing, tables, worker
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.writer import Writer
from tests.integration import flows, support
from tests.integration.support import FakeClock, Recorder

WORKER_ARGS = ("--activities", "tests.integration.flows")

ONE = """
Name: one
Version: 1
StartAt: Work
States:
  Work: {Type: Task, Activity: Work, End: true}
"""

BEATING = """
Name: beating
Version: 1
StartAt: Work
States:
  Work:
    Type: Task
    Activity: Work
    HeartbeatSeconds: 5
    Retry:
      - ErrorEquals: [States.HeartbeatTimeout, Interrupted]
        IntervalSeconds: 1
        MaxAttempts: 3
    End: true
"""


def test_one_claim_leases_a_task_for_every_free_slot(
    dispatcher: Dispatcher, client: Client, recorder: Recorder
) -> None:
    recorder.add("Work", lambda params, ctx: params)
    support.deploy(client, ONE)
    for n in range(5):
        client.start("one", {"n": n})
    first = dispatcher.claim(support.offer(recorder.registry, "w1", slots=3))
    second = dispatcher.claim(support.offer(recorder.registry, "w2", slots=3))
    assert (len(first), len(second)) == (3, 2)
    assert len({c.task_id for c in first + second}) == 5
    assert dispatcher.claim(support.offer(recorder.registry, "w3", slots=3)) == []
    owners = Counter(r.lease_owner for r in rows(client))
    assert owners == {"w1": 3, "w2": 2}


def test_claimers_racing_never_lease_one_task_twice(
    make_writer: Callable[..., Writer], recorder: Recorder
) -> None:
    recorder.add("Work", lambda params, ctx: params)
    starter = Client(make_writer())
    support.deploy(starter, ONE)
    total = 120
    for n in range(total):
        starter.start("one", {"n": n})
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def claim_all(name: str) -> None:
        # A process of its own would have a write path of its own.
        tasks = Dispatcher(make_writer())
        while found := tasks.claim(support.offer(recorder.registry, name, slots=4)):
            with lock:
                claimed.extend((name, c.task_id) for c in found)

    threads = [threading.Thread(target=claim_all, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(support.DEADLINE)
    tasks = Counter(task for _, task in claimed)
    assert len(tasks) == total and set(tasks.values()) == {1}
    assert Counter(r.lease_owner for r in rows(starter)) == Counter(name for name, _ in claimed)


def test_a_late_outcome_is_refused_and_kept_with_the_reason(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, recorder: Recorder, db_url: str
) -> None:
    recorder.add("Work", lambda params, ctx: params)
    support.deploy(client, ONE)
    execution_id = client.start("one", {"n": 1})["id"]
    (old,) = dispatcher.claim(support.offer(recorder.registry, "w-old", slots=1))
    clock.advance(leasing.DEFAULT_LEASE)
    assert dispatcher.expire_leases() == 1
    (new,) = dispatcher.claim(support.offer(recorder.registry, "w-new", slots=1))
    done = commands.CompleteTask(task_id=old.task_id, result={"by": "w-old"})
    assert dispatcher.finish(old, "w-old", done) is None
    assert (
        dispatcher.finish(new, "w-new", commands.CompleteTask(task_id=new.task_id, result=1)) == []
    )
    assert (
        dispatcher.finish(
            old, "w-old", commands.FailTask(task_id=old.task_id, error="E", cause="c")
        )
        is None
    )

    first, second = client.refused(execution_id)
    assert (first["worker"], first["outcome"], first["result"]) == (
        "w-old",
        "succeeded",
        {"by": "w-old"},
    )
    assert first["reason"] == "the lease expired; worker w-new holds the task now"
    assert (first["key"], first["attempt"], first["state"]) == (old.key, 1, "Work")
    assert (second["outcome"], second["error"], second["cause"]) == ("failed", "E", "c")
    assert second["reason"].startswith("the task is no longer pending")
    assert client.inspect(execution_id)["refused"] == [first, second]
    shown = CliRunner().invoke(main, ["--db", db_url, "describe", execution_id])
    assert "refused  Work attempt 1 succeeded on w-old" in shown.stdout
    # Refusals are not events: the history and its fold are untouched by them.
    assert client.describe(execution_id)["output"] == 1
    assert support.types_of(client, execution_id).count(events.TASK_SUCCEEDED) == 1
    support.assert_replays(client)


def test_a_polled_task_that_timed_out_names_its_worker(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, recorder: Recorder
) -> None:
    recorder.add("Work", lambda params, ctx: params)
    support.deploy(client, ONE.replace("End: true}", "TimeoutSeconds: 5, End: true}"))
    execution_id = client.start("one", {})["id"]
    dispatcher.claim(support.offer(recorder.registry, "w-slow", slots=1))
    clock.advance(5)
    assert dispatcher.expire_leases() == 1
    started, timed_out = support.history(
        client, execution_id, events.TASK_STARTED, events.TASK_TIMED_OUT
    )
    assert (started.details["worker"], started.time) == ("w-slow", clock.now - 5)
    assert timed_out.details["error"] == "States.Timeout"
    support.assert_replays(client)


def test_the_last_checkpoint_goes_to_the_next_attempt(
    dispatcher: Dispatcher, client: Client, clock: FakeClock, recorder: Recorder
) -> None:
    recorder.add("Work", lambda params, ctx: params)
    support.deploy(client, BEATING)
    execution_id = client.start("beating", {})["id"]
    offer = support.offer(recorder.registry, "w1", slots=1)
    (first,) = dispatcher.claim(offer)
    assert first.heartbeat_details is None
    assert dispatcher.renew(first, "w1", {"page": 7})
    clock.advance(5)
    assert dispatcher.expire_leases() == 1  # no heartbeat for 5 s: attempt 1 timed out
    clock.advance(1)
    assert dispatcher.fire_due_timers() == 1
    (second,) = dispatcher.claim(offer)
    assert (second.attempt, second.heartbeat_details) == (2, {"page": 7})
    # A failure reported with a newer checkpoint hands that one on.
    failed = commands.FailTask(
        task_id=second.task_id, error="Interrupted", cause="", heartbeat_details={"page": 9}
    )
    assert dispatcher.finish(second, "w1", failed) == []
    clock.advance(2)
    dispatcher.fire_due_timers()
    (third,) = dispatcher.claim(offer)
    assert (third.attempt, third.heartbeat_details) == (3, {"page": 9})
    timed_out, failed_event = support.history(
        client, execution_id, events.TASK_TIMED_OUT, events.TASK_FAILED
    )
    assert timed_out.details["heartbeat_details"] == {"page": 7}
    assert failed_event.details["heartbeat_details"] == {"page": 9}
    support.assert_replays(client)


def test_a_worker_hands_on_the_checkpoint_of_a_failed_attempt(
    live_dispatcher: Dispatcher,
    live_client: Client,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
) -> None:
    @recorder.activity("Work")
    def work(params: Any, ctx: Any) -> Any:
        if ctx.attempt == 1:
            ctx.heartbeat({"done": 3})
            raise RuntimeError("interrupted")
        return {"resumed": ctx.heartbeat_details, "attempt": ctx.attempt}

    support.deploy(live_client, BEATING.replace("Interrupted", "RuntimeError"))
    execution_id = live_client.start("beating", {})["id"]
    start_worker(live_dispatcher, recorder.registry)
    view = support.wait_closed(live_client, execution_id)
    assert view["output"] == {"resumed": {"done": 3}, "attempt": 2}
    support.assert_replays(live_client)


def test_running_workers_are_listed_and_leave_when_stopped(
    dispatcher: Dispatcher,
    client: Client,
    clock: FakeClock,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
) -> None:
    release = threading.Event()

    @recorder.activity("Work")
    def work(params: Any, ctx: Any) -> Any:
        assert release.wait(support.DEADLINE)
        return ctx.worker

    support.deploy(client, ONE)
    runner = start_worker(
        dispatcher, recorder.registry, queues=("default", "extra"), concurrency=3, lease=60.0
    )
    execution_id = client.start("one", {})["id"]
    support.wait_until(lambda: recorder.count() == 1, "the activity to start")
    (listed,) = client.workers()
    assert listed["id"] == runner.id and listed["live"]
    assert (listed["queues"], listed["activities"]) == (["default", "extra"], ["Work"])
    assert (listed["in_flight"], listed["concurrency"], listed["lease"]) == (1, 3, 60.0)
    assert listed["pid"] == runner.presence.pid and listed["host"] == runner.presence.host
    release.set()
    view = support.wait_closed(client, execution_id)
    assert view["output"] == runner.id  # ctx.worker: the lease owner
    # Silent for a whole lease: presumed dead, listed only on request.
    clock.advance(60.0)
    assert client.workers() == []
    (dead,) = client.workers(everyone=True)
    assert (dead["id"], dead["live"], dead["in_flight"]) == (runner.id, False, 0)
    assert runner.stop() == 0
    assert client.workers(everyone=True) == []


def test_a_process_wakes_at_once_for_work_another_process_queued(
    live_client: Client,
    db_url: str,
    calls_file: Path,
    worker_processes: Callable[..., support.WorkerProcess],
) -> None:
    support.deploy_file(live_client, "greet.yaml")
    # Polling once a minute: only the wake-up (a notification on PostgreSQL, a change of
    # the file on SQLite) can bring each task to it within the deadline.
    process = worker_processes(db_url, *WORKER_ARGS, "--poll", "60", "--lease", "4")
    process.wait_for("lease 4s")
    client = Client(Writer(database.connect(db_url)))
    for n in range(3):
        execution_id = client.start("greet", {"name": f"n{n}"})["id"]
        view = support.wait_closed(live_client, execution_id, timeout=20)
        assert view["output"] == {"greeting": f"hello n{n}"}
    assert len(flows.calls(calls_file)) == 3
    assert process.stop() == 0


def test_cairn_workers_lists_the_running_processes(
    live_client: Client,
    db_url: str,
    calls_file: Path,
    tmp_path: Path,
    worker_processes: Callable[..., support.WorkerProcess],
) -> None:
    gate = tmp_path / "gate"
    support.deploy_file(live_client, "steps.yaml")
    env = {flows.GATE: str(gate), "CAIRN_LEASE_SECONDS": "6"}
    process = worker_processes(db_url, *WORKER_ARGS, "--queue", "default", **env)
    process.wait_for("lease 6s")
    execution_id = live_client.start("steps", {})["id"]
    support.wait_until(
        lambda: [c["activity"] for c in flows.calls(calls_file)][-1:] == ["Steps.Two"],
        "Steps.Two to run",
    )
    shown = support.cairn("--db", db_url, "workers", "--json")
    assert shown.returncode == 0, shown.stderr
    (listed,) = json.loads(shown.stdout)
    assert listed["pid"] == process.process.pid and listed["id"].split(":")[1] == str(listed["pid"])
    assert (listed["queues"], listed["lease"], listed["in_flight"]) == (["default"], 6.0, 1)
    assert "Steps.Two" in listed["activities"] and listed["heartbeat_at"]
    table = support.cairn("--db", db_url, "workers")
    assert listed["id"] in table.stdout and "1/4" in table.stdout
    gate.touch()
    assert support.wait_closed(live_client, execution_id)["status"] == "SUCCEEDED"
    assert process.stop() == 0
    shown = support.cairn("--db", db_url, "workers", "--json")
    assert json.loads(shown.stdout) == []


def test_a_task_handed_over_as_the_stop_comes_goes_back_at_once(
    dispatcher: Dispatcher,
    client: Client,
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
) -> None:
    recorder.add("Work", lambda params, ctx: params)
    support.deploy(client, ONE)
    runner = start_worker(dispatcher, recorder.registry, concurrency=1)
    (slot,) = support.wait_until(lambda: dispatcher.idle_slots(runner.id), "the slot to be idle")
    execution_id = client.start("one", {})["id"]
    (claim,) = dispatcher.claim(support.offer(recorder.registry, runner.id))
    runner.stopping.set()
    slot.deliver(claim)  # as a transaction would hand it over while the stop begins
    assert runner.stop(grace=support.DEADLINE) == 1
    assert [r.lease_owner for r in rows(client)] == [None]
    assert recorder.count() == 0
    assert client.describe(execution_id)["status"] == "RUNNING"


def test_a_database_at_schema_1_is_upgraded(db_url: str) -> None:
    engine = database.connect(db_url, upgrade=True)
    with engine.begin() as conn:
        tables.workers.drop(conn)
        tables.refused_outcomes.drop(conn)
        conn.execute(tables.schema_version.update().values(version=1))
    assert database.migrate(engine) == tables.SCHEMA_VERSION == 3
    with engine.connect() as conn:
        assert conn.execute(sa.select(tables.schema_version.c.version)).scalar() == 3
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.workers)).scalar() == 0
    engine.dispose()


def rows(client: Client) -> list[Any]:
    with client.writer.read() as conn:
        return list(conn.execute(sa.select(tables.tasks)))
