"""A stand-in for the outside services of the order demo: payments, stock, shipping, mail.

It keeps its own SQLite file (``CAIRN_DEMO_PROVIDER``, default ``cairn-provider.db``), apart
from Cairn's database, the way a real payment provider keeps its own books.  Like a real
provider it honours idempotency keys: a second charge with a key it has seen is refused and
answered with the first charge, and every request per key is counted, so the demo and the
crash tests can show that a card is charged exactly once.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from typing import Any

from cairn.runtime import database

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    idempotency_key TEXT PRIMARY KEY,
    charge_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    amount REAL NOT NULL,
    requests INTEGER NOT NULL DEFAULT 1,
    refunded INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    items TEXT NOT NULL,
    released INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox (
    idempotency_key TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    body TEXT NOT NULL
);
"""

_local = threading.local()


def path() -> str:
    """Where the provider keeps its books."""
    return os.environ.get("CAIRN_DEMO_PROVIDER", "cairn-provider.db")


def _db() -> sqlite3.Connection:
    current = path()
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None or getattr(_local, "path", None) != current:
        conn = sqlite3.connect(current, timeout=60, isolation_level=None)
        database.wal(conn, 60)
        conn.executescript(SCHEMA)
        _local.conn, _local.path = conn, current
    return conn


def charge(key: str, order_id: str, amount: float) -> dict[str, Any]:
    """Charge once per idempotency key; a repeat is refused and answered with the first charge."""
    conn = _db()
    charge_id = "ch_" + hashlib.sha256(key.encode()).hexdigest()[:16]
    with _immediate(conn):
        conn.execute(
            "INSERT INTO charges (idempotency_key, charge_id, order_id, amount, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) "
            "DO UPDATE SET requests = requests + 1",
            (key, charge_id, order_id, amount, time.time()),
        )
        row = conn.execute(
            "SELECT charge_id, amount, requests FROM charges WHERE idempotency_key = ?", (key,)
        ).fetchone()
    return {"charge_id": row[0], "amount": row[1], "replayed": row[2] > 1}


def refund(charge_id: str) -> dict[str, Any]:
    conn = _db()
    with _immediate(conn):
        conn.execute("UPDATE charges SET refunded = 1 WHERE charge_id = ?", (charge_id,))
    return {"refunded": charge_id}


def reserve(key: str, order_id: str, items: str) -> str:
    reservation_id = "rs_" + hashlib.sha256(key.encode()).hexdigest()[:16]
    conn = _db()
    with _immediate(conn):
        conn.execute(
            "INSERT OR IGNORE INTO reservations (reservation_id, order_id, items) VALUES (?, ?, ?)",
            (reservation_id, order_id, items),
        )
    return reservation_id


def release(reservation_id: str) -> None:
    conn = _db()
    with _immediate(conn):
        conn.execute(
            "UPDATE reservations SET released = 1 WHERE reservation_id = ?", (reservation_id,)
        )


def send_mail(key: str, email: str, body: str) -> bool:
    """Queue a mail once per key; returns whether this call queued it."""
    conn = _db()
    with _immediate(conn):
        cursor = conn.execute(
            "INSERT OR IGNORE INTO outbox (idempotency_key, email, body) VALUES (?, ?, ?)",
            (key, email, body),
        )
    return cursor.rowcount == 1


def charges() -> list[dict[str, Any]]:
    """Every charge on the books, with how many requests its key received."""
    rows = _db().execute(
        "SELECT idempotency_key, charge_id, order_id, amount, requests, refunded FROM charges"
    )
    keys = ("idempotency_key", "charge_id", "order_id", "amount", "requests", "refunded")
    return [dict(zip(keys, row, strict=True)) for row in rows]


class _immediate:
    """A write transaction that takes SQLite's lock up front (no upgrade deadlocks)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error:
                # Left open, the transaction would fail every later call on this thread.
                self.conn.execute("ROLLBACK")
                raise
        self.conn.execute("ROLLBACK")
