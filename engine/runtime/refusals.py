"""Refused outcomes: results that came after their worker had lost the task's lease.

Such an outcome is never applied: the task went back to the queue, or another worker
finished it.  It is kept, with the reason it was refused, so that people can see what the
late worker brought (``cairn describe`` lists it) instead of it vanishing without a word.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cairn.core import commands, step
from cairn.runtime import leasing, tables


def record(
    conn: sa.Connection,
    claim: leasing.Claim,
    worker: str,
    outcome: commands.CompleteTask | commands.FailTask,
    now: float,
) -> None:
    """Keep an outcome that came after its worker lost the lease, with why it lost it."""
    T = tables.tasks
    row = conn.execute(sa.select(T.c.lease_owner).where(T.c.id == claim.task_id)).first()
    if row is None:
        reason = "the task is no longer pending: done by another worker, timed out or cancelled"
    elif row.lease_owner is None:
        reason = "the lease expired; the task waits for another worker"
    else:
        reason = f"the lease expired; worker {row.lease_owner} holds the task now"
    brought: dict[str, Any]
    if isinstance(outcome, commands.FailTask):
        brought = {"outcome": "failed", "error": outcome.error, "cause": outcome.cause}
    else:
        brought = {"outcome": "succeeded", "result": outcome.result}
    conn.execute(
        tables.refused_outcomes.insert().values(
            execution_id=claim.execution_id,
            task_id=claim.task_id,
            state=claim.state,
            activity=claim.activity,
            attempt=claim.attempt,
            key=claim.key,
            worker=worker,
            started_at=claim.started_at,
            refused_at=now,
            reason=reason,
            **brought,
        )
    )


def listing(conn: sa.Connection, execution_id: str | None = None) -> list[dict[str, Any]]:
    """Outcomes refused because their worker had lost the lease, oldest first."""
    R = tables.refused_outcomes
    query = sa.select(R).order_by(R.c.id)
    if execution_id is not None:
        query = query.where(R.c.execution_id == execution_id)
    rows = conn.execute(query).all()
    return [
        {
            "execution_id": r.execution_id,
            "task_id": r.task_id,
            "state": r.state,
            "activity": r.activity,
            "attempt": r.attempt,
            "key": r.key,
            "worker": r.worker,
            "outcome": r.outcome,
            "result": r.result,
            "error": r.error,
            "cause": r.cause,
            "started_at": step.iso(r.started_at),
            "refused_at": step.iso(r.refused_at),
            "reason": r.reason,
        }
        for r in rows
    ]
