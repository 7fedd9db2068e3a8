"""The read side: what people and programs see of executions, their histories and
definitions.

Functions over a read connection, apart from the write path: nothing here decides, writes or
keeps anything, so a view can change shape without going near a transition.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from cairn import errors
from cairn.core import events, evolve, expressions, model, step
from cairn.core import state as st
from cairn.jsontypes import JSON
from cairn.runtime import refusals, store, tables


def view(row: Any) -> dict[str, Any]:
    """An execution as every reader sees it, from its row or from its state."""
    return {
        "id": row.id,
        "workflow": row.workflow,
        "version": row.version,
        "run": row.run,
        "status": row.status,
        "input": row.input,
        "output": row.output,
        "error": row.error,
        "cause": row.cause,
        "parent": getattr(row, "parent", None),
        "started_at": step.iso(row.started_at),
        "closed_at": step.iso(row.closed_at),
    }


def describe(conn: sa.Connection, execution_id: str) -> dict[str, Any]:
    """The execution's view."""
    row = store.execution_view_row(conn, execution_id)
    if row is None:
        raise errors.NotFound(f"no execution {execution_id!r}")
    return view(row)


def inspect(conn: sa.Connection, execution_id: str) -> dict[str, Any]:
    """The execution's view plus where it stands: active states, tasks, timers, signals."""
    row = store.execution_row(conn, execution_id)
    if row is None:
        raise errors.NotFound(f"no execution {execution_id!r}")
    state = st.from_json(row.snapshot)
    found = view(row)
    found["states"] = [
        {
            "scope": f.scope,
            "state": f.state,
            "entered_at": step.iso(f.entered_at),
            "input": f.input,
        }
        for f in state.frames.values()
    ]
    found["tasks"] = [
        {
            "state": t.state,
            "activity": t.activity,
            "attempt": t.attempt,
            "key": t.key,
            "worker": t.worker,
            "compensates": t.compensates,
        }
        for t in state.tasks.values()
    ]
    found["timers"] = [
        {"state": t.state, "purpose": t.purpose, "due": step.iso(t.due)}
        for t in state.timers.values()
    ]
    found["signals"] = [{"name": s.name, "payload": s.payload} for s in state.signals]
    found["compensated"] = [c.state for c in state.completions if c.compensated]
    found["refused"] = refusals.listing(conn, execution_id)
    return found


def query(spec: model.Definition, row: Any, name: str) -> JSON:
    """Evaluate the definition's named query over the execution's current data (no writes).

    The current data is the input of the state the top level stands at, or the output
    once the execution succeeded.
    """
    if name not in spec.queries:
        known = ", ".join(sorted(spec.queries)) or "none"
        raise errors.NotFound(
            f"{spec.name}@{spec.version} has no query {name!r} (queries: {known})"
        )
    state = st.from_json(row.snapshot)
    top = state.frames.get("")
    data = top.input if top is not None else state.output
    try:
        return spec.queries[name].evaluate(data, {})
    except expressions.DataError as exc:
        # The execution's data, not the request, does not fit: said, not a traceback.
        raise errors.CairnError(f"query {name!r} of {spec.name}@{spec.version}: {exc}") from exc


def executions(
    conn: sa.Connection,
    *,
    status: str | None = None,
    workflow: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Executions, newest first, optionally of one status or workflow."""
    E = tables.executions
    query = sa.select(E).order_by(E.c.started_at.desc()).limit(limit)
    if status is not None:
        query = query.where(E.c.status == status)
    if workflow is not None:
        query = query.where(E.c.workflow == workflow)
    return [view(row) for row in conn.execute(query)]


def definitions(conn: sa.Connection, name: str | None = None) -> list[dict[str, Any]]:
    """Deployed versions side by side, with their running and total executions."""
    D, E = tables.definitions, tables.executions
    running = sa.func.sum(sa.case((E.c.status == "RUNNING", 1), else_=0))
    counts = (
        sa.select(
            E.c.workflow, E.c.version, running.label("running"), sa.func.count().label("total")
        )
        .group_by(E.c.workflow, E.c.version)
        .subquery()
    )
    query = (
        sa.select(
            D.c.name, D.c.version, D.c.sha256, D.c.deployed_at, counts.c.running, counts.c.total
        )
        .outerjoin(counts, sa.and_(counts.c.workflow == D.c.name, counts.c.version == D.c.version))
        .order_by(D.c.name, D.c.version)
    )
    if name is not None:
        query = query.where(D.c.name == name)
    return [
        {
            "name": r.name,
            "version": r.version,
            "sha256": r.sha256,
            "deployed_at": step.iso(r.deployed_at),
            "running": int(r.running or 0),
            "executions": int(r.total or 0),
        }
        for r in conn.execute(query)
    ]


def replay(conn: sa.Connection, execution_id: str) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """Re-fold the current run's history; whether it equals the stored snapshot, and both."""
    row = store.execution_row(conn, execution_id)
    if row is None:
        raise errors.NotFound(f"no execution {execution_id!r}")
    history = store.history(conn, execution_id, run=row.run)
    folded = json.loads(json.dumps(st.to_json(evolve.fold(history))))
    # Read through the model, so that a snapshot written before a field was added (and
    # so without it) compares by its meaning; an unknown field still fails to load.
    stored = json.loads(json.dumps(st.to_json(st.from_json(row.snapshot))))
    return folded == stored, folded, stored


def history(conn: sa.Connection, execution_id: str) -> list[events.Event]:
    """Every event of the execution, all runs, in order."""
    if store.execution_row(conn, execution_id) is None:
        raise errors.NotFound(f"no execution {execution_id!r}")
    return store.history(conn, execution_id)
