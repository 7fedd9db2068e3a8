"""News of claimable work queued by other processes, so that idle workers need not poll.

A process tells its own idle workers directly (``Writer.work``).  Work queued elsewhere
is heard here: on PostgreSQL as a notification (``LISTEN cairn_work``), which the
transaction that queues a task sends with its commit, naming the queue; on SQLite by
watching ``PRAGMA data_version``, which changes whenever another connection commits, and
then looking, on a connection of its own, whether a task is claimable.  Either way a
worker still looks every ``--poll`` seconds, in case news was missed (a connection lost).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

import sqlalchemy as sa

from cairn.runtime import database, store

log = logging.getLogger("cairn.worker")

_FAILED = {"event": "listen.failing"}
"""The event of a failed listen, in a log record's ``extra`` (see ``runtime.logs``)."""
SQLITE_TICK = 0.01
"""How often an idle SQLite worker reads ``data_version``: microseconds of work each time."""


class Listener(Protocol):
    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True as soon as work may be claimable."""

    def close(self) -> None: ...


def listen(
    db: sa.Engine,
    queues: Collection[str],
    activities: Collection[str],
    clock: Callable[[], float] = time.time,
) -> Listener:
    """A listener for the database of ``db``, for tasks of ``queues`` and ``activities``."""
    if db.dialect.name == "postgresql":
        return _Notifications(db, queues)
    if db.dialect.name == "sqlite" and db.url.database not in (None, "", ":memory:"):
        return _DataVersion(db, queues, activities, clock)
    return _Nothing()


class _Nothing:
    """No other process can reach this database: only the poll remains."""

    def wait(self, timeout: float) -> bool:
        time.sleep(timeout)
        return False

    def close(self) -> None:
        pass


class _Notifications:
    """PostgreSQL: LISTEN on a connection of its own, in autocommit mode."""

    def __init__(self, db: sa.Engine, queues: Collection[str]) -> None:
        self.args, self.kwargs = db.dialect.create_connect_args(db.url)
        self.queues = set(queues)
        self.conn: Any = None

    def wait(self, timeout: float) -> bool:
        import psycopg

        try:
            if self.conn is None:
                self.conn = psycopg.connect(*self.args, **self.kwargs, autocommit=True)
                self.conn.execute(f"LISTEN {store.WORK_CHANNEL}")
                return True  # whatever was announced while nobody listened
            heard = {n.payload for n in self.conn.notifies(timeout=timeout, stop_after=1)}
        except psycopg.Error as exc:
            reason = database.reason(exc)
            log.warning(
                "listening for new work failed, polling meanwhile: %s", reason, extra=_FAILED
            )
            self.close()
            time.sleep(timeout)
            return True
        return bool(heard & self.queues)

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            # A broken connection has nothing left to release.
            with contextlib.suppress(Exception):
                conn.close()


class _DataVersion:
    """SQLite: another connection committed (``data_version`` moved); is a task claimable?"""

    def __init__(
        self,
        db: sa.Engine,
        queues: Collection[str],
        activities: Collection[str],
        clock: Callable[[], float],
    ) -> None:
        self.path = str(db.url.database)
        self.filters = (*sorted(queues), *sorted(activities))
        self.look = store.sqlite_claimable(len(queues), len(activities))
        self.clock = clock
        self.conn: sqlite3.Connection | None = None
        self.version: int | None = None

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        try:
            if self.conn is None:
                self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            while True:
                version = self.conn.execute("PRAGMA data_version").fetchone()[0]
                if version != self.version:
                    self.version = version
                    if self.conn.execute(self.look, (self.clock(), *self.filters)).fetchone():
                        return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(SQLITE_TICK, left))
        except sqlite3.Error as exc:
            reason = database.reason(exc)
            log.warning(
                "watching for new work failed, polling meanwhile: %s", reason, extra=_FAILED
            )
            self.close()
            time.sleep(max(0.0, deadline - time.monotonic()))
            return True

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()
