"""Workers in threads and in ``cairn worker`` subprocesses sharing one database."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn import activities
from cairn.client import Client
from cairn.core import events
from cairn.runtime import worker
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.writer import Writer
from tests.integration import flows, support

EXECUTIONS = 60
WORKER_ARGS = ("--activities", "tests.integration.flows", "--poll", "0.05")


def fan_registry() -> activities.Registry:
    registry = activities.Registry()
    for name, handler in [
        ("Fan.Prepare", flows.fan_prepare),
        ("Fan.Left", flows.fan_left),
        ("Fan.Right", flows.fan_right),
        ("Fan.Join", flows.fan_join),
    ]:
        registry.register(name, handler)
    return registry


def test_threads_and_processes_run_every_task_exactly_once(
    live_dispatcher: Dispatcher,
    live_client: Client,
    db_url: str,
    calls_file: Path,
    start_worker: Callable[..., worker.Worker],
    worker_processes: Callable[..., support.WorkerProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    support.deploy_file(live_client, "fan.yaml")
    # Every worker is looking for work before the first execution starts, so that all
    # of them compete for the tasks from the start.
    processes = [worker_processes(db_url, *WORKER_ARGS, "--concurrency", "2") for _ in range(2)]
    progress: list[worker.Progress] = []
    registry = fan_registry()
    for _ in range(4):
        start_worker(live_dispatcher, registry, concurrency=2, on_progress=progress.append)
    for process in processes:
        process.wait_for("concurrency 2")
    # Started as another program would: through a write path with no idle slots of its
    # own, so that no task is handed straight to a thread of this process and all compete.
    client = Client(Writer(live_client.writer.db))
    ids = [
        client.start("fan", {"n": n}, execution_id=f"fan-{n:02d}")["id"] for n in range(EXECUTIONS)
    ]

    support.wait_until(
        lambda: not live_client.executions(status="RUNNING", limit=EXECUTIONS),
        f"{EXECUTIONS} executions to close",
        timeout=60,
    )
    for n, execution_id in enumerate(ids):
        view = live_client.describe(execution_id)
        assert view["status"] == "SUCCEEDED", view
        assert view["output"] == {"n": n, "joined": "left+right"}

    calls = flows.calls(calls_file)
    runs = support.per_key(calls)
    assert len(runs) == 4 * EXECUTIONS
    assert [key for key, count in runs.items() if count != 1] == []
    succeeded = [
        e
        for execution_id in ids
        for e in support.history(live_client, execution_id, events.TASK_SUCCEEDED)
    ]
    assert len(succeeded) == 4 * EXECUTIONS
    # Both kinds of worker took part.
    pids = {c["pid"] for c in calls}
    assert os.getpid() in pids
    assert pids & {p.process.pid for p in processes}

    assert [p.kind for p in progress if p.kind not in ("started", "succeeded")] == []
    for process in processes:
        assert process.stop() == 0, process.output
        assert "stopped; 0 task(s) handed back" in process.output
        assert "locked" not in process.output and "Traceback" not in process.output
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    support.assert_replays(live_client)


def test_a_new_worker_finishes_what_a_stopped_worker_left(
    live_client: Client,
    db_url: str,
    calls_file: Path,
    tmp_path: Path,
    worker_processes: Callable[..., support.WorkerProcess],
) -> None:
    gate = tmp_path / "gate"
    support.deploy_file(live_client, "steps.yaml")
    execution_id = live_client.start("steps", {}, execution_id="steps-1")["id"]
    first = worker_processes(db_url, *WORKER_ARGS, **{flows.GATE: str(gate)})

    def one_succeeded() -> bool:
        done = support.history(live_client, execution_id, events.TASK_SUCCEEDED)
        return any(e.state == "One" for e in done)

    support.wait_until(one_succeeded, "task One to succeed")
    first.terminate()
    first.wait_for("stopping")
    gate.touch()  # Two, in flight when the stop came, finishes within the grace period
    assert first.process.wait(support.DEADLINE) == 0, first.output
    assert "stopped; 0 task(s) handed back" in first.output
    assert [c["activity"] for c in flows.calls(calls_file)] == ["Steps.One", "Steps.Two"]
    view = live_client.inspect(execution_id)
    assert view["status"] == "RUNNING"
    assert [(t["state"], t["worker"]) for t in view["tasks"]] == [("Three", None)]

    second = worker_processes(db_url, *WORKER_ARGS, **{flows.GATE: str(gate)})
    view = support.wait_closed(live_client, execution_id)
    assert view["status"] == "SUCCEEDED", view
    assert view["output"] == {"one": 1, "two": 2, "three": 3}
    calls = flows.calls(calls_file)
    assert [c["activity"] for c in calls] == ["Steps.One", "Steps.Two", "Steps.Three"]
    assert set(support.per_key(calls).values()) == {1}
    assert [c["pid"] for c in calls] == [first.process.pid] * 2 + [second.process.pid]
    assert second.stop() == 0, second.output
    support.assert_replays(live_client)
