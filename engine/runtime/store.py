"""Named statements on one open connection: the SQL of executions, events, tasks and timers.

Every function takes a connection inside a transaction that its caller owns, so the caller
decides what commits together (one cause, one transaction).  The hot statements are driver
SQL built once per dialect (``statements``); the rest is SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from cairn import errors
from cairn.core import events
from cairn.core import state as st
from cairn.jsontypes import JSON
from cairn.runtime import leasing, statements, tables

E, D = tables.executions, tables.definitions


class ConcurrencyConflict(errors.CairnError):
    """Another writer changed the execution first; reload and decide again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """An execution row as the write path needs it to decide."""

    id: str
    workflow: str
    version: int
    seq: int
    state: st.Execution
    parent: str | None


def _json(value: JSON) -> str | None:
    # orjson: encoding the snapshot and the events is a good part of every step's work.
    # Non-string keys become strings, as the standard library does.
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def lock(conn: sa.Connection, execution_id: str) -> None:
    """Lock the execution row (PostgreSQL) before any task or timer row of it.

    Every writer must take the locks in that order: one that deleted its task or timer row
    first would wait for a writer holding the execution that waits for that same row, and
    PostgreSQL would abort one of them as a deadlock.  (SQLite has one writer at a time.)
    """
    if conn.dialect.name == "postgresql":
        _, cursor = statements.driver(conn)
        cursor.execute("SELECT 1 FROM executions WHERE id = %s FOR UPDATE", (execution_id,))
        cursor.close()


def load(
    conn: sa.Connection, execution_id: str, known: st.Execution | None = None
) -> Loaded | None:
    """The execution and its state, locked against other writers where the database can.

    ``known`` is a state the caller holds: if it is still the stored one (same run and
    sequence number) the snapshot is neither sent nor parsed.
    """
    sql, cursor = statements.driver(conn)
    run, seq = (known.run, known.seq) if known is not None else (-1, -1)
    cursor.execute(sql.load, (run, seq, execution_id))
    row = cursor.fetchone()
    cursor.close()
    if row is None:
        return None
    if row[5] is None:
        assert known is not None
        state = known
    else:
        state = st.from_json(row[5] if sql.postgres else orjson.loads(row[5]))
    return Loaded(
        id=execution_id,
        workflow=row[0],
        version=row[1],
        seq=row[2],
        state=state,
        parent=row[3],
    )


def insert_execution(
    conn: sa.Connection, state: st.Execution, *, parent: str | None = None
) -> None:
    sql, cursor = statements.driver(conn)
    cursor.execute(
        sql.insert_execution,
        (
            state.id,
            state.run,
            state.workflow,
            state.version,
            state.status,
            _json(state.input),
            _json(state.output),
            state.error,
            state.cause,
            parent,
            state.seq,
            _json(st.to_json(state)),
            state.started_at,
            state.closed_at,
        ),
    )


def save(conn: sa.Connection, old_seq: int, state: st.Execution) -> None:
    """Write the new snapshot, if nobody else wrote since ``old_seq``."""
    sql, cursor = statements.driver(conn)
    cursor.execute(
        sql.save,
        (
            state.seq,
            state.run,
            state.version,
            state.status,
            _json(state.output),
            state.error,
            state.cause,
            _json(st.to_json(state)),
            state.closed_at,
            state.id,
            old_seq,
        ),
    )
    if cursor.rowcount != 1:
        raise ConcurrencyConflict(f"execution {state.id!r} changed while deciding")


def append(conn: sa.Connection, execution_id: str, run: int, new: Sequence[events.Event]) -> None:
    if not new:
        return
    sql, cursor = statements.driver(conn)
    cursor.executemany(
        sql.append,
        [
            (execution_id, run, e.seq, e.type, e.time, e.scope, e.state, _json(e.details))
            for e in new
        ],
    )


def history(conn: sa.Connection, execution_id: str, run: int | None = None) -> list[events.Event]:
    ev = tables.events
    query = sa.select(ev).where(ev.c.execution_id == execution_id)
    if run is not None:
        query = query.where(ev.c.run == run)
    rows = conn.execute(query.order_by(ev.c.run, ev.c.seq))
    return [
        events.Event(
            seq=r.seq,
            time=r.time,
            payload=events.read(r.type, r.details),
            scope=r.scope,
            state=r.state,
            run=r.run,
        )
        for r in rows
    ]


def insert_tasks(
    conn: sa.Connection,
    execution_id: str,
    new: Iterable[st.Task],
    now: float,
    leases: dict[str, tuple[str, float]],
) -> None:
    """Insert new tasks; those in ``leases`` are already leased (owner, expiry)."""
    rows = [
        (
            t.id,
            execution_id,
            t.queue,
            t.activity,
            t.state,
            t.attempt,
            t.key,
            _json(t.input),
            t.timeout,
            t.heartbeat,
            now,
            leases[t.id][0] if t.id in leases else None,
            leases[t.id][1] if t.id in leases else None,
            now if t.id in leases else None,
            _json(t.heartbeat_details),
        )
        for t in new
    ]
    if rows:
        sql, cursor = statements.driver(conn)
        cursor.executemany(sql.insert_task, rows)


def delete_tasks(conn: sa.Connection, ids: Iterable[str]) -> None:
    params = [(i,) for i in ids]
    if params:
        sql, cursor = statements.driver(conn)
        cursor.executemany(sql.delete_task, params)


def insert_timers(conn: sa.Connection, execution_id: str, new: Iterable[st.Timer]) -> None:
    rows = [(t.id, execution_id, t.due) for t in new]
    if rows:
        sql, cursor = statements.driver(conn)
        cursor.executemany(sql.insert_timer, rows)


def delete_timers(conn: sa.Connection, ids: Iterable[str]) -> None:
    params = [(i,) for i in ids]
    if params:
        sql, cursor = statements.driver(conn)
        cursor.executemany(sql.delete_timer, params)


_NEWEST = (
    sa.select(D.c.version)
    .where(D.c.name == sa.bindparam("name"))
    .order_by(D.c.version.desc())
    .limit(1)
)


def newest_version(conn: sa.Connection, name: str) -> int | None:
    """The highest deployed version of ``name`` (read on every start: cheap on purpose)."""
    return conn.execute(_NEWEST, {"name": name}).scalar()


def definition_row(conn: sa.Connection, name: str, version: int | None) -> Any:
    query = sa.select(D).where(D.c.name == name)
    if version is None:
        query = query.order_by(D.c.version.desc()).limit(1)
    else:
        query = query.where(D.c.version == version)
    return conn.execute(query).first()


def execution_row(conn: sa.Connection, execution_id: str) -> Any:
    return conn.execute(sa.select(E).where(E.c.id == execution_id)).first()


_VIEW = sa.select(*(c for c in E.c if c.name != "snapshot")).where(E.c.id == sa.bindparam("id"))


def execution_view_row(conn: sa.Connection, execution_id: str) -> Any:
    """The execution row without its snapshot (the largest column), for views."""
    return conn.execute(_VIEW, {"id": execution_id}).first()


def take_owned(conn: sa.Connection, task_id: str, owner: str) -> bool:
    """Remove a finished task, if ``owner`` still holds its lease."""
    sql, cursor = statements.driver(conn)
    cursor.execute(sql.take_owned, (task_id, owner))
    return bool(cursor.rowcount == 1)


WORK_CHANNEL = "cairn_work"
"""PostgreSQL notification channel: its payload is the queue that got claimable tasks."""


def claim(
    conn: sa.Connection,
    owner: str,
    queues: Sequence[str],
    activities: Sequence[str],
    limit: int,
    lease: float,
    now: float,
) -> list[leasing.Claim]:
    """Lease up to ``limit`` available tasks of ``queues`` and ``activities`` to ``owner``."""
    sql, cursor = statements.driver(conn)
    lease_values = (owner, now, now, lease, lease)
    params: tuple[Any, ...]
    if sql.postgres:
        params = (list(queues), list(activities), now, limit, *lease_values)
    else:
        params = (*lease_values, *queues, *activities, now, limit)
    cursor.execute(sql.claim(len(queues), len(activities)), params)
    rows = cursor.fetchall()
    cursor.close()
    decode = _as_is if sql.postgres else _decode
    return [
        leasing.Claim(
            task_id=r[0],
            execution_id=r[1],
            activity=r[2],
            state=r[3],
            input=decode(r[4]),
            attempt=r[5],
            key=r[6],
            timeout=r[7],
            heartbeat=r[8],
            heartbeat_details=decode(r[9]),
            started_at=now,
            lease=lease,
        )
        for r in rows
    ]


def sqlite_claimable(queues: int, activities: int) -> str:
    """The SQLite look for a claimable task: now, the queues, then the activities."""
    return statements.DIALECTS["sqlite"].claimable(queues, activities)


def claimable(
    conn: sa.Connection, queues: Sequence[str], activities: Sequence[str], now: float
) -> bool:
    """Whether a claim would find a task (SQLite, before it takes the write lock)."""
    sql, cursor = statements.driver(conn)
    cursor.execute(sql.claimable(len(queues), len(activities)), (now, *queues, *activities))
    found = cursor.fetchone() is not None
    cursor.close()
    return found


def renew(conn: sa.Connection, owner: str, task_ids: Sequence[str], expires: float) -> int:
    """Extend ``owner``'s leases of ``task_ids`` to ``expires`` (or their timeout)."""
    if not task_ids:
        return 0
    sql, cursor = statements.driver(conn)
    cursor.execute(sql.renew(len(task_ids)), (expires, expires, owner, *task_ids))
    count = cursor.rowcount
    cursor.close()
    return int(count)


def notify_work(conn: sa.Connection, queues: Iterable[str]) -> None:
    """Tell listening workers (PostgreSQL) that these queues got tasks, once this commits."""
    if conn.dialect.name != "postgresql":
        return
    sql, cursor = statements.driver(conn)
    cursor.executemany(sql.notify, [(WORK_CHANNEL, q) for q in sorted(queues)])
    cursor.close()


def insert_definition(
    conn: sa.Connection, name: str, version: int, sha256: str, body: JSON, source: str, now: float
) -> None:
    conn.execute(
        D.insert().values(
            name=name, version=version, sha256=sha256, body=body, source=source, deployed_at=now
        )
    )


def extend_lease(
    conn: sa.Connection, task_id: str, owner: str, expires: float, details: JSON = None
) -> bool:
    """Move ``owner``'s lease of one task to ``expires``, keeping heartbeat ``details``."""
    T = tables.tasks
    values: dict[str, Any] = {"lease_expires_at": expires}
    if details is not None:
        values["heartbeat_details"] = details
    held = T.update().where(T.c.id == task_id, T.c.lease_owner == owner)
    return bool(conn.execute(held.values(**values)).rowcount == 1)


def release(
    conn: sa.Connection, owner: str, task_ids: Collection[str] | None, now: float
) -> list[str]:
    """Put ``owner``'s tasks (or those of ``task_ids``) back to be claimed; their queues."""
    T = tables.tasks
    held = T.c.lease_owner == owner
    if task_ids is not None:
        held = sa.and_(held, T.c.id.in_(list(task_ids)))
    queues = [r.queue for r in conn.execute(sa.select(T.c.queue).where(held))]
    if queues:
        unleased = {"lease_owner": None, "lease_expires_at": None, "started_at": None}
        conn.execute(T.update().where(held).values(**unleased, available_at=now))
    return queues


def due_timers(conn: sa.Connection, now: float, limit: int) -> list[Any]:
    """Timers whose time has come, the oldest first: (id, execution_id) rows."""
    TM = tables.timers
    query = sa.select(TM.c.id, TM.c.execution_id).where(TM.c.due_at <= now)
    return list(conn.execute(query.order_by(TM.c.due_at).limit(limit)).all())


def take_timer(conn: sa.Connection, timer_id: str) -> bool:
    """Remove a timer that fires; False when another worker fired it first."""
    TM = tables.timers
    return bool(conn.execute(TM.delete().where(TM.c.id == timer_id)).rowcount == 1)


def next_due(conn: sa.Connection) -> float | None:
    """When the next timer is due, if any."""
    due = conn.execute(sa.select(sa.func.min(tables.timers.c.due_at))).scalar()
    return None if due is None else float(due)


def expired_leases(conn: sa.Connection, now: float) -> list[Any]:
    """Task rows whose lease ran out (their worker died, or the task timed out)."""
    T = tables.tasks
    held = sa.select(T).where(T.c.lease_owner.is_not(None), T.c.lease_expires_at <= now)
    return list(conn.execute(held).all())


def take_expired(conn: sa.Connection, row: Any, now: float) -> bool:
    """Remove a task row read by ``expired_leases``, unless renewed or taken meanwhile."""
    T = tables.tasks
    gone = T.delete().where(
        T.c.id == row.id, T.c.lease_owner == row.lease_owner, T.c.lease_expires_at <= now
    )
    return bool(conn.execute(gone).rowcount == 1)


def requeue(conn: sa.Connection, row: Any, now: float) -> None:
    """Put a task row removed by ``take_expired`` back, unleased: same attempt, same key."""
    values = dict(row._mapping)
    values.update(lease_owner=None, lease_expires_at=None, started_at=None, available_at=now)
    conn.execute(tables.tasks.insert().values(**values))


def _as_is(value: Any) -> JSON:
    stored: JSON = value
    return stored


def _decode(value: Any) -> JSON:
    # A JSON column has numeric affinity on SQLite: a bare number comes back as one.
    decoded: JSON = orjson.loads(value) if isinstance(value, (str, bytes)) else value
    return decoded
