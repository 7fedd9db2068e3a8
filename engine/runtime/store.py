"""Named statements on one open connection: the only module that writes rows.

Every function takes a connection inside a transaction that its caller owns, so the caller
decides what commits together (one cause, one transaction).  Hot statements are built once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from cairn import errors
from cairn.core import events
from cairn.core import state as st
from cairn.jsontypes import JSON
from cairn.runtime import tables

E, D = tables.executions, tables.definitions


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
    parent: str | None


class _Sql:
    """The hot statements as driver SQL for one dialect.

    They run on every step of every execution, where SQLAlchemy's per-statement work
    (compiling, caching, type processing) costs several times the database's own; they
    run on the driver connection inside the caller's SQLAlchemy transaction, so atomicity
    is unchanged.  Cold paths keep using SQLAlchemy Core.
    """

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"
        p = "%s" if self.postgres else "?"
        j = "%s::jsonb" if self.postgres else "?"
        lock = " FOR UPDATE" if self.postgres else ""
        # The snapshot comes back only when the caller's copy (run, seq) is not current.
        self.load = (
            "SELECT workflow, version, seq, parent, run, "
            f"CASE WHEN run = {p} AND seq = {p} THEN NULL ELSE snapshot END "
            f"FROM executions WHERE id = {p}{lock}"
        )
        self.insert_execution = (
            "INSERT INTO executions (id, run, workflow, version, status, input, output, error, "
            "cause, parent, seq, snapshot, started_at, closed_at) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {j}, {j}, {p}, {p}, {p}, {p}, {j}, {p}, {p})"
        )
        self.save = (
            f"UPDATE executions SET seq = {p}, run = {p}, version = {p}, status = {p}, "
            f"output = {j}, error = {p}, cause = {p}, snapshot = {j}, closed_at = {p} "
            f"WHERE id = {p} AND seq = {p}"
        )
        self.append = (
            "INSERT INTO events (execution_id, run, seq, type, time, scope, state, details) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {j})"
        )
        self.insert_task = (
            "INSERT INTO tasks (id, execution_id, queue, activity, state, attempt, key, input, "
            "timeout, heartbeat, available_at, lease_owner, lease_expires_at, started_at, "
            "heartbeat_details) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {j}, {p}, {p}, {p}, {p}, {p}, {p}, {j})"
        )
        self.delete_task = f"DELETE FROM tasks WHERE id = {p}"
        self.take_owned = f"DELETE FROM tasks WHERE id = {p} AND lease_owner = {p}"
        self.insert_timer = f"INSERT INTO timers (id, execution_id, due_at) VALUES ({p}, {p}, {p})"
        self.delete_timer = f"DELETE FROM timers WHERE id = {p}"
        # A fresh lease lasts the heartbeat interval, else the worker's lease, capped by the
        # task's timeout: ``leasing.lease_for`` in SQL.
        least = "LEAST" if self.postgres else "MIN"
        self.lease_length = f"{least}(COALESCE(heartbeat, {p}), COALESCE(timeout, heartbeat, {p}))"
        self.notify = "SELECT pg_notify(%s, %s)"
        self._claims: dict[tuple[int, int], str] = {}

    def claimable(self, queues: int, activities: int) -> str:
        """Whether any task could be claimed: a cheap look before taking the write lock."""
        return (
            "SELECT 1 FROM tasks WHERE lease_owner IS NULL AND available_at <= ? "
            f"AND queue IN ({', '.join(['?'] * queues)}) "
            f"AND activity IN ({', '.join(['?'] * activities)}) LIMIT 1"
        )

    def claim(self, queues: int, activities: int) -> str:
        """Lease up to N claimable tasks in one statement, returning what the workers need.

        On PostgreSQL the candidates are locked with SKIP LOCKED, so concurrent claimers
        never wait for each other and never take the same row; SQLite has one writer.
        """
        statement = self._claims.get((queues, activities))
        if statement is None:
            returning = (
                "RETURNING tasks.id, execution_id, activity, state, input, attempt, key, "
                "timeout, heartbeat, heartbeat_details, lease_expires_at"
            )
            if self.postgres:
                # A materialised CTE: as a plain IN (subquery) the planner may run the
                # subquery more than once and lease more rows than the LIMIT.
                statement = (
                    "WITH picked AS MATERIALIZED (SELECT id FROM tasks "
                    "WHERE queue = ANY(%s) AND activity = ANY(%s) AND lease_owner IS NULL "
                    "AND available_at <= %s ORDER BY available_at LIMIT %s "
                    "FOR UPDATE SKIP LOCKED) "
                    "UPDATE tasks SET lease_owner = %s, started_at = %s, "
                    f"lease_expires_at = %s + {self.lease_length} "
                    f"FROM picked WHERE tasks.id = picked.id {returning}"
                )
            else:
                statement = (
                    "UPDATE tasks SET lease_owner = ?, started_at = ?, "
                    f"lease_expires_at = ? + {self.lease_length} "
                    "WHERE lease_owner IS NULL AND id IN (SELECT id FROM tasks "
                    f"WHERE queue IN ({', '.join(['?'] * queues)}) "
                    f"AND activity IN ({', '.join(['?'] * activities)}) "
                    "AND lease_owner IS NULL AND available_at <= ? "
                    f"ORDER BY available_at LIMIT ?) {returning}"
                )
            self._claims[(queues, activities)] = statement
        return statement

    def renew(self, tasks: int) -> str:
        """Extend the leases of a worker's running tasks, never past their timeout."""
        p = "%s" if self.postgres else "?"
        return (
            f"UPDATE tasks SET lease_expires_at = CASE WHEN timeout IS NOT NULL "
            f"AND started_at + timeout < {p} THEN started_at + timeout ELSE {p} END "
            f"WHERE lease_owner = {p} AND id IN ({', '.join([p] * tasks)})"
        )


_DIALECTS = {name: _Sql(name) for name in ("sqlite", "postgresql")}


def _driver(conn: sa.Connection) -> tuple[_Sql, Any]:
    """The statements of the connection's dialect and a cursor of its driver connection."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return _DIALECTS[conn.dialect.name], _Cursor(driver.cursor(), conn.dialect.loaded_dbapi.Error)


class _Cursor:
    """A driver cursor whose errors are SQLAlchemy's, as those of Core statements are.

    Callers rely on that: a duplicate execution id or event sequence must reach them as
    ``sa.exc.IntegrityError`` (start answers with the existing execution, a transition
    decides again) and workers ride out ``sa.exc.OperationalError``.
    """

    def __init__(self, cursor: Any, error: type[Exception]) -> None:
        self.cursor = cursor
        self.error = error

    def execute(self, statement: str, params: Any) -> None:
        try:
            self.cursor.execute(statement, params)
        except self.error as exc:
            raise sa.exc.DBAPIError.instance(statement, params, exc, self.error) from exc

    def executemany(self, statement: str, params: Any) -> None:
        try:
            self.cursor.executemany(statement, params)
        except self.error as exc:
            raise sa.exc.DBAPIError.instance(statement, params, exc, self.error) from exc

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self.cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self.cursor.rowcount)

    def close(self) -> None:
        self.cursor.close()


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
        _, cursor = _driver(conn)
        cursor.execute("SELECT 1 FROM executions WHERE id = %s FOR UPDATE", (execution_id,))
        cursor.close()


def load(
    conn: sa.Connection, execution_id: str, known: st.Execution | None = None
) -> Loaded | None:
    """The execution and its state, locked against other writers where the database can.

    ``known`` is a state the caller holds: if it is still the stored one (same run and
    sequence number) the snapshot is neither sent nor parsed.
    """
    sql, cursor = _driver(conn)
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
    sql, cursor = _driver(conn)
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
    sql, cursor = _driver(conn)
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
    sql, cursor = _driver(conn)
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
            type=r.type,
            time=r.time,
            scope=r.scope,
            state=r.state,
            details=r.details,
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
        sql, cursor = _driver(conn)
        cursor.executemany(sql.insert_task, rows)


def delete_tasks(conn: sa.Connection, ids: Iterable[str]) -> None:
    params = [(i,) for i in ids]
    if params:
        sql, cursor = _driver(conn)
        cursor.executemany(sql.delete_task, params)


def insert_timers(conn: sa.Connection, execution_id: str, new: Iterable[st.Timer]) -> None:
    rows = [(t.id, execution_id, t.due) for t in new]
    if rows:
        sql, cursor = _driver(conn)
        cursor.executemany(sql.insert_timer, rows)


def delete_timers(conn: sa.Connection, ids: Iterable[str]) -> None:
    params = [(i,) for i in ids]
    if params:
        sql, cursor = _driver(conn)
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
    sql, cursor = _driver(conn)
    cursor.execute(sql.take_owned, (task_id, owner))
    return bool(cursor.rowcount == 1)


WORK_CHANNEL = "cairn_work"
"""PostgreSQL notification channel: its payload is the queue that got claimable tasks."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Leased:
    """A task row just leased by ``claim``."""

    id: str
    execution_id: str
    activity: str
    state: str
    input: JSON
    attempt: int
    key: str
    timeout: int | None
    heartbeat: int | None
    heartbeat_details: JSON
    expires: float


def claim(
    conn: sa.Connection,
    owner: str,
    queues: Sequence[str],
    activities: Sequence[str],
    limit: int,
    lease: float,
    now: float,
) -> list[Leased]:
    """Lease up to ``limit`` available tasks of ``queues`` and ``activities`` to ``owner``."""
    sql, cursor = _driver(conn)
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
        Leased(
            id=r[0],
            execution_id=r[1],
            activity=r[2],
            state=r[3],
            input=decode(r[4]),
            attempt=r[5],
            key=r[6],
            timeout=r[7],
            heartbeat=r[8],
            heartbeat_details=decode(r[9]),
            expires=r[10],
        )
        for r in rows
    ]


def sqlite_claimable(queues: int, activities: int) -> str:
    """The SQLite look for a claimable task: now, the queues, then the activities."""
    return _DIALECTS["sqlite"].claimable(queues, activities)


def claimable(
    conn: sa.Connection, queues: Sequence[str], activities: Sequence[str], now: float
) -> bool:
    """Whether a claim would find a task (SQLite, before it takes the write lock)."""
    sql, cursor = _driver(conn)
    cursor.execute(sql.claimable(len(queues), len(activities)), (now, *queues, *activities))
    found = cursor.fetchone() is not None
    cursor.close()
    return found


def renew(conn: sa.Connection, owner: str, task_ids: Sequence[str], expires: float) -> int:
    """Extend ``owner``'s leases of ``task_ids`` to ``expires`` (or their timeout)."""
    if not task_ids:
        return 0
    sql, cursor = _driver(conn)
    cursor.execute(sql.renew(len(task_ids)), (expires, expires, owner, *task_ids))
    count = cursor.rowcount
    cursor.close()
    return int(count)


def notify_work(conn: sa.Connection, queues: Iterable[str]) -> None:
    """Tell listening workers (PostgreSQL) that these queues got tasks, once this commits."""
    if conn.dialect.name != "postgresql":
        return
    sql, cursor = _driver(conn)
    cursor.executemany(sql.notify, [(WORK_CHANNEL, q) for q in sorted(queues)])
    cursor.close()


def _as_is(value: Any) -> JSON:
    return value


def _decode(value: Any) -> JSON:
    # A JSON column has numeric affinity on SQLite: a bare number comes back as one.
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def json_size(value: JSON) -> int:
    """Bytes of ``value`` as compact JSON, the measure of the payload limit."""
    return len(json.dumps(value, separators=(",", ":")).encode())
