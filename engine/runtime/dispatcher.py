"""The worker's side of the engine: lease tasks, record their outcomes, keep leases alive.

A ``Worker`` holds a ``Dispatcher`` and nothing else of the engine: what it may do to the
database is what this class offers (claim, finish, renew, beat, release, fire due timers,
expire leases) and how its idle slots wait for the write path to hand them tasks.  It is
built on the same ``Writer`` as the client of the process, so that a task queued by one is
handed to an idle slot of the other in the transaction that queues it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import sqlalchemy as sa

from cairn.core import commands, names
from cairn.jsontypes import JSON
from cairn.runtime import handoff, leasing, payloads, refusals, roster, store, wakeup, writer


class Dispatcher:
    """The worker protocol on one write path."""

    def __init__(self, write_path: writer.Writer) -> None:
        self.writer = write_path
        self.clock = write_path.clock
        self.work = write_path.work
        """Notified when tasks may be claimable (see ``Writer.work``)."""
        # Every result is checked against the payload limit's setting: a bad one stops the
        # worker here, with its reason, before it claims a task it could not finish.
        payloads.size_limit()

    # -- leasing and recording -----------------------------------------------------------
    def claim(self, offer: leasing.Offer) -> list[leasing.Claim]:
        """Lease up to ``offer.slots`` available tasks of the offered queues and activities.

        One statement leases them all: on PostgreSQL a single round trip in which claimers
        skip each other's locked rows.  Only task rows change: TaskStarted is recorded with
        the task's outcome, so a claim never touches the execution.
        """
        if not offer.queues or not offer.activities or offer.slots < 1:
            return []
        queues, activities = sorted(offer.queues), sorted(offer.activities)
        now = self.clock()
        args = (offer.worker, queues, activities, offer.slots, offer.lease, now)
        db = self.writer.db
        if db.dialect.name == "postgresql":
            with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                return store.claim(conn, *args)
        # Look before locking: idle workers must not queue for SQLite's one write lock.
        with self.writer.read() as conn:
            if not store.claimable(conn, queues, activities, now):
                return []
        with self.writer.write() as conn:
            return store.claim(conn, *args)

    def finish(
        self,
        claim: leasing.Claim,
        worker: str,
        outcome: commands.CompleteTask | commands.FailTask,
        offer: leasing.Offer | None = None,
    ) -> list[leasing.Claim] | None:
        """Record a task's outcome (and claim what follows).

        None if ``worker`` lost the lease: the outcome is then recorded as refused
        (``runtime.refusals``), never applied, since the task went back to the queue or is
        done.
        """
        started = leasing.Started(task_id=claim.task_id, worker=worker, at=claim.started_at)

        def record(conn: sa.Connection) -> list[leasing.Claim] | None:
            store.lock(conn, claim.execution_id)
            if not store.take_owned(conn, claim.task_id, worker):
                refusals.record(conn, claim, worker, outcome, self.clock())
                return None
            _, claims = self.writer.apply(conn, claim.execution_id, [outcome], offer, started)
            return claims

        return self.writer.retrying(record)

    def renew(self, claim: leasing.Claim, worker: str, details: JSON = None) -> bool:
        """Extend a lease (a heartbeat); False when the worker no longer holds it."""
        expires = self.clock() + leasing.lease_for(claim.heartbeat, None, claim.lease)
        if claim.deadline is not None:
            expires = min(expires, claim.deadline)
        with self.writer.write() as conn:
            return store.extend_lease(conn, claim.task_id, worker, expires, details)

    def beat(self, presence: roster.Presence, running: Collection[leasing.Claim] = ()) -> None:
        """A worker's heartbeat: it is alive, and so are its running tasks (``roster.beat``)."""
        now = self.clock()
        with self.writer.write() as conn:
            roster.beat(conn, presence, running, now)

    def release(self, worker: str, task_ids: Collection[str] | None = None) -> int:
        """A stopping worker hands back its tasks (same attempt, same key) and leaves.

        With ``task_ids``, only those tasks go back and the worker stays registered.
        """
        with self.writer.write() as conn:
            queues = store.release(conn, worker, task_ids, self.clock())
            writer.queued(conn, queues)
            if task_ids is None:
                roster.leave(conn, worker)
        return len(queues)

    # -- what comes due ------------------------------------------------------------------
    def fire_due_timers(self, limit: int = 100) -> int:
        """Fire timers whose time has come; returns how many fired."""
        now = self.clock()
        with self.writer.read() as conn:
            due = store.due_timers(conn, now, limit)
        fired = 0
        for row in due:
            with self.writer.write() as conn:
                store.lock(conn, row.execution_id)
                if not store.take_timer(conn, row.id):
                    continue
                self.writer.apply(conn, row.execution_id, [commands.FireTimer(timer_id=row.id)])
            fired += 1
        return fired

    def next_timer(self) -> float | None:
        """When the next timer is due, if any."""
        with self.writer.read() as conn:
            return store.next_due(conn)

    def expire_leases(self) -> int:
        """Time out tasks past their deadline; put back tasks whose worker vanished."""
        now = self.clock()
        with self.writer.read() as conn:
            expired = store.expired_leases(conn, now)
        for row in expired:
            with self.writer.write() as conn:
                store.lock(conn, row.execution_id)
                if not store.take_expired(conn, row, now):
                    continue
                if row.timeout is not None and now >= row.started_at + row.timeout:
                    error, cause = names.TIMEOUT, f"no result within {row.timeout}s"
                elif row.heartbeat is not None:
                    error, cause = names.HEARTBEAT_TIMEOUT, f"no heartbeat for {row.heartbeat}s"
                else:
                    # The worker died: the same attempt goes back to the queue, same key.
                    store.requeue(conn, row, now)
                    writer.queued(conn, [row.queue])
                    continue
                # A polled claim has no TaskStarted yet: name the worker the attempt ran on.
                started = leasing.Started(task_id=row.id, worker=row.lease_owner, at=row.started_at)
                timed_out = commands.TimeOutTask(
                    task_id=row.id,
                    error=error,
                    cause=cause,
                    heartbeat_details=row.heartbeat_details,
                )
                self.writer.apply(conn, row.execution_id, [timed_out], None, started)
        return len(expired)

    # -- idle slots (see runtime.handoff) ------------------------------------------------
    def park(
        self, offer: leasing.Offer, on_parked: Callable[[], None] | None = None
    ) -> leasing.Claim | None:
        """Wait, idle, until handed a task; None when the worker stops (``Slots.park``)."""
        return self.writer.slots.park(offer, on_parked)

    def idle_slots(self, worker: str) -> list[handoff.Parked]:
        """Take ``worker``'s idle slots out of the hand-off pool, to claim tasks for them."""
        return self.writer.slots.idle(worker)

    def return_slots(self, slots: Collection[handoff.Parked]) -> None:
        """Slots taken by ``idle_slots`` that got nothing wait again (or end, when stopping)."""
        self.writer.slots.put_back(slots)

    def unpark(self, worker: str) -> None:
        """A stopping worker's idle slots take nothing more."""
        self.writer.slots.unpark(worker)
        self.work.notify()

    def listen(self, queues: Collection[str], activities: Collection[str]) -> wakeup.Listener:
        """News of tasks queued by other processes (see ``runtime.wakeup``)."""
        return wakeup.listen(self.writer.db, queues, activities, self.clock)
