"""The database schema, on one MetaData, for SQLite and PostgreSQL alike.

Times are epoch seconds (floats) so that due-time comparisons are plain numeric comparisons
on both databases; JSON columns are JSONB on PostgreSQL and text on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

SCHEMA_VERSION = 3
"""Bumped by every change to the tables below, with a step in ``runtime.database.migrate``."""

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

metadata = sa.MetaData()

schema_version = sa.Table(
    "cairn_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

definitions = sa.Table(
    "definitions",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("body", JSONType, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("deployed_at", sa.Float, nullable=False),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("run", sa.Integer, nullable=False),
    sa.Column("workflow", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("input", JSONType),
    sa.Column("output", JSONType),
    sa.Column("error", sa.Text),
    sa.Column("cause", sa.Text),
    sa.Column("parent", sa.String(200)),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("snapshot", JSONType, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("closed_at", sa.Float),
    sa.Index("executions_by_status", "status", "workflow", "version"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("execution_id", sa.String(200), primary_key=True),
    sa.Column("run", sa.Integer, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("state", sa.Text),
    sa.Column("details", JSONType, nullable=False),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(300), primary_key=True),
    sa.Column("execution_id", sa.String(200), nullable=False),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("activity", sa.String(200), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("input", JSONType),
    sa.Column("timeout", sa.Integer),
    sa.Column("heartbeat", sa.Integer),
    sa.Column("available_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("started_at", sa.Float),
    sa.Column("heartbeat_details", JSONType),
    sa.Index("tasks_claimable", "queue", "activity", "available_at"),
    sa.Index("tasks_by_lease", "lease_expires_at"),
    sa.Index("tasks_by_execution", "execution_id"),
)

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("id", sa.String(300), primary_key=True),
    sa.Column("execution_id", sa.String(200), nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Index("timers_by_due", "due_at"),
    sa.Index("timers_by_execution", "execution_id"),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("queues", JSONType, nullable=False),
    sa.Column("activities", JSONType, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("lease", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("slot_restarts", sa.Integer, nullable=False, server_default="0"),
    sa.Index("workers_by_expiry", "expires_at"),
)
"""Running workers; a row whose ``expires_at`` passed belongs to a worker presumed dead."""

refused_outcomes = sa.Table(
    "refused_outcomes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(200), nullable=False),
    sa.Column("task_id", sa.String(300), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("activity", sa.String(200), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("worker", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("result", JSONType),
    sa.Column("error", sa.Text),
    sa.Column("cause", sa.Text),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("refused_at", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("refused_by_execution", "execution_id"),
)
"""Outcomes that came after their worker had lost the lease: kept, never applied.

Not events: the history holds what happened to the execution, and a refused outcome changed
nothing there.  A row per refusal lets an operator see which attempts ran more than once and
where, without every reader of a history having to skip entries that fold to nothing.
"""
