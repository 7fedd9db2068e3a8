"""Numbers at the definition's bounds on both databases: what validate refuses, deploy
refuses with the same line; the largest numbers it accepts deploy, start and describe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cairn.cli.main import main
from cairn.client import Client
from cairn.core import limits
from cairn.runtime.dispatcher import Dispatcher
from tests.integration import support

REFUSED = {  # file: (text, the number refused, the message)
    "version.yaml": (
        "Name: big\nVersion: 99999999999999999999999999\nStartAt: A\nStates:\n"
        "  A: {Type: Succeed}\n",
        "99999999999999999999999999",
        "99999999999999999999999999 is an integer beyond 64 bits",
    ),
    "result.yaml": (
        "Name: big\nVersion: 1\nStartAt: A\nStates:\n"
        "  A: {Type: Pass, Result: 18446744073709551616, End: true}\n",
        "18446744073709551616",
        "18446744073709551616 is an integer beyond 64 bits",
    ),
    "timeout.json": (
        '{"Name": "big", "Version": 1, "StartAt": "A", "States": {"A": {"Type": "Task",'
        ' "Activity": "X", "TimeoutSeconds": 1e40, "End": true}}}',
        "1e40",
        "'TimeoutSeconds' must be at most 99,999,999, not 1e+40",
    ),
    "wait.json": (
        '{"Name": "big", "Version": 1, "StartAt": "A", "States": {"A": {"Type": "Wait",'
        ' "Seconds": 1e400, "End": true}}}',
        "1e400",
        "1e400 is beyond the range of JSON numbers",
    ),
    "interval.json": (
        '{"Name": "big", "Version": 1, "StartAt": "A", "States": {"A": {"Type": "Task",'
        ' "Activity": "X", "End": true, "Retry": [{"ErrorEquals": ["States.ALL"],'
        ' "IntervalSeconds": 1e400}]}}}',
        "1e400",
        "1e400 is beyond the range of JSON numbers",
    ),
    "far.yaml": (
        "Name: big\nVersion: 1\nStartAt: A\nStates:\n  A: {Type: Wait, Seconds: 300000000000,"
        " End: true}\n",
        "300000000000",
        "'Seconds' must be at most 99,999,999, not 300000000000",
    ),
}

LARGEST = f"""
Name: largest
Version: {limits.MAX_VERSION}
StartAt: Constants
TimeoutSeconds: {limits.MAX_SECONDS}
States:
  Constants:
    Type: Pass
    Result: {{top: 9223372036854775807, bottom: -9223372036854775808}}
    ResultPath: constants
    Next: Work
  Work:
    Type: Task
    Activity: Limits.Work
    TimeoutSeconds: {limits.MAX_SECONDS}
    HeartbeatSeconds: {limits.MAX_SECONDS - 1}
    Retry: [{{ErrorEquals: [States.ALL], IntervalSeconds: {limits.MAX_SECONDS},
             MaxAttempts: {limits.MAX_ATTEMPTS}}}]
    ResultPath: null
    Next: Nap
  Nap:
    Type: Wait
    Seconds: {limits.MAX_SECONDS}
    End: true
"""


@pytest.fixture
def cairn(db_url: str, live_client: Client) -> Any:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, ["--db", db_url, *args])

    return invoke


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_deploy_refuses_what_validate_refuses_at_the_same_line(
    name: str, cairn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, number, message = REFUSED[name]
    before = text[: text.index(number)]
    line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
    expected = f"{name}:{line}:{column}: {message}"
    monkeypatch.chdir(tmp_path)
    Path(name).write_text(text)
    for command in ("validate", "deploy"):
        result = cairn(command, name)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(expected), result.stderr
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.output
    assert json.loads(cairn("definitions", "--json").stdout) == []


def test_the_largest_numbers_deploy_start_run_and_describe(
    cairn: Any, live_client: Client, recorder: support.Recorder, tmp_path: Path
) -> None:
    recorder.add("Limits.Work", lambda params, ctx: {"ok": True})
    flow = tmp_path / "largest.yaml"
    flow.write_text(LARGEST)
    assert cairn("validate", str(flow)).exit_code == 0
    deployed = cairn("deploy", str(flow))
    assert deployed.exit_code == 0, deployed.output
    started = cairn("start", f"largest@{limits.MAX_VERSION}", "--id", "big-1")
    assert started.exit_code == 0, started.output

    support.drain(Dispatcher(live_client.writer), recorder.registry)

    described = cairn("describe", "big-1", "--json")
    assert described.exit_code == 0, described.output
    view = json.loads(described.stdout)
    assert (view["status"], view["version"]) == ("RUNNING", limits.MAX_VERSION)
    assert [t["purpose"] for t in view["timers"]] == ["execution", "wait"]
    queried = cairn("query", "big-1")
    assert queried.exit_code == 0, queried.output
    assert json.loads(queried.stdout)["timers"] == view["timers"]
    assert recorder.count("Limits.Work") == 1
    support.assert_replays(live_client)
