"""Named statements on one open connection: the only module that writes rows.

Every function takes a connection inside a transaction that its caller owns, so the caller
decides what commits together (one cause, one transaction).  Hot statements are built once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engine import errors, events, tables
from engine import state as st
from engine.expressions import JSON

E, T, TM, D = tables.executions, tables.tasks, tables.timers, tables.definitions


class ConcurrencyConflict(errors.CairnError):
    """Another writer changed the execution first; reload and decide again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """An execution row as the shell needs it to decide."""

    id: str
    workflow: str
    version: int
    seq: int
    state: st.Execution


_LOAD = sa.select(E.c.id, E.c.workflow, E.c.version, E.c.seq, E.c.snapshot).where(
    E.c.id == sa.bindparam("id")
)
_LOAD_LOCKED = _LOAD.with_for_update()
_SAVE = (
    E.update()
    .where(E.c.id == sa.bindparam("eid"), E.c.seq == sa.bindparam("old_seq"))
    .values(
        seq=sa.bindparam("seq"),
        run=sa.bindparam("run"),
        status=sa.bindparam("status"),
        output=sa.bindparam("output"),
        error=sa.bindparam("error"),
        cause=sa.bindparam("cause"),
        snapshot=sa.bindparam("snapshot"),
        closed_at=sa.bindparam("closed_at"),
    )
)
_DELETE_TASK = T.delete().where(T.c.id == sa.bindparam("tid"))
_DELETE_OWNED = T.delete().where(
    T.c.id == sa.bindparam("tid"), T.c.lease_owner == sa.bindparam("owner")
)
_LEASE = (
    T.update()
    .where(T.c.id == sa.bindparam("tid"))
    .values(
        lease_owner=sa.bindparam("owner"),
        lease_expires_at=sa.bindparam("expires"),
        started_at=sa.bindparam("now"),
    )
)
_EXECUTION = sa.select(E).where(E.c.id == sa.bindparam("id"))
_DELETE_TIMER = TM.delete().where(TM.c.id == sa.bindparam("tid"))


def load(conn: sa.Connection, execution_id: str) -> Loaded | None:
    """The execution and its snapshot, locked against other writers where the database can."""
    statement = _LOAD_LOCKED if conn.dialect.name == "postgresql" else _LOAD
    row = conn.execute(statement, {"id": execution_id}).first()
    if row is None:
        return None
    return Loaded(
        id=row.id,
        workflow=row.workflow,
        version=row.version,
        seq=row.seq,
        state=st.from_json(row.snapshot),
    )


def insert_execution(
    conn: sa.Connection, state: st.Execution, *, parent: str | None = None
) -> None:
    conn.execute(
        E.insert().values(
            id=state.id,
            run=state.run,
            workflow=state.workflow,
            version=state.version,
            status=state.status,
            input=state.input,
            output=state.output,
            error=state.error,
            cause=state.cause,
            parent=parent,
            seq=state.seq,
            snapshot=st.to_json(state),
            started_at=state.started_at,
            closed_at=state.closed_at,
        )
    )


def save(conn: sa.Connection, old_seq: int, state: st.Execution) -> None:
    """Write the new snapshot, if nobody else wrote since ``old_seq``."""
    result = conn.execute(
        _SAVE,
        {
            "eid": state.id,
            "old_seq": old_seq,
            "seq": state.seq,
            "run": state.run,
            "status": state.status,
            "output": state.output,
            "error": state.error,
            "cause": state.cause,
            "snapshot": st.to_json(state),
            "closed_at": state.closed_at,
        },
    )
    if result.rowcount != 1:
        raise ConcurrencyConflict(f"execution {state.id!r} changed while deciding")


def append(conn: sa.Connection, execution_id: str, run: int, new: Sequence[events.Event]) -> None:
    if not new:
        return
    conn.execute(
        tables.events.insert(),
        [
            {
                "execution_id": execution_id,
                "run": run,
                "seq": e.seq,
                "type": e.type,
                "time": e.time,
                "scope": e.scope,
                "state": e.state,
                "details": e.details,
            }
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
            seq=r.seq, type=r.type, time=r.time, scope=r.scope, state=r.state, details=r.details
        )
        for r in rows
    ]


def insert_tasks(
    conn: sa.Connection,
    execution_id: str,
    new: Iterable[st.Task],
    now: float,
    leases: dict[str, float],
    owner: str | None,
) -> None:
    rows = [
        {
            "id": t.id,
            "execution_id": execution_id,
            "queue": t.queue,
            "activity": t.activity,
            "state": t.state,
            "attempt": t.attempt,
            "key": t.key,
            "input": t.input,
            "timeout": t.timeout,
            "heartbeat": t.heartbeat,
            "available_at": now,
            "lease_owner": owner if t.id in leases else None,
            "lease_expires_at": leases.get(t.id),
            "started_at": now if t.id in leases else None,
            "heartbeat_details": None,
        }
        for t in new
    ]
    if rows:
        conn.execute(T.insert(), rows)


def delete_tasks(conn: sa.Connection, ids: Iterable[str]) -> None:
    params = [{"tid": i} for i in ids]
    if params:
        conn.execute(_DELETE_TASK, params)


def insert_timers(conn: sa.Connection, execution_id: str, new: Iterable[st.Timer]) -> None:
    rows = [{"id": t.id, "execution_id": execution_id, "due_at": t.due} for t in new]
    if rows:
        conn.execute(TM.insert(), rows)


def delete_timers(conn: sa.Connection, ids: Iterable[str]) -> None:
    params = [{"tid": i} for i in ids]
    if params:
        conn.execute(_DELETE_TIMER, params)


def definition_row(conn: sa.Connection, name: str, version: int | None) -> Any:
    query = sa.select(D).where(D.c.name == name)
    if version is None:
        query = query.order_by(D.c.version.desc()).limit(1)
    else:
        query = query.where(D.c.version == version)
    return conn.execute(query).first()


def execution_row(conn: sa.Connection, execution_id: str) -> Any:
    return conn.execute(_EXECUTION, {"id": execution_id}).first()


def take_owned(conn: sa.Connection, task_id: str, owner: str) -> bool:
    """Remove a finished task, if ``owner`` still holds its lease."""
    return bool(conn.execute(_DELETE_OWNED, {"tid": task_id, "owner": owner}).rowcount == 1)


def lease(conn: sa.Connection, task_id: str, owner: str, expires: float, now: float) -> None:
    conn.execute(_LEASE, {"tid": task_id, "owner": owner, "expires": expires, "now": now})


def json_size(value: JSON) -> int:
    """Bytes of ``value`` as compact JSON, the measure of the payload limit."""
    return len(json.dumps(value, separators=(",", ":")).encode())
