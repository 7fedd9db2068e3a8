"""A worker's log lines: for people (``text``) or for log shippers (``json``, one object a line).

The worker logs through the standard library, on the ``cairn`` loggers; a record of
something that happened carries its ``event`` and that event's fields (``execution_id``,
``task``, ``activity``, ``attempt``, ``error``...) as ``extra``, which the JSON form writes
as keys.  Neither form ever writes a traceback: the text of a database error holds its SQL
and parameters, that is execution data, so an exception is named by its class and the
driver's first line only (``database.reason``).
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

from cairn.runtime import database, leasing

LOGGER = "cairn"
log = logging.getLogger("cairn.worker")
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
"""Attributes every record has: what is left of a record's are the event's fields."""


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The event's fields a record carries (its ``extra``)."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def _exception(record: logging.LogRecord) -> str | None:
    if record.exc_info is None or record.exc_info[1] is None:
        return None
    exc = record.exc_info[1]
    return f"{type(exc).__name__}: {database.reason(exc)}"


class TextFormatter(logging.Formatter):
    """The message alone, as people read it on a terminal; an exception on the same line."""

    def format(self, record: logging.LogRecord) -> str:
        exception = _exception(record)
        message = record.getMessage()
        return message if exception is None else f"{message} ({exception})"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, worker, event, message, the event's fields."""

    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        entry: dict[str, Any] = {
            "time": time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "worker": self.worker,
            "event": record.__dict__.get("event", record.name),
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in fields(record).items() if k != "event")
        exception = _exception(record)
        if exception is not None:
            entry["exception"] = exception
        return json.dumps(entry, ensure_ascii=False, default=str)


def install(form: str, worker: str) -> logging.Handler:
    """Write log records to stderr in ``form``: Cairn's from level INFO, others' (the
    database driver's) from WARNING, so that a JSON log holds nothing but JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(worker) if form == "json" else TextFormatter())
    logging.getLogger().addHandler(handler)
    logging.getLogger(LOGGER).setLevel(logging.INFO)
    return handler


def about(claim: leasing.Claim, event: str, **more: object) -> dict[str, object]:
    """A log record's ``extra`` for ``event`` of a claimed task: what, never its data."""
    return {
        "event": event,
        "execution_id": claim.execution_id,
        "state": claim.state,
        "task": claim.task_id,
        "activity": claim.activity,
        "attempt": claim.attempt,
        **more,
    }


class Trouble:
    """A database refusal that repeats at every poll, logged when it starts, when its reason
    changes and when it ends, not every time."""

    def __init__(self, event: str, what: str) -> None:
        self.event = event
        self.what = what
        self.reason: str | None = None

    def failed(self, exc: Exception) -> None:
        reason = database.reason(exc)
        if reason != self.reason:
            log.warning(
                "%s failed, will try again every poll: %s",
                self.what,
                reason,
                extra={"event": f"{self.event}.failing", "error": type(exc).__name__},
            )
            self.reason = reason

    def works(self) -> None:
        if self.reason is not None:
            log.warning("%s works again", self.what, extra={"event": f"{self.event}.recovered"})
            self.reason = None
