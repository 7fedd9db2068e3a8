"""Redrive: a FAILED or TIMED_OUT execution goes on from the state where it stopped, in the
same history; what completed is not run again (a Parallel or Map re-runs only the branches or
items that had not finished)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from cairn import ActivityError, errors
from cairn.cli.main import main
from cairn.client import Client
from cairn.core import events
from cairn.jsontypes import JSON
from cairn.runtime import invoke, tables
from cairn.runtime.dispatcher import Dispatcher
from cairn.testing import as_object
from tests.integration import actor_flows, support
from tests.integration.support import FakeClock, Recorder

PIPELINE = """
Name: pipeline
Version: 1
StartAt: Fetch
TimeoutSeconds: 3600
States:
  Fetch:
    Type: Task
    Activity: Flaky
    Parameters: {step: fetch}
    ResultPath: fetched
    Next: Fork
  Fork:
    Type: Parallel
    Branches:
      - StartAt: Left
        States:
          Left:
            Type: Task
            Activity: Flaky
            Parameters: {step: left}
            End: true
      - StartAt: Right
        States:
          Right:
            Type: Task
            Activity: Flaky
            Parameters: {step: right}
            Next: RightAgain
          RightAgain:
            Type: Task
            Activity: Flaky
            Parameters: {step: right-again}
            End: true
    ResultPath: forked
    Next: Each
  Each:
    Type: Map
    ItemsPath: items
    MaxConcurrency: 1
    ItemProcessor:
      StartAt: Item
      States:
        Item:
          Type: Task
          Activity: Flaky
          Parameters: {step.$: "join('-', ['item', to_string(@)])"}
          End: true
    ResultPath: each
    Next: Store
  Store:
    Type: Task
    Activity: Flaky
    Parameters: {step: store}
    ResultPath: stored
    Next: Check
  Check:
    Type: Choice
    Choices:
      - Condition: "stored == 'bad'"
        Next: Refuse
    Default: Done
  Refuse:
    Type: Fail
    Error: Refused
  Done:
    Type: Succeed
"""
"""A task, a Parallel, a Map and a task; the test chooses which step fails."""


class Flaky:
    """The steps' activity: fails each step named in ``broken`` (non-retryable)."""

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.results: dict[str, Any] = {}

    def __call__(self, params: dict[str, Any], ctx: invoke.Context) -> Any:
        step = params["step"]
        if step in self.broken:
            raise ConnectionResetError(f"{step} lost its connection")
        return self.results.get(step, step)


@pytest.fixture
def flaky(client: Client, recorder: Recorder) -> Flaky:
    handler = Flaky()
    recorder.add("Flaky", handler)
    support.deploy(client, PIPELINE)
    return handler


def steps(recorder: Recorder) -> list[JSON]:
    return [as_object(c.params)["step"] for c in recorder.calls]


def test_redrive_a_failed_task_runs_it_again_and_nothing_before_it(
    dispatcher: Dispatcher, client: Client, recorder: Recorder, flaky: Flaky
) -> None:
    flaky.broken = {"store"}
    execution_id = client.start("pipeline", {"items": [1]}, execution_id="rd-task")["id"]
    support.drain(dispatcher, recorder.registry)
    view = client.describe(execution_id)
    assert (view["status"], view["error"]) == ("FAILED", "ConnectionResetError")
    seq = len(client.history(execution_id))

    flaky.broken = set()
    assert client.redrive(execution_id)["status"] == "RUNNING"
    redriven = client.history(execution_id)[seq]
    assert (redriven.type, redriven.details) == (events.EXECUTION_REDRIVEN, {"state": "Store"})
    support.drain(dispatcher, recorder.registry)

    view = client.describe(execution_id)
    assert (view["status"], view["error"], view["cause"]) == ("SUCCEEDED", None, None)
    assert view["output"]["stored"] == "store"
    assert steps(recorder) == ["fetch", "left", "right", "right-again", "item-1", "store", "store"]
    # The redrive is one more attempt of the same entry: the same key, the next attempt.
    stores = recorder.of("Flaky")[-2:]
    assert [(c.key, c.attempt) for c in stores] == [(f"{execution_id}:Store:1", a) for a in (1, 2)]
    assert {e.run for e in client.history(execution_id)} == {1}
    support.assert_replays(client)


def test_redrive_a_parallel_reruns_only_the_branch_that_failed(
    dispatcher: Dispatcher, client: Client, recorder: Recorder, flaky: Flaky
) -> None:
    flaky.broken = {"right-again"}
    execution_id = client.start("pipeline", {"items": []}, execution_id="rd-fork")["id"]
    support.drain(dispatcher, recorder.registry)
    assert client.describe(execution_id)["status"] == "FAILED"
    assert steps(recorder) == ["fetch", "left", "right", "right-again"]

    flaky.broken = set()
    client.redrive(execution_id)
    support.drain(dispatcher, recorder.registry)
    view = client.describe(execution_id)
    assert view["status"] == "SUCCEEDED", view
    assert view["output"]["forked"] == ["left", "right-again"]
    # Left finished before the failure: it does not run again; the failed branch starts over.
    assert steps(recorder)[4:] == ["right", "right-again", "store"]
    assert [c for c in steps(recorder) if c == "left"] == ["left"]
    support.assert_replays(client)


def test_redrive_a_map_reruns_only_the_items_without_a_result(
    dispatcher: Dispatcher, client: Client, recorder: Recorder, flaky: Flaky
) -> None:
    flaky.broken = {"item-3"}
    execution_id = client.start("pipeline", {"items": [1, 2, 3, 4]}, execution_id="rd-map")["id"]
    support.drain(dispatcher, recorder.registry)
    assert client.describe(execution_id)["status"] == "FAILED"
    assert steps(recorder)[4:] == ["item-1", "item-2", "item-3"]

    flaky.broken = set()
    client.redrive(execution_id)
    support.drain(dispatcher, recorder.registry)
    view = client.describe(execution_id)
    assert view["status"] == "SUCCEEDED", view
    assert view["output"]["each"] == ["item-1", "item-2", "item-3", "item-4"]
    assert steps(recorder)[7:] == ["item-3", "item-4", "store"]
    support.assert_replays(client)


def test_redrive_a_timed_out_execution_restarts_its_clock(
    dispatcher: Dispatcher, client: Client, recorder: Recorder, flaky: Flaky, clock: FakeClock
) -> None:
    execution_id = client.start("pipeline", {"items": []}, execution_id="rd-late")["id"]
    clock.advance(3600)
    assert dispatcher.fire_due_timers() == 1
    view = client.describe(execution_id)
    assert (view["status"], view["error"]) == ("TIMED_OUT", "States.Timeout")
    assert support.count_rows(client, tables.tasks) == 0

    client.redrive(execution_id)
    timers = client.inspect(execution_id)["timers"]
    assert [t["purpose"] for t in timers] == ["execution"]
    support.drain(dispatcher, recorder.registry)
    assert client.describe(execution_id)["status"] == "SUCCEEDED"
    assert steps(recorder) == ["fetch", "left", "right", "right-again", "store"]
    support.assert_replays(client)


def test_what_cannot_be_redriven_is_refused_and_nothing_is_written(
    dispatcher: Dispatcher, client: Client, recorder: Recorder, flaky: Flaky, db_url: str
) -> None:
    with pytest.raises(errors.NotFound):
        client.redrive("nobody")
    running = client.start("pipeline", {"items": []}, execution_id="rd-running")["id"]
    with pytest.raises(errors.Conflict, match="is RUNNING; only FAILED or TIMED_OUT"):
        client.redrive(running)
    support.drain(dispatcher, recorder.registry)
    with pytest.raises(errors.Conflict, match="is SUCCEEDED"):
        client.redrive(running)

    flaky.results["store"] = "bad"
    refused = client.start("pipeline", {"items": []}, execution_id="rd-refused")["id"]
    support.drain(dispatcher, recorder.registry)
    assert client.describe(refused)["error"] == "Refused"
    seq = len(client.history(refused))
    with pytest.raises(errors.Conflict, match="at its Fail state 'Refuse'"):
        client.redrive(refused)
    result = CliRunner().invoke(main, ["--db", db_url, "redrive", refused])
    assert result.exit_code == 1
    assert "redriving would only fail again" in result.stderr
    assert len(client.history(refused)) == seq
    assert client.describe(refused)["status"] == "FAILED"

    flaky.results = {}
    flaky.broken = {"fetch"}
    failed = client.start("pipeline", {"items": []}, execution_id="rd-cli")["id"]
    support.drain(dispatcher, recorder.registry)
    result = CliRunner().invoke(main, ["--db", db_url, "redrive", failed, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "RUNNING"
    assert support.types_of(client, failed)[-3:] == [
        events.EXECUTION_REDRIVEN,
        events.TIMER_STARTED,  # the execution's TimeoutSeconds, from now
        events.TASK_SCHEDULED,
    ]
    support.assert_replays(client)


def test_redrive_a_parent_whose_child_failed_starts_a_new_child(
    dispatcher: Dispatcher, client: Client, recorder: Recorder
) -> None:
    broken = {"yes": True}

    def work(params: dict[str, Any], ctx: invoke.Context) -> Any:
        if params.get("fail") and broken["yes"]:
            raise ActivityError(params["fail"], "still broken", retryable=False)
        return params.get("value")

    recorder.add("Actor.Work", work)
    support.deploy(client, actor_flows.KID)
    support.deploy(client, actor_flows.PARENT.replace("Workflow.ChildFailed", "NotThisOne"))
    parent = client.start("parent", {"n": 1, "fail": "Broken"}, execution_id="rd-parent")["id"]
    support.drain(dispatcher, recorder.registry)
    view = client.describe(parent)
    assert (view["status"], view["error"]) == ("FAILED", "Workflow.ChildFailed")

    broken["yes"] = False
    client.redrive(parent)
    support.drain(dispatcher, recorder.registry)
    view = client.describe(parent)
    assert view["status"] == "SUCCEEDED", view
    assert view["output"]["child"] == {"n": 2}
    children = sorted((v["id"], v["status"]) for v in client.executions() if v["parent"] == parent)
    assert [status for _, status in children] == ["FAILED", "SUCCEEDED"]
    support.assert_replays(client)
