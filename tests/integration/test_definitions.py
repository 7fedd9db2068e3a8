"""Deploying versions side by side, and executions pinned to the version they started on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cairn import errors
from cairn.core import events
from cairn.definitions import loader
from cairn.runtime import service
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


def test_identical_redeploy_is_a_no_op(svc: service.Service) -> None:
    document = support.deploy(svc, FLOW_V1)
    again = svc.deploy(document)
    assert (again.name, again.version, again.created) == ("pinned", 1, False)
    assert again.sha256 == document.sha256
    # The same content spelled differently (JSON, other key order) is the same definition.
    as_json = (
        '{"States": {"Done": {"End": true, "ResultPath": "version", "Result": "v1",'
        ' "Type": "Pass"}, "First": {"Type": "Task", "Activity": "Echo",'
        ' "ResultPath": "first", "Next": "Done"}}, "StartAt": "First", "Version": 1,'
        ' "Name": "pinned"}'
    )
    assert svc.deploy(loader.loads(as_json, json=True)).created is False
    assert [(d["name"], d["version"]) for d in svc.definitions()] == [("pinned", 1)]
    support.assert_replays(svc)


def test_different_content_under_a_deployed_version_is_refused(svc: service.Service) -> None:
    support.deploy(svc, FLOW_V1)
    changed = FLOW_V1.replace("Result: v1", "Result: changed")
    with pytest.raises(errors.Conflict, match=r"pinned version 1 is already deployed"):
        support.deploy(svc, changed)
    # The deployed version is untouched.
    assert svc.definition("pinned", 1).states["Done"].result == "v1"  # type: ignore[attr-defined]
    support.assert_replays(svc)


def test_definitions_lists_versions_side_by_side_with_running_counts(
    svc: service.Service, echo: Recorder
) -> None:
    support.deploy(svc, FLOW_V1)
    done = svc.start("pinned", {"n": 1})
    support.work_one(svc, echo.registry)
    assert svc.describe(done["id"])["status"] == "SUCCEEDED"
    svc.start("pinned", {"n": 2})
    support.deploy(svc, FLOW_V2)
    svc.start("pinned", {"n": 3})
    svc.start("pinned", {"n": 4})

    rows = svc.definitions()
    assert [(r["name"], r["version"], r["running"], r["executions"]) for r in rows] == [
        ("pinned", 1, 1, 2),
        ("pinned", 2, 2, 2),
    ]
    assert all(len(r["sha256"]) == 64 and r["deployed_at"] for r in rows)
    assert svc.definitions("pinned") == rows
    assert svc.definitions("other") == []
    support.assert_replays(svc)


def test_an_execution_finishes_on_the_version_it_started_on(
    svc: service.Service, echo: Recorder, make_service: Callable[..., service.Service]
) -> None:
    support.deploy(svc, FLOW_V1)
    old = svc.start("pinned", {"n": 1})
    assert old["version"] == 1
    support.deploy(svc, FLOW_V2)
    new = svc.start("pinned", {"n": 2})
    explicit = svc.start("pinned", {"n": 3}, version=1)
    assert (new["version"], explicit["version"]) == (2, 1)

    # A service that never saw version 1 (a freshly started worker) finishes it on version 1.
    other = make_service(svc.clock)
    assert support.drain(other, echo.registry) == 3

    for execution, states, tag in [
        (old, ["First", "Done"], "v1"),
        (explicit, ["First", "Done"], "v1"),
        (new, ["Screen", "Finish"], "v2"),
    ]:
        view = svc.describe(execution["id"])
        assert view["status"] == "SUCCEEDED"
        assert view["output"]["version"] == tag
        assert support.entered(svc, execution["id"]) == states
        started = support.history(svc, execution["id"], events.EXECUTION_STARTED)
        assert started[0].details["version"] == view["version"]
    assert {c.params["n"]: c.key.split(":")[1] for c in echo.calls} == {
        1: "First",
        2: "Screen",
        3: "First",
    }
    with pytest.raises(errors.NotFound, match="no workflow pinned@3 is deployed"):
        svc.start("pinned", {}, version=3)
    support.assert_replays(svc)
