"""SIGKILL of a ``cairn worker`` in the middle of a compensation, of a child workflow's task
and around a ContinueAsNew: a new worker finishes the execution, and no activity runs twice
except the one killed between running and recording (same idempotency key)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cairn.client import Client
from cairn.core import events
from cairn.jsontypes import JSON
from tests.integration import actor_flows, flows, support

pytestmark = pytest.mark.crash

WORKER_ARGS = ("--activities", "tests.integration.actor_flows", "--poll", "0.05")
CLOSE_WITHIN = 15.0


@pytest.fixture
def gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The gate folder of actor_flows, seen by the worker subprocesses through the env."""
    folder = tmp_path / "gates"
    folder.mkdir()
    monkeypatch.setenv(actor_flows.GATES, str(folder))
    return folder


def kill_while_held(process: support.WorkerProcess, gates: Path, tag: str) -> None:
    """Wait until the worker holds the task tagged ``tag``, SIGKILL it, open the gate."""
    support.wait_until(lambda: actor_flows.held(gates, tag), f"the worker to run {tag}")
    os.kill(process.process.pid, signal.SIGKILL)
    assert process.process.wait(support.DEADLINE) == -signal.SIGKILL
    actor_flows.release(gates, tag)


def finished(client: Client, execution_id: str) -> dict[str, Any]:
    support.wait_until(
        lambda: support.closed(client, execution_id), f"{execution_id} to close", CLOSE_WITHIN
    )
    return client.describe(execution_id)


def story(client: Client, calls_file: Path, *execution_ids: str) -> str:
    """What happened, for a failing assertion: every call and every event."""
    lines = [
        f"call {c['activity']} {c['key']} attempt {c['attempt']} pid {c['pid']}"
        for c in flows.calls(calls_file)
    ]
    for execution_id in execution_ids:
        for e in client.history(execution_id):
            lines.append(f"{execution_id} run {e.run} {e.seq} {e.type} {e.state} {e.details}")
    return "\n".join(lines)


def ran_twice(calls_file: Path) -> list[tuple[str, str]]:
    """The (activity, key) pairs that ran more than once."""
    return sorted(
        key for key, count in support.per_key(flows.calls(calls_file)).items() if count > 1
    )


def pids_of(calls_file: Path, key: str) -> list[int]:
    return [c["pid"] for c in flows.calls(calls_file) if c["key"] == key]


def test_sigkill_during_compensation_undoes_each_step_once(
    live_client: Client,
    db_url: str,
    calls_file: Path,
    gates: Path,
    worker_processes: Callable[..., support.WorkerProcess],
) -> None:
    support.deploy(live_client, actor_flows.SAGA)
    actor_flows.arm(gates, "UndoPay")
    first = worker_processes(db_url, *WORKER_ARGS)
    execution_id = live_client.start("saga", {}, execution_id="crash-saga")["id"]
    kill_while_held(first, gates, "UndoPay")
    second = worker_processes(db_url, *WORKER_ARGS)

    view = finished(live_client, execution_id)
    told = story(live_client, calls_file, execution_id)
    assert (view["status"], view["error"]) == ("FAILED", "NoCarrier"), told
    assert live_client.inspect(execution_id)["compensated"] == ["Book", "Pay"]
    undo = [
        e
        for e in support.history(live_client, execution_id, events.TASK_SCHEDULED)
        if e.details.get("compensates") is not None
    ]
    refund_key = str(undo[0].details["key"])
    # UndoPay killed and retried
    assert [e.details["attempt"] for e in undo] == [1, 2, 1], told
    assert refund_key.startswith("crash-saga:Pay:undo:")
    assert ran_twice(calls_file) == [("Actor.Work", refund_key)], told
    assert pids_of(calls_file, refund_key) == [first.process.pid, second.process.pid], told
    timed_out = support.history(live_client, execution_id, events.TASK_TIMED_OUT)
    assert [e.details["error"] for e in timed_out] == ["States.Timeout"], told
    assert len(flows.calls(calls_file)) == 6, told  # Book, Pay, Ship, UndoPay twice, UndoBook
    assert second.stop() == 0, second.output
    support.assert_replays(live_client)


def test_sigkill_during_a_child_workflows_task_finishes_parent_and_child(
    live_client: Client,
    db_url: str,
    calls_file: Path,
    gates: Path,
    worker_processes: Callable[..., support.WorkerProcess],
) -> None:
    support.deploy(live_client, actor_flows.KID)
    support.deploy(live_client, actor_flows.PARENT)
    actor_flows.arm(gates, "Work")
    first = worker_processes(db_url, *WORKER_ARGS)
    parent = live_client.start("parent", {"n": 1}, execution_id="crash-parent")["id"]
    kill_while_held(first, gates, "Work")
    second = worker_processes(db_url, *WORKER_ARGS)

    view = finished(live_client, parent)
    (child,) = [v for v in live_client.executions() if v["parent"] == parent]
    told = story(live_client, calls_file, parent, child["id"])
    assert view["status"] == "SUCCEEDED", told
    assert view["output"]["child"] == {"n": 2}
    assert child["status"] == "SUCCEEDED"
    child_key = f"{child['id']}:Work:1"
    assert ran_twice(calls_file) == [("Actor.Work", child_key)], told
    assert pids_of(calls_file, child_key) == [first.process.pid, second.process.pid], told
    assert sorted(c["key"] for c in flows.calls(calls_file)) == sorted(
        [f"{parent}:Before:1", f"{parent}:After:1", child_key, child_key]
    )
    timed_out = support.history(live_client, child["id"], events.TASK_TIMED_OUT)
    assert [e.details["error"] for e in timed_out] == ["States.HeartbeatTimeout"]
    assert len(support.history(live_client, parent, events.CHILD_STARTED)) == 1
    assert second.stop() == 0, second.output
    support.assert_replays(live_client)


def test_sigkill_on_either_side_of_a_continue_as_new(
    live_client: Client,
    db_url: str,
    calls_file: Path,
    gates: Path,
    worker_processes: Callable[..., support.WorkerProcess],
) -> None:
    support.deploy(live_client, actor_flows.LOOP)
    actor_flows.arm(gates, "step-1")  # its success ends run 1 with the ContinueAsNew
    actor_flows.arm(gates, "step-2")  # the first task of run 2
    first = worker_processes(db_url, *WORKER_ARGS)
    loop: JSON = {"n": 0, "limit": 4, "every": 2}
    execution_id = live_client.start("loop", loop, execution_id="crash-loop")["id"]
    kill_while_held(first, gates, "step-1")
    assert live_client.describe(execution_id)["run"] == 1
    second = worker_processes(db_url, *WORKER_ARGS)
    kill_while_held(second, gates, "step-2")
    assert live_client.describe(execution_id)["run"] == 2
    third = worker_processes(db_url, *WORKER_ARGS)

    view = finished(live_client, execution_id)
    told = story(live_client, calls_file, execution_id)
    assert (view["status"], view["run"]) == ("SUCCEEDED", 2), told
    assert view["output"] == {"n": 4, "limit": 4, "every": 2}
    keys = {
        "crash-loop:Step:2": [first.process.pid, second.process.pid],
        "crash-loop#2:Step:1": [second.process.pid, third.process.pid],
    }
    assert ran_twice(calls_file) == sorted(("Actor.Work", key) for key in keys), told
    for key, pids in keys.items():
        assert pids_of(calls_file, key) == pids, told
    assert [c["key"] for c in flows.calls(calls_file) if c["key"] not in keys] == [
        "crash-loop:Step:1",
        "crash-loop#2:Step:2",
    ]
    runs = {e.run for e in live_client.history(execution_id)}
    assert runs == {1, 2}
    assert [
        e.type for e in live_client.history(execution_id) if e.type == events.CONTINUED_AS_NEW
    ] == [events.CONTINUED_AS_NEW]
    assert third.stop() == 0, third.output
    support.assert_replays(live_client)
