"""The hot statements as driver SQL, one set per dialect: the named queries of ``store``.

They run on every step of every execution, where SQLAlchemy's per-statement work (compiling,
caching, type processing) costs several times the database's own; they run on the driver
connection inside the caller's SQLAlchemy transaction, so atomicity is unchanged.  Only
``store`` runs them; cold paths there keep using SQLAlchemy Core.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


class Statements:
    """The hot statements as driver SQL for one dialect, built once."""

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
                "timeout, heartbeat, heartbeat_details"
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


DIALECTS = {name: Statements(name) for name in ("sqlite", "postgresql")}


def driver(conn: sa.Connection) -> tuple[Statements, Cursor]:
    """The statements of the connection's dialect and a cursor of its driver connection."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return DIALECTS[conn.dialect.name], Cursor(raw.cursor(), conn.dialect.loaded_dbapi.Error)


class Cursor:
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
