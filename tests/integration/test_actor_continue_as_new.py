"""ContinueAsNew: a new run of the same execution with a fresh history; signals nobody took
are carried over; ``Version: latest`` moves to the newest deployment; a run that passes the
history limit fails and says to use ContinueAsNew."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from click.testing import CliRunner

from cairn.cli.main import main
from cairn.client import Client
from cairn.core import events
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.writer import Writer
from tests.integration import actor_flows, support
from tests.integration.support import FakeClock, Recorder

RELAY = """
Name: relay
Version: 1
StartAt: Phase?
States:
  Phase?:
    Type: Choice
    Choices:
      - Condition: "phase == 'second'"
        Next: Listen
    Default: Nap
  Nap:
    Type: Wait
    Seconds: 60
    Next: Flip
  Flip:
    Type: Pass
    Parameters: {phase: second}
    Next: Again
  Again:
    Type: ContinueAsNew
  Listen:
    Type: Wait
    Signal: go
    ResultPath: got
    End: true
"""
"""Naps in the first run, listens for `go` in the second."""

MAILBOX = """
Name: mailbox
Version: 1
StartAt: First?
States:
  First?:
    Type: Choice
    Choices:
      - Condition: "length(seen) == `0`"
        Next: Busy
    Default: Take
  Busy:
    Type: Task
    Activity: Actor.Work
    ResultPath: null
    Next: Take
  Take:
    Type: Wait
    Signal: item
    ResultPath: got
    Next: Keep
  Keep:
    Type: Pass
    Parameters:
      seen.$: "[seen, [got.payload]][]"
    Next: Enough?
  Enough?:
    Type: Choice
    Choices:
      - Condition: "length(seen) >= `3`"
        Next: Done
    Default: Again
  Again:
    Type: ContinueAsNew
  Done:
    Type: Succeed
"""
"""Takes one `item` signal per run; the first run is busy with a task while items arrive."""

UPGRADE = """
Name: upgrade
Version: 1
StartAt: Seen?
States:
  Seen?:
    Type: Choice
    Choices:
      - Condition: "runs >= `1`"
        Next: Done
    Default: Nap
  Nap:
    Type: Wait
    Seconds: 60
    Next: Count
  Count:
    Type: Pass
    Parameters:
      runs.$: "add(runs, `1`)"
      how.$: how
    Next: How?
  How?:
    Type: Choice
    Choices:
      - Condition: "how == 'latest'"
        Next: Latest
    Default: Same
  Latest:
    Type: ContinueAsNew
    Version: latest
  Same:
    Type: ContinueAsNew
    Version: same
  Done:
    Type: Pass
    Result: v1
    ResultPath: by
    End: true
"""

COUNTER = """
Name: counter
Version: 1
StartAt: Count
States:
  Count:
    Type: Pass
    Parameters:
      n.$: "add(n, `1`)"
      limit.$: limit
      every.$: every
    Next: Next?
  Next?:
    Type: Choice
    Choices:
      - Condition: "n >= limit"
        Next: Done
      - Condition: "mod(n, every) == `0`"
        Next: Again
    Default: Count
  Again:
    Type: ContinueAsNew
  Done:
    Type: Wait
    Seconds: 60
    End: true
"""
"""A loop of pure states, then a wait: all of it runs in the transaction that starts it."""

SPAWNER = """
Name: spawner
Version: 1
StartAt: Child
States:
  Child:
    Type: Task
    Workflow: kid@1
    Parameters: {n.$: n}
    ResultSelector: {n.$: n}
    ResultPath: "@"
    Next: More?
  More?:
    Type: Choice
    Choices:
      - Condition: "n < `3`"
        Next: Again
    Default: Done
  Again:
    Type: ContinueAsNew
  Done:
    Type: Succeed
"""
"""One child execution per run, three runs."""


@pytest.fixture
def work(recorder: Recorder) -> Recorder:
    recorder.add("Actor.Work", actor_flows.work)
    return recorder


def runs_of(client: Client, execution_id: str) -> dict[int, list[events.Event]]:
    found: dict[int, list[events.Event]] = {}
    for event in client.history(execution_id):
        found.setdefault(event.run, []).append(event)
    return found


def test_a_loop_continues_as_new_runs_with_fresh_histories(
    dispatcher: Dispatcher, client: Client, work: Recorder, db_url: str
) -> None:
    support.deploy(client, actor_flows.LOOP)
    execution_id = client.start("loop", {"n": 0, "limit": 7, "every": 3}, execution_id="loop-1")[
        "id"
    ]
    support.drain(dispatcher, work.registry)
    view = client.describe(execution_id)
    assert (view["status"], view["run"]) == ("SUCCEEDED", 3)
    assert view["output"] == {"n": 7, "limit": 7, "every": 3}
    assert view["input"] == {"n": 0, "limit": 7, "every": 3}  # what it was started with

    runs = runs_of(client, execution_id)
    assert sorted(runs) == [1, 2, 3]
    for run, history in runs.items():
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        assert history[0].type == events.EXECUTION_STARTED
        assert history[0].details["run"] == run
    assert [runs[r][-1].type for r in (1, 2)] == [events.CONTINUED_AS_NEW] * 2
    assert (
        runs[2][0].details["input"]
        == runs[1][-1].details["input"]
        == {
            "n": 3,
            "limit": 7,
            "every": 3,
        }
    )
    assert [e.state for e in runs[1] if e.type == events.STATE_ENTERED].count("Step") == 3

    # Every step is new work with its own idempotency key, in every run.
    assert [c.params for c in work.calls] == [{"tag": f"step-{n}", "value": n} for n in range(7)]
    keys = Counter(c.key for c in work.calls)
    assert len(keys) == 7, keys

    result = CliRunner().invoke(main, ["--db", db_url, "history", execution_id, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert sorted({e["run"] for e in shown}) == [1, 2, 3]
    assert support.assert_replays(client) == 1


def test_a_signal_nobody_took_is_carried_into_the_next_run(
    dispatcher: Dispatcher, client: Client, clock: FakeClock
) -> None:
    support.deploy(client, RELAY)
    execution_id = client.start("relay", {"phase": "first"}, execution_id="relay-1")["id"]
    client.signal(execution_id, "go", {"at": "nap"})
    client.signal(execution_id, "other", 7)
    clock.advance(60)
    assert dispatcher.fire_due_timers() == 1
    view = client.inspect(execution_id)
    assert (view["status"], view["run"]) == ("SUCCEEDED", 2)
    assert view["output"] == {"phase": "second", "got": {"signal": "go", "payload": {"at": "nap"}}}
    assert view["signals"] == [{"name": "other", "payload": 7}]
    runs = runs_of(client, execution_id)
    assert [e.type for e in runs[1] if "Signal" in e.type] == [events.SIGNAL_RECEIVED] * 2
    assert [(e.type, e.details["name"]) for e in runs[2] if "Signal" in e.type] == [
        (events.SIGNAL_RECEIVED, "go"),
        (events.SIGNAL_RECEIVED, "other"),
        (events.SIGNAL_CONSUMED, "go"),
    ]
    support.assert_replays(client)


def test_signals_that_piled_up_are_taken_one_per_run_none_lost(
    dispatcher: Dispatcher, client: Client, work: Recorder
) -> None:
    support.deploy(client, MAILBOX)
    execution_id = client.start("mailbox", {"seen": []}, execution_id="mail-1")["id"]
    for n in (1, 2, 3):
        client.signal(execution_id, "item", n)
    support.drain(dispatcher, work.registry)
    view = client.describe(execution_id)
    assert (view["status"], view["run"], view["output"]) == ("SUCCEEDED", 3, {"seen": [1, 2, 3]})
    runs = runs_of(client, execution_id)
    received = {
        r: [e.details["payload"] for e in h if e.type == events.SIGNAL_RECEIVED]
        for r, h in runs.items()
    }
    assert received == {1: [1, 2, 3], 2: [2, 3], 3: [3]}
    support.assert_replays(client)


def test_version_latest_moves_to_the_newest_deployment_and_same_stays(
    dispatcher: Dispatcher, client: Client, clock: FakeClock
) -> None:
    support.deploy(client, UPGRADE)
    latest = client.start("upgrade", {"runs": 0, "how": "latest"}, execution_id="up-latest")["id"]
    same = client.start("upgrade", {"runs": 0, "how": "same"}, execution_id="up-same")["id"]
    support.deploy(client, UPGRADE.replace("Version: 1\n", "Version: 2\n").replace(": v1", ": v2"))
    assert client.describe(latest)["version"] == 1
    clock.advance(60)
    assert dispatcher.fire_due_timers() == 2

    moved = client.describe(latest)
    assert (moved["status"], moved["run"], moved["version"]) == ("SUCCEEDED", 2, 2)
    assert moved["output"] == {"runs": 1, "how": "latest", "by": "v2"}
    stayed = client.describe(same)
    assert (stayed["status"], stayed["run"], stayed["version"]) == ("SUCCEEDED", 2, 1)
    assert stayed["output"] == {"runs": 1, "how": "same", "by": "v1"}
    (first, second) = (runs_of(client, latest)[r][0] for r in (1, 2))
    assert (first.details["version"], second.details["version"]) == (1, 2)
    support.assert_replays(client)


def test_a_run_past_the_history_limit_fails_and_continue_as_new_avoids_it(
    client: Client, work: Recorder, clock: FakeClock
) -> None:
    limited_path = Writer(client.writer.db, clock=clock, history_limit=60)
    limited = Client(limited_path)
    support.deploy(limited, actor_flows.LOOP)
    long = limited.start("loop", {"n": 0, "limit": 30, "every": 1000}, execution_id="long")["id"]
    support.drain(Dispatcher(limited_path), work.registry)
    view = limited.describe(long)
    assert (view["status"], view["error"]) == ("FAILED", "States.HistoryLimitExceeded")
    assert re.fullmatch(
        r"this run has \d+ events, over the limit of 60; end long loops with a ContinueAsNew "
        r"state to go on in a fresh history",
        view["cause"],
    ), view["cause"]
    assert 60 < len(limited.history(long)) <= 70
    assert work.count() < 30

    rolled = limited.start("loop", {"n": 0, "limit": 30, "every": 5}, execution_id="rolled")["id"]
    support.drain(Dispatcher(limited_path), work.registry)
    view = limited.describe(rolled)
    assert (view["status"], view["run"]) == ("SUCCEEDED", 6)
    assert max(len(h) for h in runs_of(limited, rolled).values()) <= 60

    # A loop that does not wait meets the limit inside the start, in its first run or in a
    # run a ContinueAsNew began.
    support.deploy(limited, COUNTER)
    for every, run in [(1000, 1), (70, 2)]:
        view = limited.start("counter", {"n": 0, "limit": 100, "every": every})
        assert (view["status"], view["error"], view["run"]) == (
            "FAILED",
            "States.HistoryLimitExceeded",
            run,
        )
    view = limited.start("counter", {"n": 0, "limit": 100, "every": 5})
    assert (view["status"], view["run"]) == ("RUNNING", 20)
    assert max(len(h) for h in runs_of(limited, view["id"]).values()) <= 60
    support.assert_replays(limited)


def test_a_child_workflow_in_every_run_gets_an_execution_of_its_own(
    dispatcher: Dispatcher, client: Client, work: Recorder
) -> None:
    support.deploy(client, actor_flows.KID)
    support.deploy(client, SPAWNER)
    execution_id = client.start("spawner", {"n": 0}, execution_id="spawn-1")["id"]
    support.drain(dispatcher, work.registry)
    view = client.describe(execution_id)
    assert (view["status"], view["run"], view["output"]) == ("SUCCEEDED", 3, {"n": 3})
    children = [v for v in client.executions() if v["parent"] == execution_id]
    assert sorted(c["input"]["n"] for c in children) == [0, 1, 2]
    assert all(c["status"] == "SUCCEEDED" for c in children)
    assert work.count() == 3
    assert len({c.key for c in work.calls}) == 3
    support.assert_replays(client)


def test_continue_as_new_inside_a_branch_fails_the_run(client: Client) -> None:
    support.deploy(
        client,
        """
Name: nested
Version: 1
StartAt: Fork
States:
  Fork:
    Type: Parallel
    Branches:
      - StartAt: Again
        States:
          Again: {Type: ContinueAsNew}
    End: true
""",
    )
    view = client.start("nested", {})
    view = client.describe(view["id"])
    assert (view["status"], view["error"], view["run"]) == ("FAILED", "States.Runtime", 1)
    assert "cannot be inside a Parallel branch" in view["cause"]
