"""Error and log lines name the problem, never a password nor an execution's data: a
database error by the driver's first line (SQLAlchemy's own message repeats the statement
and its parameters), a URL with its password masked, a log record without its traceback."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cairn import client
from cairn.cli import workers
from cairn.cli.main import main
from cairn.runtime import database, logs, wakeup

SECRET = "Ada-4929-1234-5678"
"""Execution data, as a statement's parameter."""
PASSWORD = "s3cret-Pw"
UNREACHABLE = f"postgresql://cairn:{PASSWORD}@127.0.0.1:1/cairn"
"""A database URL with a password, where nothing listens."""


def refusals() -> list[sa.exc.StatementError]:
    """A refusal by the database, and a value its driver could not even be given."""
    engine = sa.create_engine("sqlite://")
    found: list[sa.exc.StatementError] = []
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (v TEXT CHECK (length(v) < 3))"))
        for statement, value in [
            (sa.text("INSERT INTO t VALUES (:v)"), SECRET),
            (
                sa.text("INSERT INTO t VALUES (:v)").bindparams(sa.bindparam("v", type_=sa.JSON)),
                {"card": SECRET, "items": {1, 2}},
            ),
        ]:
            with pytest.raises(sa.exc.StatementError) as raised:
                conn.execute(statement, {"v": value})
            found.append(raised.value)
    engine.dispose()
    return found


def test_a_database_error_is_shown_by_the_drivers_first_line() -> None:
    refused, unsendable = refusals()
    assert SECRET in str(refused) and SECRET in str(unsendable)
    assert database.reason(refused) == "CHECK constraint failed: length(v) < 3"
    assert database.reason(unsendable) == "Object of type set is not JSON serializable"
    bare = sa.exc.StatementError("(nothing below)", f"SELECT '{SECRET}'", None, None)
    assert database.reason(bare) == "StatementError"


def test_a_url_is_shown_with_its_password_masked() -> None:
    assert database.shown(UNREACHABLE) == "postgresql://cairn:***@127.0.0.1:1/cairn"
    assert database.shown(f"postgresql://cairn:{PASSWORD}@host:port/x") == "(an unreadable URL)"


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    result = CliRunner().invoke(main, ["--db", UNREACHABLE, "list"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'error: the database refused: connection failed: connection to server at "127.0.0.1",'
        " port 1 failed: Connection refused"
    ]
    assert PASSWORD not in result.output


def test_a_worker_that_cannot_reach_its_database_says_so_in_its_log_format() -> None:
    command = [sys.executable, "-c", "from cairn.cli.main import main; main()"]
    done = subprocess.run(
        [*command, "--db", UNREACHABLE, "worker", "--log-format", "json", "--activities", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert PASSWORD not in done.stderr
    [line] = [json.loads(text) for text in done.stderr.splitlines()]
    assert (line["level"], line["event"]) == ("error", "worker.failed")
    assert line["message"].startswith("error: the database refused: connection failed")


def test_a_statement_the_driver_could_not_take_is_one_line_at_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, unsendable = refusals()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise unsendable

    monkeypatch.setattr(client.Client, "executions", refuse)
    result = CliRunner().invoke(main, ["--db", "sqlite://", "list"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: the database refused: Object of type set is not JSON serializable"
    ]
    assert SECRET not in result.output


def test_a_failing_listener_logs_one_line_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="cairn")
    engine = sa.create_engine(UNREACHABLE.replace("postgresql:", "postgresql+psycopg:"))
    listener = wakeup.listen(engine, ["default"], ["Greet"])
    assert listener.wait(0.01) is True  # no news heard: the worker looks for itself
    listener.close()
    [record] = caplog.records
    assert record.message.startswith("listening for new work failed, polling meanwhile: ")
    assert record.__dict__["event"] == "listen.failing"
    assert PASSWORD not in caplog.text


def record_of(exc: BaseException | None = None, **extra: Any) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"msg": "could not record %s", "args": ("t-1",), "levelname": "INFO", **extra}
    )
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    return record


def test_a_json_line_holds_the_event_and_its_fields_and_no_traceback() -> None:
    refused, _ = refusals()
    fields = {"event": "task.record_retry", "execution_id": "e-1", "task": "t-1", "attempt": 2}
    line = json.loads(logs.JsonFormatter("w-1").format(record_of(refused, **fields)))
    assert line.pop("time").endswith("Z")
    assert line == {
        "level": "info",
        "worker": "w-1",
        "event": "task.record_retry",
        "message": "could not record t-1",
        "execution_id": "e-1",
        "task": "t-1",
        "attempt": 2,
        "exception": "IntegrityError: CHECK constraint failed: length(v) < 3",
    }
    text = logs.TextFormatter().format(record_of(refused))
    assert text == "could not record t-1 (IntegrityError: CHECK constraint failed: length(v) < 3)"


def test_a_thread_that_dies_is_one_line_without_the_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="cairn")
    refused, _ = refusals()
    thread = threading.Thread(name="cairn-listen")
    workers._thread_died(threading.ExceptHookArgs([type(refused), refused, None, thread]))
    assert [r.message for r in caplog.records] == [
        "cairn-listen died: IntegrityError: CHECK constraint failed: length(v) < 3"
    ]
    assert SECRET not in caplog.text
