"""Child workflows: a Task with ``Workflow:`` starts a child execution and waits for it; the
child's failure is the catchable ``Workflow.ChildFailed``; cancelling the parent cancels it."""

from __future__ import annotations

import pytest

from cairn.client import Client
from cairn.core import events
from cairn.runtime import tables
from cairn.runtime.dispatcher import Dispatcher
from tests.integration import actor_flows, support
from tests.integration.support import Recorder

CHILD_ID = "p-{}:Child:1:1"

LATEST = """
Name: latest
Version: 1
StartAt: Child
States:
  Child:
    Type: Task
    Workflow: kid
    Parameters: {n: 1}
    End: true
"""

KID_V2 = actor_flows.KID.replace("Version: 1", "Version: 2").replace("add(n, `1`)", "add(n, `100`)")

MIDDLE = """
Name: middle
Version: 1
StartAt: Grandchild
States:
  Grandchild:
    Type: Task
    Workflow: kid@1
    Parameters:
      n.$: n
    End: true
"""
"""A child whose first step starts a child of its own."""

ITSELF = """
Name: itself
Version: 1
StartAt: Again
States:
  Again:
    Type: Task
    Workflow: itself
    End: true
"""
"""A workflow whose first step starts the workflow itself, for ever."""

MISSING = """
Name: missing
Version: 1
StartAt: Child
States:
  Child:
    Type: Task
    Workflow: nothing-deployed@3
    Catch:
      - ErrorEquals: [Workflow.ChildFailed]
        ResultPath: error
        Next: Caught
    End: true
  Caught:
    Type: Pass
    End: true
"""


@pytest.fixture
def family(client: Client, recorder: Recorder) -> Client:
    recorder.add("Actor.Work", actor_flows.work)
    support.deploy(client, actor_flows.KID)
    support.deploy(client, actor_flows.PARENT)
    return client


def test_a_child_runs_with_its_own_history_and_hands_its_output_to_the_parent(
    dispatcher: Dispatcher, family: Client, recorder: Recorder
) -> None:
    parent = family.start("parent", {"n": 41}, execution_id="p-ok")["id"]
    support.drain(dispatcher, recorder.registry)
    view = family.describe(parent)
    assert view["status"] == "SUCCEEDED", view
    assert view["output"] == {"n": 41, "before": "before", "child": {"n": 42}, "after": "after"}

    child = family.describe(CHILD_ID.format("ok"))
    assert (child["workflow"], child["version"], child["parent"]) == ("kid", 1, parent)
    assert (child["status"], child["input"], child["output"]) == (
        "SUCCEEDED",
        {"n": 41, "fail": None},
        {"n": 42, "fail": None},
    )
    assert family.describe(parent)["parent"] is None
    started = support.history(family, parent, events.CHILD_STARTED)
    closed = support.history(family, parent, events.CHILD_CLOSED)
    assert [e.details["child_id"] for e in started + closed] == [child["id"]] * 2
    assert closed[0].details["status"] == "SUCCEEDED"
    # The child's own task is in the child's history, not the parent's.
    assert [e.state for e in support.history(family, child["id"], events.TASK_SUCCEEDED)] == [
        "Work"
    ]
    assert [e.state for e in support.history(family, parent, events.TASK_SUCCEEDED)] == [
        "Before",
        "After",
    ]
    assert [c.key for c in recorder.calls] == [
        "p-ok:Before:1",
        f"{child['id']}:Work:1",
        "p-ok:After:1",
    ]
    assert support.assert_replays(family) == 2


def test_a_failed_child_is_caught_as_workflow_child_failed(
    dispatcher: Dispatcher, family: Client, recorder: Recorder
) -> None:
    parent = family.start("parent", {"n": 1, "fail": "KidBroke"}, execution_id="p-fail")["id"]
    support.drain(dispatcher, recorder.registry)
    child = family.describe(CHILD_ID.format("fail"))
    assert (child["status"], child["error"]) == ("FAILED", "KidBroke")
    view = family.describe(parent)
    assert view["status"] == "SUCCEEDED", view
    error = view["output"]["error"]
    assert error["Error"] == "Workflow.ChildFailed"
    assert child["id"] in error["Cause"] and "FAILED: KidBroke" in error["Cause"]
    assert support.entered(family, parent) == ["Before", "Child", "Caught"]
    support.assert_replays(family)


def test_cancelling_the_parent_cancels_the_child_and_its_tasks(
    dispatcher: Dispatcher, family: Client, recorder: Recorder
) -> None:
    parent = family.start("parent", {"n": 1}, execution_id="p-cancel")["id"]
    support.work_one(dispatcher, recorder.registry)  # Before; the child's Work is now queued
    child_id = CHILD_ID.format("cancel")
    assert family.describe(child_id)["status"] == "RUNNING"
    assert support.count_rows(family, tables.tasks, child_id) == 1

    family.cancel(parent, "order withdrawn")
    child = family.describe(child_id)
    assert (child["status"], child["error"]) == ("CANCELLED", "Execution.Cancelled")
    assert parent in child["cause"]
    assert support.count_rows(family, tables.tasks) == 0
    assert family.describe(parent)["status"] == "CANCELLED"
    assert support.drain(dispatcher, recorder.registry) == 0
    support.assert_replays(family)


def test_cancelling_the_child_fails_the_parents_task(
    dispatcher: Dispatcher, family: Client, recorder: Recorder
) -> None:
    parent = family.start("parent", {"n": 1}, execution_id="p-kid")["id"]
    support.work_one(dispatcher, recorder.registry)
    family.cancel(CHILD_ID.format("kid"), "not this one")
    view = family.describe(parent)
    assert view["status"] == "SUCCEEDED"
    assert view["output"]["error"]["Error"] == "Workflow.ChildFailed"
    assert "CANCELLED" in view["output"]["error"]["Cause"]
    support.assert_replays(family)


def test_a_child_without_a_version_runs_the_newest_and_a_missing_one_fails_to_start(
    dispatcher: Dispatcher, family: Client, recorder: Recorder
) -> None:
    support.deploy(family, LATEST)
    support.deploy(family, KID_V2)
    support.deploy(family, MISSING)
    latest = family.start("latest", {}, execution_id="p-latest")["id"]
    support.drain(dispatcher, recorder.registry)
    child = family.describe(f"{latest}:Child:1:1")
    assert (child["version"], child["output"]) == (2, {"n": 101})
    assert family.describe(latest)["output"] == {"n": 101}

    missing = family.start("missing", {}, execution_id="p-missing")["id"]
    view = family.describe(missing)
    assert view["status"] == "SUCCEEDED", view
    assert view["output"]["error"]["Error"] == "Workflow.ChildFailed"
    assert "nothing-deployed@3" in view["output"]["error"]["Cause"]
    support.assert_replays(family)


def test_a_child_whose_first_step_is_a_child_starts_it_at_once(
    dispatcher: Dispatcher, family: Client, recorder: Recorder
) -> None:
    support.deploy(family, MIDDLE)
    support.deploy(family, LATEST.replace("Workflow: kid", "Workflow: middle"))
    top = family.start("latest", {}, execution_id="p-nested")["id"]
    middle = f"{top}:Child:1:1"
    grandchild = f"{middle}:Grandchild:1:1"
    assert family.describe(grandchild)["parent"] == middle
    assert support.drain(dispatcher, recorder.registry) == 1
    assert family.describe(top)["output"] == {"n": 2}
    assert [family.describe(e)["status"] for e in (top, middle, grandchild)] == ["SUCCEEDED"] * 3
    support.assert_replays(family)


def test_a_workflow_that_starts_itself_fails_where_ids_run_out_not_for_ever(
    family: Client,
) -> None:
    support.deploy(family, ITSELF)
    top = family.start("itself", {}, execution_id="p-itself")
    chain = [top["id"]]
    while len(f"{chain[-1]}:Again:1:1") <= 200:
        chain.append(f"{chain[-1]}:Again:1:1")
    views = [family.describe(e) for e in chain]
    assert len(views) > 5
    assert {(v["status"], v["error"]) for v in views} == {("FAILED", "Workflow.ChildFailed")}
    assert "child workflows nest too deep" in str(views[-1]["cause"])
    support.assert_replays(family)
