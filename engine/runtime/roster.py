"""The workers table: which workers are at work, what they hold, when they were last heard.

Nothing in the engine needs the table to run: leases decide who holds a task.  It is there
for people (``cairn workers``) and so that a worker's one heartbeat renews the leases of all
its running tasks at once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from cairn.core import step
from cairn.runtime import leasing, store, tables

WORKER_FORGOTTEN_AFTER = 3600.0
"""A worker presumed dead stays listed (``cairn workers --all``) this long, then is dropped."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Presence:
    """A worker as the workers table lists it."""

    id: str
    host: str
    pid: int
    queues: Sequence[str]
    activities: Sequence[str]
    concurrency: int
    lease: float
    started_at: float
    slot_restarts: int = 0
    """Slots of this worker that died and were started again."""

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "queues": list(self.queues),
            "activities": sorted(self.activities),
            "concurrency": self.concurrency,
            "lease": self.lease,
            "started_at": self.started_at,
        }


def beat(
    conn: sa.Connection,
    presence: Presence,
    running: Collection[leasing.Claim],
    now: float,
) -> None:
    """A worker's heartbeat: it is alive, and so are the leases of its running tasks.

    Renews the tasks without HeartbeatSeconds (those with it are kept alive by their
    activity's own heartbeats), registers the worker again should its row have been
    dropped, and forgets workers presumed dead long ago.
    """
    W = tables.workers
    alive = {
        "heartbeat_at": now,
        "expires_at": now + presence.lease,
        "slot_restarts": presence.slot_restarts,
    }
    if not conn.execute(W.update().where(W.c.id == presence.id).values(**alive)).rowcount:
        conn.execute(W.insert().values(**presence.row(), **alive))
    ids = sorted(c.task_id for c in running if c.heartbeat is None)
    store.renew(conn, presence.id, ids, now + presence.lease)
    conn.execute(W.delete().where(W.c.expires_at < now - WORKER_FORGOTTEN_AFTER))


def leave(conn: sa.Connection, worker: str) -> None:
    """A stopped worker is no longer listed."""
    W = tables.workers
    conn.execute(W.delete().where(W.c.id == worker))


def listing(conn: sa.Connection, now: float, *, everyone: bool = False) -> list[dict[str, Any]]:
    """Registered workers with the tasks they hold; only live ones unless ``everyone``.

    A worker is live while its last heartbeat is within its lease; after that it is
    presumed dead and its tasks go to others as their leases run out.
    """
    W, T = tables.workers, tables.tasks
    held = (
        sa.select(T.c.lease_owner, sa.func.count().label("tasks"))
        .where(T.c.lease_owner.is_not(None))
        .group_by(T.c.lease_owner)
        .subquery()
    )
    query = (
        sa.select(W, held.c.tasks)
        .outerjoin(held, held.c.lease_owner == W.c.id)
        .order_by(W.c.host, W.c.started_at, W.c.id)
    )
    if not everyone:
        query = query.where(W.c.expires_at > now)
    rows = conn.execute(query).all()
    return [
        {
            "id": r.id,
            "host": r.host,
            "pid": r.pid,
            "queues": r.queues,
            "activities": r.activities,
            "concurrency": r.concurrency,
            "lease": r.lease,
            "started_at": step.iso(r.started_at),
            "heartbeat_at": step.iso(r.heartbeat_at),
            "heartbeat_age": max(0.0, now - r.heartbeat_at),
            "live": r.expires_at > now,
            "in_flight": int(r.tasks or 0),
            "slot_restarts": r.slot_restarts,
        }
        for r in rows
    ]
