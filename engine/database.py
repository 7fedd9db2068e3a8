"""Opening the database: URL resolution, SQLite durability settings, schema upgrades.

SQLite is the embedded default.  It runs in WAL mode with ``synchronous=FULL`` (every
committed transition survives power loss; ``CAIRN_SQLITE_SYNCHRONOUS=NORMAL`` trades that for
speed) and every writing transaction starts with ``BEGIN IMMEDIATE``, so that concurrent
writers queue on the busy timeout instead of failing with "database is locked" when a read
lock would have to be upgraded.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from engine import errors, tables

DEFAULT_URL = "sqlite:///cairn.db"
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
    except sa.exc.ArgumentError as exc:
        raise errors.CairnError(f"bad database URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite(parsed)
    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = sa.create_engine(parsed, pool_size=20, max_overflow=20, pool_pre_ping=True)
    else:
        raise errors.CairnError(f"unsupported database {url!r}: use sqlite:/// or postgresql://")
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
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
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
        return int(current)
