"""Cairn's one entry point: every operation on a database, built on the write path.

``Service`` is what the CLI, the worker, the benchmarks and programs hold.  How a change of
an execution is decided and written is the write path's (``runtime.shell``); this module adds
what callers do with it: deploy definitions, lease tasks to workers and record their
outcomes, talk to executions (signals, cancellation, callbacks, redrive), read them
(``runtime.views``) and wait for them to close.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from cairn import errors
from cairn.core import events, names
from cairn.core import state as st
from cairn.definitions import document as definition
from cairn.jsontypes import JSON
from cairn.runtime import database, handoff, leasing, refusals, roster, shell, store, tables, views


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployed:
    name: str
    version: int
    sha256: str
    created: bool


class Service(shell.Shell):
    """Cairn's operations on one database: deploy, start, signal, work, inspect."""

    # -- definitions ---------------------------------------------------------------------
    def deploy(self, document: definition.Document) -> Deployed:
        """Register a version; identical content again is a no-op, different content refused."""
        name, version = document.name, document.version
        with self.write() as conn:
            row = store.definition_row(conn, name, version)
            if row is not None:
                if row.sha256 != document.sha256:
                    raise errors.Conflict(
                        f"{name} version {version} is already deployed with different content "
                        f"(sha256 {row.sha256[:12]}); deployed versions are immutable, "
                        f"give this one a new Version"
                    )
                return Deployed(name=name, version=version, sha256=row.sha256, created=False)
            conn.execute(
                tables.definitions.insert().values(
                    name=name,
                    version=version,
                    sha256=document.sha256,
                    body=document.body,
                    source=document.source,
                    deployed_at=self.clock(),
                )
            )
        return Deployed(name=name, version=version, sha256=document.sha256, created=True)

    # -- worker protocol -----------------------------------------------------------------
    def claim(self, offer: leasing.Offer) -> list[leasing.Claim]:
        """Lease up to ``offer.slots`` available tasks of the offered queues and activities.

        One statement leases them all: on PostgreSQL a single round trip in which claimers
        skip each other's locked rows.  Only task rows change: TaskStarted is recorded with
        the task's outcome, so a claim never touches the execution.
        """
        if not offer.queues or not offer.activities or offer.slots < 1:
            return []
        queues, names = sorted(offer.queues), sorted(offer.activities)
        now = self.clock()
        args = (offer.worker, queues, names, offer.slots, offer.lease, now)
        if self.db.dialect.name == "postgresql":
            with self.db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                leased = store.claim(conn, *args)
        else:
            # Look before locking: idle workers must not queue for SQLite's one write lock.
            with self.read() as conn:
                if not store.claimable(conn, queues, names, now):
                    return []
            with self.write() as conn:
                leased = store.claim(conn, *args)
        return [leasing.claim(row.execution_id, row, now, offer.lease) for row in leased]

    def finish(
        self,
        claim: leasing.Claim,
        worker: str,
        outcome: events.CompleteTask | events.FailTask,
        offer: leasing.Offer | None = None,
    ) -> list[leasing.Claim] | None:
        """Record a task's outcome (and claim what follows).

        None if ``worker`` lost the lease: the outcome is then recorded as refused (see
        ``refused``), never applied, since the task went back to the queue or is done.
        """
        started = leasing.Started(task_id=claim.task_id, worker=worker, at=claim.started_at)
        for attempt in range(shell.CONFLICT_RETRIES):
            try:
                with self.write() as conn:
                    store.lock(conn, claim.execution_id)
                    if not store.take_owned(conn, claim.task_id, worker):
                        refusals.record(conn, claim, worker, outcome, self.clock())
                        return None
                    state, claims = self._transition(
                        conn, claim.execution_id, [outcome], offer, started
                    )
                    parent_closed = conn.info.pop(shell.PARENT_CLOSED, False)
                self._announce(state, parent_closed)
                return claims
            except sa.exc.DBAPIError as exc:
                if attempt == shell.CONFLICT_RETRIES - 1 or not shell.lost_race(exc):
                    raise
            except store.ConcurrencyConflict:
                if attempt == shell.CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def refused(self, execution_id: str | None = None) -> list[dict[str, Any]]:
        """Outcomes refused because their worker had lost the lease, oldest first."""
        with self.read() as conn:
            return refusals.listing(conn, execution_id)

    def renew(self, claim: leasing.Claim, worker: str, details: JSON = None) -> bool:
        """Extend a lease (a heartbeat); False when the worker no longer holds it."""
        T = tables.tasks
        expires = self.clock() + leasing.lease_for(claim.heartbeat, None, claim.lease)
        if claim.deadline is not None:
            expires = min(expires, claim.deadline)
        values: dict[str, Any] = {"lease_expires_at": expires}
        if details is not None:
            values["heartbeat_details"] = details
        with self.write() as conn:
            result = conn.execute(
                T.update()
                .where(T.c.id == claim.task_id, T.c.lease_owner == worker)
                .values(**values)
            )
        return result.rowcount == 1

    def beat(self, presence: roster.Presence, running: Collection[leasing.Claim] = ()) -> None:
        """A worker's heartbeat: it is alive, and so are its running tasks (``roster.beat``)."""
        now = self.clock()
        with self.write() as conn:
            roster.beat(conn, presence, running, now)

    def release(self, worker: str, task_ids: Collection[str] | None = None) -> int:
        """A stopping worker hands back its tasks (same attempt, same key) and leaves.

        With ``task_ids``, only those tasks go back and the worker stays registered.
        """
        T = tables.tasks
        held = T.c.lease_owner == worker
        if task_ids is not None:
            held = sa.and_(held, T.c.id.in_(list(task_ids)))
        with self.write() as conn:
            queues = [r.queue for r in conn.execute(sa.select(T.c.queue).where(held))]
            if queues:
                conn.execute(
                    T.update()
                    .where(held)
                    .values(
                        lease_owner=None,
                        lease_expires_at=None,
                        started_at=None,
                        available_at=self.clock(),
                    )
                )
                conn.info.setdefault(shell.UNLEASED, set()).update(queues)
            if task_ids is None:
                roster.leave(conn, worker)
        return len(queues)

    def workers(self, *, everyone: bool = False) -> list[dict[str, Any]]:
        """Registered workers with the tasks they hold; only live ones unless ``everyone``."""
        now = self.clock()
        with self.read() as conn:
            return roster.listing(conn, now, everyone=everyone)

    def fire_due_timers(self, limit: int = 100) -> int:
        """Fire timers whose time has come; returns how many fired."""
        TM = tables.timers
        now = self.clock()
        with self.read() as conn:
            due = conn.execute(
                sa.select(TM.c.id, TM.c.execution_id)
                .where(TM.c.due_at <= now)
                .order_by(TM.c.due_at)
                .limit(limit)
            ).all()
        fired = 0
        for row in due:
            with self.write() as conn:
                store.lock(conn, row.execution_id)
                if conn.execute(TM.delete().where(TM.c.id == row.id)).rowcount != 1:
                    continue
                self.transition(row.execution_id, [events.FireTimer(timer_id=row.id)], conn=conn)
            fired += 1
        if fired:
            self.closed.notify()
        return fired

    def expire_leases(self) -> int:
        """Time out tasks past their deadline; put back tasks whose worker vanished."""
        T = tables.tasks
        now = self.clock()
        with self.read() as conn:
            expired = conn.execute(
                sa.select(T).where(T.c.lease_owner.is_not(None), T.c.lease_expires_at <= now)
            ).all()
        for row in expired:
            with self.write() as conn:
                store.lock(conn, row.execution_id)
                gone = conn.execute(
                    T.delete().where(
                        T.c.id == row.id,
                        T.c.lease_owner == row.lease_owner,
                        T.c.lease_expires_at <= now,
                    )
                ).rowcount
                if gone != 1:
                    continue
                if row.timeout is not None and now >= row.started_at + row.timeout:
                    error, cause = names.TIMEOUT, f"no result within {row.timeout}s"
                elif row.heartbeat is not None:
                    error, cause = names.HEARTBEAT_TIMEOUT, f"no heartbeat for {row.heartbeat}s"
                else:
                    # The worker died: the same attempt goes back to the queue, same key.
                    values = dict(row._mapping)
                    values.update(lease_owner=None, lease_expires_at=None, started_at=None)
                    values["available_at"] = now
                    conn.execute(T.insert().values(**values))
                    conn.info.setdefault(shell.UNLEASED, set()).add(row.queue)
                    continue
                # A polled claim has no TaskStarted yet: name the worker the attempt ran on.
                started = leasing.Started(task_id=row.id, worker=row.lease_owner, at=row.started_at)
                timed_out = events.TimeOutTask(
                    task_id=row.id,
                    error=error,
                    cause=cause,
                    heartbeat_details=row.heartbeat_details,
                )
                self._transition(conn, row.execution_id, [timed_out], None, started)
        if expired:
            self.closed.notify()
        return len(expired)

    # -- talking to executions -----------------------------------------------------------
    def signal(self, execution_id: str, name: str, payload: JSON = None) -> None:
        self._require_running(execution_id)
        payload = shell.plain(payload, "the signal payload")
        self.transition(execution_id, [events.Signal(name=name, payload=payload)])

    def cancel(self, execution_id: str, reason: str = "") -> None:
        self._require_running(execution_id)
        self.transition(execution_id, [events.Cancel(reason=reason)])

    def complete(
        self,
        token: str,
        output: JSON = None,
        *,
        error: str | None = None,
        cause: str = "",
    ) -> None:
        """Complete a callback task by its token: with ``output``, or failed with ``error``."""
        command: events.Command
        if error is None:
            output = shell.plain(output, "the output")
            command = events.CompleteTask(task_id=token, result=output, token=True)
        else:
            command = events.FailTask(task_id=token, error=error, cause=cause)
        self._by_token(token, command)

    def heartbeat(self, token: str) -> None:
        """Tell a callback task's HeartbeatSeconds that the outside work goes on."""
        self._by_token(token, events.Heartbeat(task_id=token))

    def _by_token(self, token: str, command: events.Command) -> None:
        execution_id = token.rsplit(":", 2)[0]
        if token.count(":") < 2 or self._row(execution_id) is None:
            raise errors.UnknownTaskToken(f"unknown task token {token!r}")
        # Looked up and applied in one transaction, the execution locked: of two completions
        # of one token that race, the second finds the task gone and is refused (checked
        # before the transaction, both passed and the second was dropped without a word).
        for attempt in range(shell.CONFLICT_RETRIES):
            try:
                with self.write() as conn:
                    store.lock(conn, execution_id)
                    loaded = store.load(conn, execution_id, self._states.get(execution_id))
                    task = None if loaded is None else loaded.state.tasks.get(token)
                    if task is None:
                        raise errors.UnknownTaskToken(
                            f"task token {token!r} is not waiting: it was completed, timed out "
                            "or cancelled"
                        )
                    if not task.callback:
                        raise errors.UnknownTaskToken(
                            f"{token!r} is a task of state {task.state!r}, which is not a "
                            "Callback: true task; its worker completes it"
                        )
                    state, _ = self._transition(conn, execution_id, [command], None)
                    parent_closed = conn.info.pop(shell.PARENT_CLOSED, False)
                self._announce(state, parent_closed)
                return
            except sa.exc.DBAPIError as exc:
                if attempt == shell.CONFLICT_RETRIES - 1 or not shell.lost_race(exc):
                    raise
            except store.ConcurrencyConflict:
                if attempt == shell.CONFLICT_RETRIES - 1:
                    raise

    def redrive(self, execution_id: str) -> dict[str, Any]:
        """Resume a failed or timed-out execution where it stopped; completed steps stay done."""
        row = self._row(execution_id)
        if row is None:
            raise errors.NotFound(f"no execution {execution_id!r}")
        if row.status not in ("FAILED", "TIMED_OUT"):
            raise errors.Conflict(
                f"execution {execution_id!r} is {row.status}; only FAILED or "
                "TIMED_OUT executions can be redriven"
            )
        state, _ = self.transition(execution_id, [events.Redrive()])
        if state.status in ("FAILED", "TIMED_OUT") and state.seq == row.seq:
            stopped = st.from_json(row.snapshot).resume
            where = f"at its Fail state {stopped.state!r}" if stopped else "before any state"
            raise errors.Conflict(
                f"execution {execution_id!r} stopped {where}; redriving would only fail again"
            )
        return self.describe(execution_id)

    def _require_running(self, execution_id: str) -> None:
        row = self._row(execution_id)
        if row is None:
            raise errors.NotFound(f"no execution {execution_id!r}")
        if row.status != "RUNNING":
            raise errors.Conflict(f"execution {execution_id!r} is {row.status}, not running")

    # -- idle slots (see runtime.handoff) ---------------------------------------
    def park(
        self, offer: leasing.Offer, on_parked: Callable[[], None] | None = None
    ) -> leasing.Claim | None:
        """Wait, idle, until handed a task; None when the worker stops (``Slots.park``)."""
        return self._slots.park(offer, on_parked)

    def idle_slots(self, worker: str) -> list[handoff.Parked]:
        """Take ``worker``'s idle slots out of the hand-off pool, to claim tasks for them."""
        return self._slots.idle(worker)

    def return_slots(self, slots: Collection[handoff.Parked]) -> None:
        """Slots taken by ``idle_slots`` that got nothing wait again (or end, when stopping)."""
        self._slots.put_back(slots)

    def unpark(self, worker: str) -> None:
        """A stopping worker's idle slots take nothing more."""
        self._slots.unpark(worker)
        self.work.notify()

    # -- reading (see runtime.views) ----------------------------------------------
    def describe(self, execution_id: str) -> dict[str, Any]:
        """The execution's view."""
        with self.read() as conn:
            return views.describe(conn, execution_id)

    def inspect(self, execution_id: str) -> dict[str, Any]:
        """The execution's view plus where it stands: active states, tasks, timers, signals."""
        with self.read() as conn:
            return views.inspect(conn, execution_id)

    def query(self, execution_id: str, name: str) -> JSON:
        """Evaluate the definition's named query over the execution's current data (no writes)."""
        row = self._row(execution_id)
        if row is None:
            raise errors.NotFound(f"no execution {execution_id!r}")
        return views.query(self.definition(row.workflow, row.version), row, name)

    def executions(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Executions, newest first, optionally of one status or workflow."""
        with self.read() as conn:
            return views.executions(conn, status=status, workflow=workflow, limit=limit)

    def definitions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Deployed versions side by side, with their running and total executions."""
        with self.read() as conn:
            return views.definitions(conn, name)

    def replay(self, execution_id: str) -> tuple[bool, dict[str, Any], dict[str, Any]]:
        """Re-fold the current run's history; whether it equals the stored snapshot, and both."""
        with self.read() as conn:
            return views.replay(conn, execution_id)

    def history(self, execution_id: str) -> list[events.Event]:
        """Every event of the execution, all runs, in order."""
        with self.read() as conn:
            return views.history(conn, execution_id)

    def wait(self, execution_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the execution closes (or ``timeout`` passes); returns its view."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = self.closed.generation
        # While this process drives the execution, its closing is announced here; after a
        # quiet half second (or for an execution driven elsewhere) read the database.
        local = execution_id in self._states
        while True:
            view = self._recently_closed.get(execution_id)
            if view is None and not local:
                view = self.describe(execution_id)
            if view is not None and view["status"] != "RUNNING":
                return view
            if deadline is not None and time.monotonic() >= deadline:
                return view or self.describe(execution_id)
            new = self.closed.wait(seen, 0.5)
            local = local and new != seen
            seen = new


def open_service(url: str | None = None) -> Service:
    """A service on the database at ``url`` (or ``CAIRN_DATABASE_URL``, or ./cairn.db)."""
    return Service(database.connect(url))
