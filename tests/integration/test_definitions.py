"""Deploying versions side by side, and executions pinned to the version they started on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cairn import errors
from cairn.client import Client
from cairn.core import events
from cairn.definitions import loader
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.writer import Writer
from cairn.testing import as_number, as_object
from tests.integration import support
from tests.integration.support import Recorder

FLOW_V1 = """
Name: pinned
Version: 1
StartAt: First
States:
  First:
    Type: Task
    Activity: Echo
    ResultPath: first
    Next: Done
  Done:
    Type: Pass
    Result: v1
    ResultPath: version
    End: true
"""

FLOW_V2 = """
Name: pinned
Version: 2
StartAt: Screen
States:
  Screen:
    Type: Task
    Activity: Echo
    ResultPath: screened
    Next: Finish
  Finish:
    Type: Pass
    Result: v2
    ResultPath: version
    End: true
"""


@pytest.fixture
def echo(recorder: Recorder) -> Recorder:
    recorder.add("Echo", lambda params, ctx: {"state": ctx.state})
    return recorder


def test_identical_redeploy_is_a_no_op(client: Client) -> None:
    document = support.deploy(client, FLOW_V1)
    again = client.deploy(document)
    assert (again.name, again.version, again.created) == ("pinned", 1, False)
    assert again.sha256 == document.sha256
    # The same content spelled differently (JSON, other key order) is the same definition.
    as_json = (
        '{"States": {"Done": {"End": true, "ResultPath": "version", "Result": "v1",'
        ' "Type": "Pass"}, "First": {"Type": "Task", "Activity": "Echo",'
        ' "ResultPath": "first", "Next": "Done"}}, "StartAt": "First", "Version": 1,'
        ' "Name": "pinned"}'
    )
    assert client.deploy(loader.loads(as_json, json=True)).created is False
    assert [(d["name"], d["version"]) for d in client.definitions()] == [("pinned", 1)]
    support.assert_replays(client)


def test_different_content_under_a_deployed_version_is_refused(client: Client) -> None:
    support.deploy(client, FLOW_V1)
    changed = FLOW_V1.replace("Result: v1", "Result: changed")
    with pytest.raises(errors.Conflict, match=r"pinned version 1 is already deployed"):
        support.deploy(client, changed)
    # The deployed version is untouched.
    assert client.definition("pinned", 1).states["Done"].result == "v1"  # type: ignore[attr-defined]
    support.assert_replays(client)


def test_definitions_lists_versions_side_by_side_with_running_counts(
    dispatcher: Dispatcher, client: Client, echo: Recorder
) -> None:
    support.deploy(client, FLOW_V1)
    done = client.start("pinned", {"n": 1})
    support.work_one(dispatcher, echo.registry)
    assert client.describe(done["id"])["status"] == "SUCCEEDED"
    client.start("pinned", {"n": 2})
    support.deploy(client, FLOW_V2)
    client.start("pinned", {"n": 3})
    client.start("pinned", {"n": 4})

    rows = client.definitions()
    assert [(r["name"], r["version"], r["running"], r["executions"]) for r in rows] == [
        ("pinned", 1, 1, 2),
        ("pinned", 2, 2, 2),
    ]
    assert all(len(r["sha256"]) == 64 and r["deployed_at"] for r in rows)
    assert client.definitions("pinned") == rows
    assert client.definitions("other") == []
    support.assert_replays(client)


def test_an_execution_finishes_on_the_version_it_started_on(
    client: Client, echo: Recorder, make_writer: Callable[..., Writer]
) -> None:
    support.deploy(client, FLOW_V1)
    old = client.start("pinned", {"n": 1})
    assert old["version"] == 1
    support.deploy(client, FLOW_V2)
    new = client.start("pinned", {"n": 2})
    explicit = client.start("pinned", {"n": 3}, version=1)
    assert (new["version"], explicit["version"]) == (2, 1)

    # A worker that never saw version 1 (freshly started) finishes it on version 1.
    other = Dispatcher(make_writer(client.writer.clock))
    assert support.drain(other, echo.registry) == 3

    for execution, states, tag in [
        (old, ["First", "Done"], "v1"),
        (explicit, ["First", "Done"], "v1"),
        (new, ["Screen", "Finish"], "v2"),
    ]:
        view = client.describe(execution["id"])
        assert view["status"] == "SUCCEEDED"
        assert view["output"]["version"] == tag
        assert support.entered(client, execution["id"]) == states
        started = support.history(client, execution["id"], events.EXECUTION_STARTED)
        assert started[0].details["version"] == view["version"]
    assert {as_number(as_object(c.params)["n"]): c.key.split(":")[1] for c in echo.calls} == {
        1: "First",
        2: "Screen",
        3: "First",
    }
    with pytest.raises(errors.NotFound, match="no workflow pinned@3 is deployed"):
        client.start("pinned", {}, version=3)
    support.assert_replays(client)
