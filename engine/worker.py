"""The worker: claims tasks it can run, runs them, records outcomes, fires due timers.

Workers pull; nothing pushes.  Each slot thread reads top to bottom: stop flag, claim, run,
record (claiming the next task in the same transaction), repeat.  One maintenance thread
fires due timers, expires dead leases and renews the leases of long activities.  A stop
lets running activities finish within a grace period, then hands back what is left so
another worker can take it at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import sqlalchemy as sa

from engine import activities, events, invoke, service, tables
from engine.expressions import JSON

log = logging.getLogger("cairn.worker")

RENEW_EVERY = service.DEFAULT_LEASE / 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One thing a worker did, for people watching it."""

    kind: str  # started | succeeded | failed | lost
    claim: service.Claim
    detail: str = ""


@dataclass(slots=True)
class _InFlight:
    claim: service.Claim
    since: float = field(default_factory=time.monotonic)


class Worker:
    """Runs the activities of ``registry`` for tasks of ``queues``, with ``concurrency`` slots."""

    def __init__(
        self,
        svc: service.Service,
        registry: activities.Registry,
        *,
        queues: Collection[str] = ("default",),
        concurrency: int = 4,
        poll: float = 0.2,
        grace: float = 30.0,
        worker_id: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.service = svc
        self.registry = registry
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.poll = poll
        self.grace = grace
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.on_progress = on_progress
        self.stopping = threading.Event()
        self._in_flight: dict[str, _InFlight] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def offer(self) -> service.Offer:
        return service.Offer(
            worker=self.id, queues=self.queues, activities=tuple(self.registry), slots=1
        )

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the slot threads and the maintenance thread; returns at once."""
        for n in range(self.concurrency):
            self._spawn(self._slot, f"cairn-slot-{n}")
        self._spawn(self._maintain, "cairn-maintenance")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, grace: float | None = None) -> int:
        """Stop claiming, wait for running activities, release the rest; returns how many."""
        self.stopping.set()
        self.service.unpark(self.id)
        deadline = time.monotonic() + (self.grace if grace is None else grace)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self._release()

    def _release(self) -> int:
        """Hand back tasks still running after the grace period, same attempt, same key."""
        T = tables.tasks
        with self.service.write() as conn:
            released = conn.execute(
                T.update()
                .where(T.c.lease_owner == self.id)
                .values(
                    lease_owner=None,
                    lease_expires_at=None,
                    started_at=None,
                    available_at=self.service.clock(),
                )
            ).rowcount
        return int(released)

    # -- the slot loop --------------------------------------------------------------------
    def _slot(self) -> None:
        claim: service.Claim | None = None
        seen = -1  # the work mark at the last look; -1: never looked
        next_look = 0.0
        while not self.stopping.is_set():
            if claim is None:
                # Look in the database when work was queued in this process since the last
                # look, or every ``poll`` seconds for work queued by other processes.
                if seen != self.service.work_seen or time.monotonic() >= next_look:
                    seen = self.service.work_seen
                    next_look = time.monotonic() + self.poll
                    claim = self._claim_one()
                if claim is None:
                    # Idle: a task created in this process is handed over directly.
                    wait = max(0.0, next_look - time.monotonic())
                    claim = self.service.park(self.offer, wait, seen)
            if claim is not None:
                claim = self._run(claim)

    def _claim_one(self) -> service.Claim | None:
        try:
            claims = self.service.claim(self.offer)
        except sa.exc.OperationalError as exc:
            log.warning("claim failed, will retry: %s", exc)
            return None
        return claims[0] if claims else None

    def _run(self, claim: service.Claim) -> service.Claim | None:
        """Run one claimed task and record it; returns the next task claimed in passing."""
        ctx = invoke.Context(
            execution_id=claim.execution_id,
            state=claim.state,
            activity=claim.activity,
            task_id=claim.task_id,
            attempt=claim.attempt,
            idempotency_key=claim.key,
            heartbeat_details=claim.heartbeat_details,
            _beat=lambda details: self._heartbeat(claim, details),
        )
        self._report("started", claim)
        with self._lock:
            self._in_flight[claim.task_id] = _InFlight(claim)
        try:
            outcome = invoke.invoke(self.registry[claim.activity], claim.input, ctx)
        finally:
            with self._lock:
                self._in_flight.pop(claim.task_id, None)
        offer = None if self.stopping.is_set() else self.offer
        try:
            following = self.service.finish(claim, self.id, outcome, offer)  # type: ignore[arg-type]
        except sa.exc.OperationalError as exc:
            # Nothing was recorded: the lease runs out and the task comes back, same key.
            # The slot lives on; letting the error end its thread would lose it for good.
            log.warning("could not record %s, it will run again: %s", claim.task_id, exc)
            self._report("lost", claim, f"could not record the outcome: {exc}")
            return None
        if following is None:
            self._report("lost", claim, "the lease expired; another worker owns this task now")
            return None
        if isinstance(outcome, events.FailTask):
            self._report("failed", claim, f"{outcome.error}: {outcome.cause}")
        else:
            self._report("succeeded", claim)
        return following[0] if following else None

    def _heartbeat(self, claim: service.Claim, details: JSON) -> bool:
        """Renew the lease for an activity; a database hiccup is not the activity's failure."""
        try:
            return self.service.renew(claim, self.id, details)
        except sa.exc.OperationalError as exc:
            log.warning("heartbeat of %s not recorded, will try again: %s", claim.task_id, exc)
            return True

    def _report(self, kind: str, claim: service.Claim, detail: str = "") -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(kind=kind, claim=claim, detail=detail))

    # -- maintenance ----------------------------------------------------------------------
    def _maintain(self) -> None:
        last_renew = time.monotonic()
        while not self.stopping.is_set():
            try:
                self.service.fire_due_timers()
                self.service.expire_leases()
                if time.monotonic() - last_renew >= RENEW_EVERY:
                    self._renew_leases()
                    last_renew = time.monotonic()
            except sa.exc.OperationalError as exc:
                log.warning("maintenance failed, will retry: %s", exc)
            self.stopping.wait(self._until_next_timer())

    def _until_next_timer(self) -> float:
        TM = tables.timers
        with self.service.read() as conn:
            due = conn.execute(sa.select(sa.func.min(TM.c.due_at))).scalar()
        if due is None:
            return self.poll
        return max(0.0, min(self.poll, float(due) - self.service.clock()))

    def _renew_leases(self) -> None:
        """Keep the leases of long activities without HeartbeatSeconds alive."""
        with self._lock:
            running = [f.claim for f in self._in_flight.values() if f.claim.heartbeat is None]
        for claim in running:
            self.service.renew(claim, self.id)
