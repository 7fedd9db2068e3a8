"""No execution data in an error or log line: a database refusal is shown in the driver's
first words, never with the statement and parameters SQLAlchemy's message carries; a failed
task by its error name, never its cause.  And ``cairn worker --log-format json`` writes
nothing but JSON objects, one a line."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cairn import activities
from cairn.client import Client
from cairn.runtime import worker
from cairn.runtime.dispatcher import Dispatcher
from tests.integration import flows, support

SECRET = "Ada-4929-1234-5678"
"""Execution data: an input, hence in the parameters of every statement that writes it."""


def refuse(db_url: str, table: str, when: str = "TRUE") -> None:
    """Have the database refuse the rows of ``table`` for which ``when`` holds (a trigger)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.execute(
                    sa.text(
                        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                        f"WHEN {when.replace('TRUE', '1')} "
                        "BEGIN SELECT RAISE(ABORT, 'refused by policy'); END"
                    )
                )
            else:
                conn.execute(
                    sa.text(
                        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'refused by policy'; END $$"
                    )
                )
                conn.execute(
                    sa.text(
                        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW "
                        f"WHEN ({when}) EXECUTE FUNCTION refuse()"
                    )
                )
    finally:
        engine.dispose()


def parsed(line: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except ValueError:
        raise AssertionError(f"not a JSON line: {line!r}") from None
    assert isinstance(entry, dict), line
    return entry


def test_a_refused_write_is_the_drivers_one_line_without_the_data(
    db_url: str, live_client: Client
) -> None:
    support.deploy_file(live_client, "greet.yaml")
    refuse(db_url, "executions")
    started = support.cairn(
        "--db", db_url, "start", "greet", "--input", json.dumps({"name": SECRET})
    )
    assert started.returncode == 1
    assert started.stderr.splitlines() == [
        "error: the database refused: refused by policy",
    ]
    assert SECRET not in started.stdout + started.stderr


def test_a_json_worker_writes_json_lines_and_no_data(
    db_url: str,
    live_client: Client,
    calls_file: Path,
    worker_processes: Callable[..., support.WorkerProcess],
) -> None:
    support.deploy_file(live_client, "greet.yaml")
    # The outcome of one execution is refused (with its result, SECRET, in the parameters),
    # and so is the failure that would stand for it; the other fails with SECRET in its cause.
    outcomes = "('TaskSucceeded', 'TaskFailed')"
    refuse(db_url, "events", f"NEW.execution_id = 'refused' AND NEW.type IN {outcomes}")
    live_client.start("greet", {"name": SECRET}, execution_id="refused")
    live_client.start("greet", {"name": SECRET, "fail": "Nope"}, execution_id="fails")
    process = worker_processes(
        db_url, "--activities", "tests.integration.flows", "--poll", "0.05", "--log-format", "json"
    )
    process.wait_for('"task.unrecordable"')
    process.wait_for('"task.failed"')
    assert support.wait_closed(live_client, "fails")["status"] == "FAILED"
    assert process.stop() == 0

    lines = [parsed(line) for line in process.lines]
    assert SECRET not in process.output
    assert all({"time", "level", "worker", "event", "message"} <= line.keys() for line in lines), (
        process.output
    )
    events = [line["event"] for line in lines]
    assert events.count("worker.started") == events.count("worker.stopped") == 1
    assert len({line["worker"] for line in lines}) == 1
    failed = next(line for line in lines if line["event"] == "task.failed")
    assert (failed["execution_id"], failed["activity"], failed["attempt"]) == ("fails", "Greet", 1)
    assert failed["error"] == "Nope"
    refused = next(line for line in lines if line["event"] == "task.outcome_refused")
    assert refused["execution_id"] == "refused"
    assert "refused by policy" in refused["message"]


def test_looking_for_work_that_fails_is_one_line_without_the_data(
    live_dispatcher: Dispatcher,
    start_worker: Callable[..., worker.Worker],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Any error of a claim, not only the database's, is logged without its traceback:
    a traceback repeats SQLAlchemy's message, statement and parameters included."""
    caplog.set_level(logging.WARNING, logger="cairn")
    claim = live_dispatcher.claim
    failures: list[str] = []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append("claim")
            raise sa.exc.StatementError(
                "not storable",
                "UPDATE tasks SET input = ? WHERE id = ?",
                {"input": SECRET},
                TypeError("a value not storable"),
            )
        return claim(*args, **kwargs)

    monkeypatch.setattr(live_dispatcher, "claim", failing_once)
    registry = activities.Registry()
    registry.register("Greet", flows.greet)
    start_worker(live_dispatcher, registry)
    record = support.wait_until(
        lambda: next((r for r in caplog.records if "looking for work" in r.message), None),
        "the failed claim to be logged",
    )
    assert record.message == (
        "looking for work failed, will look again: StatementError: a value not storable"
    )
    assert record.exc_info is None
    assert SECRET not in caplog.text
