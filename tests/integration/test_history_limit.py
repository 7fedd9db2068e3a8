"""The history limit on the real write path: a run that passes it fails cleanly with
States.HistoryLimitExceeded, whichever event of a step crosses it, and the worker goes on."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from cairn.client import Client
from cairn.core import names
from cairn.runtime import tables, worker
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.writer import Writer
from tests.integration import support
from tests.integration.support import Recorder

SPIN = """
Name: spin
Version: 1
StartAt: Work
States:
  Work:
    Type: Task
    Activity: Limit.Work
    Next: Again?
  Again?:
    Type: Choice
    Choices:
      - Condition: "`true`"
        Next: Work
    Default: Done
  Done:
    Type: Succeed
"""
"""A Task->Choice loop: seven events a turn, so limits 38 to 44 put the crossing on each."""

ONCE = """
Name: once
Version: 1
StartAt: Work
States:
  Work:
    Type: Task
    Activity: Limit.Work
    End: true
"""


@pytest.mark.parametrize("limit", range(38, 45))
def test_a_loop_fails_at_the_history_limit_and_the_worker_goes_on(
    limit: int,
    make_writer: Callable[..., Writer],
    recorder: Recorder,
    start_worker: Callable[..., worker.Worker],
) -> None:
    recorder.add("Limit.Work", lambda params, ctx: {"ok": True})
    write_path = make_writer(history_limit=limit)
    client = Client(write_path)
    support.deploy(client, SPIN)
    support.deploy(client, ONCE)
    start_worker(Dispatcher(write_path), recorder.registry, concurrency=1)

    client.start("spin", {}, execution_id="spin-1")
    view = support.wait_closed(client, "spin-1")

    assert (view["status"], view["error"]) == ("FAILED", names.HISTORY_LIMIT_EXCEEDED)
    # It fails in the step (at most one turn of the loop) whose events pass the limit.
    passed = re.match(rf"this run has (\d+) events, over the limit of {limit}; ", view["cause"])
    assert passed is not None, view["cause"]
    assert limit < int(passed[1]) <= limit + 7
    found = client.history("spin-1")
    assert [e.seq for e in found] == list(range(1, int(passed[1]) + 2))
    assert found[-1].type == "ExecutionFailed"
    assert support.count_rows(client, tables.tasks, "spin-1") == 0
    assert support.count_rows(client, tables.timers, "spin-1") == 0
    # The slot that met the limit is healthy: the next execution runs to its end.
    client.start("once", {}, execution_id="once-1")
    assert support.wait_closed(client, "once-1")["status"] == "SUCCEEDED"
    support.assert_replays(client)


def test_a_task_claimed_by_polling_past_the_limit_fails_the_run(
    make_writer: Callable[..., Writer], recorder: Recorder, clock: Any
) -> None:
    recorder.add("Limit.Work", lambda params, ctx: {"ok": True})
    write_path = make_writer(clock, history_limit=3)
    client = Client(write_path)
    support.deploy(client, ONCE)
    client.start("once", {}, execution_id="once-1")

    # Started (seq 4) only when its outcome is recorded: that event passes the limit.
    assert support.drain(Dispatcher(write_path), recorder.registry) == 1

    view = client.describe("once-1")
    assert (view["status"], view["error"]) == ("FAILED", names.HISTORY_LIMIT_EXCEEDED)
    assert [e.type for e in client.history("once-1")][-2:] == ["TaskStarted", "ExecutionFailed"]
    assert support.count_rows(client, tables.tasks, "once-1") == 0
    support.assert_replays(client)
