"""The command line on a real database: JSON output fields, idempotent start, exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cairn.cli.main import main
from cairn.client import Client
from cairn.core import events
from tests.integration import support

GREET = str(support.DEFINITIONS / "greet.yaml")
FLOWS = "tests.integration.flows"
VIEW_FIELDS = {
    "id",
    "workflow",
    "version",
    "status",
    "input",
    "output",
    "error",
    "cause",
    "started_at",
    "closed_at",
}


@pytest.fixture
def cairn(db_url: str, live_client: Client) -> Any:
    """Run ``cairn --db URL ARGS`` in this process; returns click's Result."""

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, ["--db", db_url, *args], input=input)

    return invoke


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_deploy_twice_then_definitions(cairn: Any) -> None:
    (first,) = as_json(cairn("deploy", GREET, "--json"))
    (again,) = as_json(cairn("deploy", GREET, "--json"))
    assert (first["name"], first["version"], first["created"]) == ("greet", 1, True)
    assert (again["created"], again["sha256"]) == (False, first["sha256"])
    plain = cairn("deploy", GREET)
    assert plain.exit_code == 0
    assert plain.stdout.startswith("unchanged greet@1")
    (row,) = as_json(cairn("definitions", "--json"))
    assert (row["name"], row["version"], row["running"], row["executions"]) == ("greet", 1, 0, 0)


def test_start_with_an_id_twice_is_one_execution(cairn: Any, live_client: Client) -> None:
    cairn("deploy", GREET)
    args = ("start", "greet", "--id", "g-1", "--input", '{"name": "ann"}', "--json")
    first = as_json(cairn(*args))
    again = as_json(cairn(*args))
    assert set(first) >= VIEW_FIELDS
    assert first == again
    assert (first["id"], first["workflow"], first["version"], first["status"]) == (
        "g-1",
        "greet",
        1,
        "RUNNING",
    )
    assert first["input"] == {"name": "ann"}
    assert len(support.history(live_client, "g-1", events.EXECUTION_STARTED)) == 1

    different = cairn("start", "greet", "--id", "g-1", "--input", '{"name": "bob"}')
    assert different.exit_code == 1
    assert "error: execution 'g-1' already exists" in different.stderr
    assert "Traceback" not in different.output
    assert len(live_client.executions()) == 1
    support.assert_replays(live_client)


def test_start_pins_an_explicit_version(cairn: Any) -> None:
    cairn("deploy", GREET)
    view = as_json(cairn("start", "greet@1", "--input", '{"name": "cy"}', "--json"))
    assert view["version"] == 1
    missing = cairn("start", "greet@2", "--input", '{"name": "cy"}')
    assert missing.exit_code == 2
    assert "no workflow greet@2 is deployed" in missing.stderr
    bad = cairn("start", "greet@two")
    assert bad.exit_code == 2
    assert "bad version in 'greet@two'" in bad.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("start", "greet", "--input", "{name: ann}"), "--input: not valid JSON"),
        (("start", "greet", "--input", "@/nonexistent/input.json"), "cannot read"),
        (("start", "greet", "--input", '{"nom": "ann"}'), "'name' is a required property"),
        (("start", "nothing"), "no workflow nothing is deployed"),
        (("run", "nothing", "--activities", FLOWS), "no workflow nothing is deployed"),
        (("describe", "no-such-id"), "no execution 'no-such-id'"),
        (("history", "no-such-id"), "no execution 'no-such-id'"),
        (("replay",), "name at least one execution ID"),
    ],
    ids=[
        "invalid-json",
        "missing-file",
        "input-schema",
        "unknown-workflow",
        "run-unknown-workflow",
        "describe-unknown",
        "history-unknown",
        "replay-nothing",
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    cairn: Any, live_client: Client, args: tuple[str, ...], message: str
) -> None:
    cairn("deploy", GREET)
    result = cairn(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert live_client.executions() == []


def test_run_prints_the_output_and_exits_0_or_1(cairn: Any, live_client: Client) -> None:
    ok = cairn("run", GREET, "--activities", FLOWS, "--input", '{"name": "dee"}')
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == {"greeting": "hello dee"}

    failed = cairn(
        "run", "greet", "--activities", FLOWS, "--input", '{"name": "eve", "fail": "Nope"}'
    )
    assert failed.exit_code == 1
    assert failed.stdout == ""
    assert failed.stderr.strip() == "FAILED: Nope: eve asked to fail"

    whole = cairn("run", "greet@1", "--activities", FLOWS, "--input", '{"name": "fay"}', "--json")
    view = as_json(whole)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"greeting": "hello fay"})
    support.assert_replays(live_client)


def test_describe_history_list_and_replay_as_json(cairn: Any, live_client: Client) -> None:
    cairn("deploy", GREET)
    for name, fail in [("gil", ""), ("hal", "Nope")]:
        run = cairn(
            "run",
            "greet",
            "--id",
            f"run-{name}",
            "--activities",
            FLOWS,
            "--input",
            json.dumps({"name": name, "fail": fail}),
        )
        assert run.exit_code == (1 if fail else 0), run.output
    cairn("start", "greet", "--id", "waiting", "--input", '{"name": "ivy"}')

    view = as_json(cairn("describe", "run-gil", "--json"))
    assert set(view) >= VIEW_FIELDS
    assert {k: view[k] for k in ("id", "workflow", "version", "status", "error", "cause")} == {
        "id": "run-gil",
        "workflow": "greet",
        "version": 1,
        "status": "SUCCEEDED",
        "error": None,
        "cause": None,
    }
    assert view["input"] == {"name": "gil", "fail": ""}
    assert view["output"] == {"greeting": "hello gil"}
    assert view["started_at"].endswith("Z") and view["closed_at"] >= view["started_at"]
    failed = as_json(cairn("describe", "run-hal", "--json"))
    assert (failed["status"], failed["error"], failed["cause"]) == (
        "FAILED",
        "Nope",
        "hal asked to fail",
    )
    waiting = as_json(cairn("describe", "waiting", "--json"))
    assert (waiting["status"], waiting["output"], waiting["closed_at"]) == ("RUNNING", None, None)
    assert [t["activity"] for t in waiting["tasks"]] == ["Greet"]

    history = as_json(cairn("history", "run-gil", "--json"))
    assert all({"seq", "type", "timestamp", "state", "details"} <= set(e) for e in history)
    assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
    assert history[0]["type"] == events.EXECUTION_STARTED
    assert history[0]["details"]["input"] == {"name": "gil", "fail": ""}
    assert history[-1]["type"] == events.EXECUTION_SUCCEEDED
    assert history[-1]["details"]["output"] == {"greeting": "hello gil"}
    assert {e["state"] for e in history if e["type"] == events.TASK_SUCCEEDED} == {"Greet"}
    assert all(e["timestamp"].endswith("Z") for e in history)

    listed = as_json(cairn("list", "--json"))
    assert {v["id"]: v["status"] for v in listed} == {
        "run-gil": "SUCCEEDED",
        "run-hal": "FAILED",
        "waiting": "RUNNING",
    }
    assert all(set(v) >= VIEW_FIELDS for v in listed)
    assert [v["id"] for v in as_json(cairn("list", "--status", "failed", "--json"))] == ["run-hal"]
    assert as_json(cairn("list", "--workflow", "other", "--json")) == []

    replay = cairn("replay", "run-gil", "run-hal", "waiting")
    assert replay.exit_code == 0, replay.output
    assert replay.stdout.splitlines() == ["ok run-gil", "ok run-hal", "ok waiting"]
    everything = cairn("replay", "--all")
    assert everything.exit_code == 0
    assert len(everything.stdout.splitlines()) == 3
    support.assert_replays(live_client)


def test_the_console_script_exit_codes(db_url: str, live_client: Client) -> None:
    support.deploy_file(live_client, "greet.yaml")
    started = support.cairn(
        "--db", db_url, "start", "greet", "--id", "p-1", "--input", '{"name": "jo"}', "--json"
    )
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["id"] == "p-1"
    failed = support.cairn(
        "--db", db_url, "run", "greet", "--activities", FLOWS, "--input",
        '{"name": "jo", "fail": "Nope"}',
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.strip() == "FAILED: Nope: jo asked to fail"
    invalid = support.cairn("--db", db_url, "start", "greet", "--input", "{")
    assert invalid.returncode == 2
    assert invalid.stderr.startswith("error: --input: not valid JSON")
    assert "Traceback" not in invalid.stderr
    support.assert_replays(live_client)
