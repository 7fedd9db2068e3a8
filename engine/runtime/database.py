"""Opening the database: URL resolution, SQLite durability settings, schema upgrades.

SQLite is the embedded default.  It runs in WAL mode with ``synchronous=FULL`` (every
committed transition survives power loss; ``CAIRN_SQLITE_SYNCHRONOUS=NORMAL`` trades that for
speed) and every writing transaction starts with ``BEGIN IMMEDIATE``, so that concurrent
writers never fail with "database is locked" when a read lock would have to be upgraded;
Cairn's writers queue for the one write lock on ``writer_lock`` (any other writer still
meets the busy timeout).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from cairn import errors
from cairn.runtime import tables

try:
    import fcntl as _flock
except ImportError:  # not on POSIX: writers of other processes meet SQLite's busy handler
    _flock = None  # type: ignore[assignment]

DEFAULT_URL = "sqlite:///cairn.db"
SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")
POSTGRESQL_DRIVERS = ("postgresql", "postgresql+psycopg")
"""The drivers Cairn runs on: the standard library's sqlite3 and psycopg 3; any other (asyncpg,
psycopg2) would fail later, or not be installed."""
BUSY_TIMEOUT_MS = 60_000
READ_ONLY = "cairn_read_only"
"""Execution option: this transaction only reads (SQLite may then start it deferred)."""


def resolve_url(url: str | None) -> str:
    """The database URL: the argument, else ``CAIRN_DATABASE_URL``, else the SQLite file."""
    return url or os.environ.get("CAIRN_DATABASE_URL") or DEFAULT_URL


def connect(url: str | None = None, *, upgrade: bool | None = None) -> sa.Engine:
    """An SQLAlchemy engine for ``url``; SQLite schemas are created or upgraded on first use."""
    url = resolve_url(url)
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        # Never the URL nor a part of it: it may hold a password, which was not found to hide.
        problem = "its port is not a number" if isinstance(exc, ValueError) else "unreadable"
        raise errors.CairnError(
            f"bad database URL ({problem}): use sqlite:///FILE or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    if parsed.drivername in SQLITE_DRIVERS:
        engine = _sqlite(parsed)
    elif parsed.drivername in POSTGRESQL_DRIVERS:
        parsed = parsed.set(drivername="postgresql+psycopg")
        engine = sa.create_engine(parsed, pool_size=20, max_overflow=20, pool_pre_ping=True)
    else:
        raise errors.CairnError(
            f"unsupported database URL {shown(url)}: use sqlite:///FILE or postgresql://..."
            f" (the {parsed.drivername!r} driver is not one Cairn runs on)"
        )
    if upgrade if upgrade is not None else engine.dialect.name == "sqlite":
        migrate(engine)
    return engine


def _sqlite(url: sa.URL) -> sa.Engine:
    database = url.database or ""
    if database and database != ":memory:":
        folder = os.path.dirname(os.path.abspath(database))
        if not os.path.isdir(folder):
            raise errors.CairnError(f"cannot open {database!r}: folder {folder!r} does not exist")
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    synchronous = os.environ.get("CAIRN_SQLITE_SYNCHRONOUS", "FULL").upper()
    if synchronous not in ("FULL", "NORMAL", "EXTRA"):
        raise errors.CairnError("CAIRN_SQLITE_SYNCHRONOUS must be FULL, NORMAL or EXTRA")

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        wal(dbapi_connection, BUSY_TIMEOUT_MS / 1000)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        # Straight to the driver: this runs for every transaction.
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def wal(conn: sqlite3.Connection, patience: float) -> None:
    """Put a SQLite file in WAL mode (it stays so), waiting up to ``patience`` seconds.

    On a new file, processes that start together race to switch it, and SQLite answers
    the losers "database is locked" at once, without its busy handler: a worker and a
    `cairn start` on a fresh database would otherwise fail now and then.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def reason(exc: BaseException) -> str:
    """The driver's own words for a refusal, on one line: all an error or log line shows.

    SQLAlchemy's message goes on with the statement and its parameters, execution data,
    and libpq's with a detail and the data's context on lines of their own; neither is
    ever shown.  Nor does a driver's first line hold a password: libpq names the host,
    the port and the user only.
    """
    orig = getattr(exc, "orig", None)
    if orig is None and isinstance(exc, sa.exc.StatementError):
        return type(exc).__name__  # its own text is the statement and its parameters
    try:
        text = str(orig if orig is not None else exc).strip()
    except Exception:
        text = ""
    return text.splitlines()[0] if text else type(exc).__name__


def shown(url: str) -> str:
    """A database URL as it may be shown: its password masked (``***``)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "(an unreadable URL)"


def writer_lock(engine: sa.Engine) -> contextlib.AbstractContextManager[Any]:
    """What a writing transaction holds around its BEGIN ... COMMIT.

    SQLite has one writer at a time, and its busy handler makes the others poll, sleeping
    up to 100 ms a try and serving them in no order: under load a writer can wait seconds
    while others come and go.  So writers queue here instead: threads of one process on a
    lock, processes on an exclusive ``flock`` of a file beside the database, which the
    kernel hands on the moment it is free.  PostgreSQL locks rows; it needs nothing.
    """
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    database = engine.url.database
    if not database or database == ":memory:" or _flock is None:
        return threading.Lock()
    return _FileWriterLock(f"{database}.lock")


class _FileWriterLock:
    """A lock shared by the threads of this process and, through ``flock``, other processes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            assert _flock is not None
            _flock.flock(self._fd, _flock.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            assert _flock is not None and self._fd is not None
            _flock.flock(self._fd, _flock.LOCK_UN)
        finally:
            self._threads.release()


def migrate(engine: sa.Engine) -> int:
    """Create or upgrade the schema; returns the version it is at.  Safe to run repeatedly."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent first starts of many workers on one database.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7405812)"))
        tables.metadata.create_all(conn, checkfirst=True)
        current = conn.execute(sa.select(tables.schema_version.c.version)).scalar()
        if current is None:
            conn.execute(tables.schema_version.insert().values(version=tables.SCHEMA_VERSION))
            return tables.SCHEMA_VERSION
        if current > tables.SCHEMA_VERSION:
            raise errors.CairnError(
                f"the database schema is version {current}, newer than this Cairn "
                f"({tables.SCHEMA_VERSION}); upgrade Cairn"
            )
        if current < tables.SCHEMA_VERSION:
            # Tables new in a step were made by create_all above: 2: workers,
            # refused_outcomes.  Columns new in a step are added here: 3: slot_restarts.
            columns = {c["name"] for c in sa.inspect(conn).get_columns("workers")}
            if "slot_restarts" not in columns:
                conn.execute(
                    sa.text(
                        "ALTER TABLE workers ADD COLUMN slot_restarts INTEGER NOT NULL DEFAULT 0"
                    )
                )
            conn.execute(tables.schema_version.update().values(version=tables.SCHEMA_VERSION))
        return tables.SCHEMA_VERSION
