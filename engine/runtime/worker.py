"""The worker: claims tasks it can run, runs them, records outcomes, fires due timers.

Workers pull; nothing pushes.  Each slot thread reads top to bottom: stop flag, wait to be
handed a task, run it, record it (claiming the next task of the execution in the same
transaction), repeat.  Slots never poll: a task queued in this process is handed to an idle
slot by the transaction that queues it, and one claiming thread claims, in one statement,
tasks for all idle slots when work may be waiting: announced here, heard from another
process by the listener thread (``runtime.wakeup``), left over from a busy moment, or every
``poll`` seconds.  One maintenance thread fires due timers, expires dead leases, and beats:
it keeps this worker listed as alive and renews the leases of its running activities.  A
stop lets running activities finish within a grace period, then hands back what is left so
another worker can take it at once.  A slot that dies anyway (of anything but its
activity, whose every outcome is the task's) is started again, and the worker's row in
``cairn workers`` counts it.

All of it goes through one ``runtime.dispatcher.Dispatcher``, the worker's side of the
engine; a worker never holds the client.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass

import sqlalchemy as sa

from cairn import activities
from cairn.core import commands, names
from cairn.jsontypes import JSON
from cairn.runtime import database, dispatcher, invoke, leasing, logs, roster

log = logging.getLogger("cairn.worker")

DEFAULT_POLL = 0.2
"""How often a worker looks for work and due timers with no news of any: only the fallback,
since new work wakes it at once (``runtime.wakeup``)."""
LISTEN_SLICE = 0.5
"""The listener's longest wait at a time: how soon it notices that the worker stopped."""
RECORDING_TIMEOUT = 10.0
"""How long a stopping worker waits, past its grace period, for outcomes being recorded."""
RECORD_PAUSE = (0.05, 2.0)
"""First and longest pause between tries to record an outcome the database refused."""


class Unrecordable(Exception):
    """Neither a task's outcome nor the failure standing for it could be recorded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One thing a worker did, for people watching it."""

    kind: str  # started | succeeded | failed | lost
    claim: leasing.Claim
    detail: str = ""
    error: str = ""
    """The error name of a failure: what a log shows of it (its cause may hold data)."""


def new_id() -> str:
    """A worker id no other worker has: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs the activities of ``registry`` for tasks of ``queues``, with ``concurrency`` slots."""

    def __init__(
        self,
        dispatcher: dispatcher.Dispatcher,
        registry: activities.Registry,
        *,
        queues: Collection[str] = ("default",),
        concurrency: int = 4,
        poll: float = DEFAULT_POLL,
        grace: float = 30.0,
        lease: float = leasing.DEFAULT_LEASE,
        worker_id: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.registry = registry
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.poll = poll
        self.grace = grace
        self.lease = lease
        self.id = worker_id or new_id()
        self.on_progress = on_progress
        self.stopping = threading.Event()
        self.offer = leasing.Offer(
            worker=self.id,
            queues=self.queues,
            activities=tuple(registry),
            slots=1,
            lease=lease,
        )
        self._in_flight: dict[str, leasing.Claim] = {}
        """Claims whose activity is running."""
        self._recording = 0
        """Slots whose activity has returned and whose outcome is being recorded."""
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._handed_back = 0
        self.slot_restarts = 0
        """Slots that died and were started again (``cairn workers`` shows how many)."""
        self._claiming = logs.Trouble("claim", "claiming tasks")
        self._backlog = False
        """The last look for work may have left tasks behind (every idle slot got one, or
        none was idle): a slot that falls idle has the claiming thread look again."""

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Register the worker and start its threads; returns at once."""
        self.presence = roster.Presence(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues,
            activities=tuple(self.registry),
            concurrency=self.concurrency,
            lease=self.lease,
            started_at=self.dispatcher.clock(),
        )
        self.dispatcher.beat(self.presence)
        for n in range(self.concurrency):
            name = f"cairn-slot-{n}"
            self._spawn(functools.partial(self._supervise, name), name)
        self._spawn(self._dispatch, "cairn-dispatch")
        self._spawn(self._maintain, "cairn-maintenance")
        # Not waited for by ``stop``: it holds nothing, and ends within LISTEN_SLICE.
        threading.Thread(target=self._listen, name="cairn-listen", daemon=True).start()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, grace: float | None = None) -> int:
        """Stop claiming, wait for running activities, release the rest; returns how many."""
        self.stopping.set()
        self.dispatcher.unpark(self.id)
        deadline = time.monotonic() + (self.grace if grace is None else grace)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        # An outcome that came within the grace period is recorded, not handed back: only
        # activities still running go to other workers.
        with self._recorded:
            self._recorded.wait_for(lambda: self._recording == 0, RECORDING_TIMEOUT)
        return self._handed_back + self.dispatcher.release(self.id)

    # -- the slot loop --------------------------------------------------------------------
    def _supervise(self, name: str) -> None:
        """Run a slot, and start it again whenever it dies until the worker stops.

        What an activity does ends as its task's failure (``runtime.invoke``); this is for
        the rest (a progress callback, a bug), since a slot lost for good would leave the
        worker listed as healthy with one slot less.  Its task, no longer renewed, goes
        back when its lease runs out.  The pause grows, so a slot that dies at once does
        not spin.
        """
        pause, longest = RECORD_PAUSE
        while True:
            try:
                self._slot()
                return
            except BaseException as exc:
                with self._lock:
                    self.slot_restarts += 1
                why = f"{type(exc).__name__}: {database.reason(exc)}"
                log.error(
                    "slot %s died (%s); starting it again",
                    name,
                    why,
                    extra={"event": "slot.died", "slot": name, "error": type(exc).__name__},
                )
            if self.stopping.wait(pause):
                return
            pause = min(pause * 2, longest)

    def _slot(self) -> None:
        claim: leasing.Claim | None = None
        while True:
            if claim is None and not self.stopping.is_set():
                claim = self.dispatcher.park(self.offer, self._fell_idle)
            if claim is None:
                return
            if self.stopping.is_set():
                # Handed over as the stop came: give it back now, not after the grace period.
                try:
                    self._handed_back += self.dispatcher.release(self.id, [claim.task_id])
                except sa.exc.OperationalError as exc:
                    reason = database.reason(exc)
                    log.warning(
                        "could not hand back %s yet: %s",
                        claim.task_id,
                        reason,
                        extra=logs.about(claim, "task.not_handed_back"),
                    )
                return
            claim = self._run(claim)

    def _fell_idle(self) -> None:
        if self._backlog:
            self.dispatcher.work.notify()

    def _run(self, claim: leasing.Claim) -> leasing.Claim | None:
        """Run one claimed task and record it; returns the next task claimed in passing."""
        checkpoint = [claim.heartbeat_details]
        beaten = [claim.started_at]  # when the lease was last renewed by a heartbeat
        ctx = invoke.Context(
            execution_id=claim.execution_id,
            state=claim.state,
            activity=claim.activity,
            task_id=claim.task_id,
            attempt=claim.attempt,
            idempotency_key=claim.key,
            heartbeat_details=claim.heartbeat_details,
            worker=self.id,
            _beat=lambda details: self._heartbeat(claim, details, checkpoint, beaten),
        )
        self._report("started", claim)
        with self._lock:
            self._in_flight[claim.task_id] = claim
        try:
            outcome = self._invoke(claim, ctx, beaten)
        except BaseException:
            with self._lock:
                self._in_flight.pop(claim.task_id, None)
            raise
        if outcome is None:
            with self._lock:
                self._in_flight.pop(claim.task_id, None)
            log.warning(
                "left %s running past its timeout; the slot goes on",
                claim.task_id,
                extra=logs.about(claim, "task.abandoned"),
            )
            self._report("lost", claim, "the activity outlived its timeout and was left running")
            return None
        with self._lock:
            self._recording += 1
        if isinstance(outcome, commands.FailTask) and checkpoint[0] is not None:
            # The next attempt starts from where this one got to.
            outcome = dataclasses.replace(outcome, heartbeat_details=checkpoint[0])
        try:
            following = self._record(claim, outcome)
        except sa.exc.OperationalError as exc:
            # Stopping with nothing recorded: the task goes back (handed back, or when the
            # lease runs out) and runs again with the same key.  The slot lives on; letting
            # the error end its thread would lose it for good.
            reason = database.reason(exc)
            log.warning(
                "could not record %s, it will run again: %s",
                claim.task_id,
                reason,
                extra=logs.about(claim, "task.unrecorded"),
            )
            self._report("lost", claim, f"could not record the outcome: {reason}")
            return None
        except Unrecordable as exc:
            log.error(
                "%s; it goes back when its lease runs out",
                exc,
                extra=logs.about(claim, "task.unrecordable"),
            )
            self._report("lost", claim, str(exc))
            return None
        finally:
            with self._recorded:
                self._in_flight.pop(claim.task_id, None)
                self._recording -= 1
                self._recorded.notify_all()
        if following is None:
            self._report("lost", claim, "the lease expired; another worker owns this task now")
            return None
        if isinstance(outcome, commands.FailTask):
            self._report("failed", claim, f"{outcome.error}: {outcome.cause}", outcome.error)
        else:
            self._report("succeeded", claim)
        return following[0] if following else None

    def _invoke(
        self, claim: leasing.Claim, ctx: invoke.Context, beaten: list[float]
    ) -> invoke.Outcome | None:
        """Run the activity; None when it outlived its timeout and was left running.

        Python cannot stop a thread.  An activity with TimeoutSeconds or HeartbeatSeconds
        runs on a thread of its own, so that once the task is past its deadline (or its
        heartbeat is overdue) the slot walks away, leaving the maintenance thread to record
        the timeout, instead of being held for as long as the activity hangs.  Any other
        activity has no timeout to outlive and runs on the slot's thread.
        """
        handler = self.registry[claim.activity]
        if claim.deadline is None and claim.heartbeat is None:
            return invoke.invoke(handler, claim.input, ctx)
        outcome: list[invoke.Outcome] = []
        done = threading.Event()

        def run() -> None:
            outcome.append(invoke.invoke(handler, claim.input, ctx))
            done.set()

        name = f"cairn-activity-{claim.task_id}"
        threading.Thread(target=run, name=name, daemon=True).start()
        while True:
            due = claim.deadline if claim.deadline is not None else float("inf")
            if claim.heartbeat is not None:
                due = min(due, beaten[0] + claim.heartbeat)
            left = due - self.dispatcher.clock()
            if done.wait(max(0.0, min(left, LISTEN_SLICE))):
                return outcome[0]
            if left <= 0:
                ctx.cancelled = True  # should it look, the activity learns it may stop
                return None

    def _record(self, claim: leasing.Claim, outcome: invoke.Outcome) -> list[leasing.Claim] | None:
        """Record an outcome, trying again while the database refuses (a lost connection, a
        full disk), until the worker stops.

        The claim stays in flight meanwhile, so the worker's beat keeps renewing its lease
        and the activity, which did its work, need not run again.  Trying again is safe:
        ``finish`` applies an outcome only if this worker still holds the task.
        """
        pause, longest = RECORD_PAUSE
        refused: str | None = None
        while True:
            offer = None if self.stopping.is_set() else self.offer
            try:
                return self.dispatcher.finish(claim, self.id, outcome, offer)
            except sa.exc.OperationalError as exc:
                if self.stopping.is_set():
                    raise
                reason = database.reason(exc)
                log.warning(
                    "could not record %s yet, will try again: %s",
                    claim.task_id,
                    reason,
                    extra=logs.about(claim, "task.record_retry"),
                )
            except Exception as exc:
                # The database took the statement and refused the data (PostgreSQL and NUL,
                # a number it cannot hold), or the outcome could not be written at all:
                # the same outcome would be refused for ever.  The task fails instead, once.
                if refused is not None:
                    raise Unrecordable(
                        f"could not record task {claim.task_id} nor its failure: {refused}"
                    ) from exc
                refused = f"{type(exc).__name__}: {database.reason(exc)}"
                log.warning(
                    "the outcome of %s was refused: %s",
                    claim.task_id,
                    refused,
                    extra=logs.about(claim, "task.outcome_refused", error=type(exc).__name__),
                )
                outcome = commands.FailTask(
                    task_id=claim.task_id,
                    error=names.RUNTIME,
                    cause=f"the outcome of activity {claim.activity} could not be stored: "
                    f"{refused}",
                    retryable=False,
                )
                continue
            self.stopping.wait(pause)
            pause = min(pause * 2, longest)

    def _heartbeat(
        self, claim: leasing.Claim, details: JSON, checkpoint: list[JSON], beaten: list[float]
    ) -> bool:
        """Renew the lease for an activity; a database hiccup is not the activity's failure."""
        previous = checkpoint[0]
        if details is not None:
            checkpoint[0] = details
        try:
            now = self.dispatcher.clock()
            held = self.dispatcher.renew(claim, self.id, details)
            if held:
                beaten[0] = now
            return held
        except sa.exc.OperationalError as exc:
            reason = database.reason(exc)
            log.warning(
                "heartbeat of %s not recorded, will try again: %s",
                claim.task_id,
                reason,
                extra=logs.about(claim, "task.heartbeat_retry"),
            )
            return True
        except sa.exc.StatementError as exc:
            # Details the database refuses: the activity's error, in one line, without the
            # statement and its parameters that SQLAlchemy's message carries.
            checkpoint[0] = previous
            raise ValueError(
                f"heartbeat details could not be stored: {database.reason(exc)}"
            ) from None

    def _report(self, kind: str, claim: leasing.Claim, detail: str = "", error: str = "") -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(kind=kind, claim=claim, detail=detail, error=error))

    # -- finding work ---------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Claim tasks for the idle slots whenever work may be waiting."""
        work = self.dispatcher.work
        seen = -1  # the work notifier's generation at the last look
        next_look = 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            if work.generation != seen or self._backlog or now >= next_look:
                seen = work.generation
                next_look = now + self.poll
                try:
                    self._backlog = self._fill_idle_slots()
                except Exception as exc:
                    # A worker that stopped claiming would sit there looking alive.  One line:
                    # a traceback would show a database error's statement and parameters.
                    log.error(
                        "looking for work failed, will look again: %s: %s",
                        type(exc).__name__,
                        database.reason(exc),
                        extra={"event": "claim.failed", "error": type(exc).__name__},
                    )
            work.wait(seen, max(0.0, next_look - time.monotonic()))

    def _fill_idle_slots(self) -> bool:
        """One claim for every idle slot; whether work may have been left behind."""
        slots = self.dispatcher.idle_slots(self.id)
        if not slots:
            return True
        claims: list[leasing.Claim] = []
        try:
            if not self.stopping.is_set():
                claims = self.dispatcher.claim(dataclasses.replace(self.offer, slots=len(slots)))
            self._claiming.works()
        except sa.exc.OperationalError as exc:
            self._claiming.failed(exc)
        finally:
            for slot, claim in zip(slots, claims, strict=False):
                slot.deliver(claim)
            self.dispatcher.return_slots(slots[len(claims) :])
        return len(claims) == len(slots)

    def _listen(self) -> None:
        """Hear of work queued by other processes (see ``runtime.wakeup``)."""
        listener = self.dispatcher.listen(self.queues, tuple(self.registry))
        try:
            while not self.stopping.is_set():
                if listener.wait(LISTEN_SLICE):
                    self.dispatcher.work.notify()
        finally:
            listener.close()

    # -- maintenance ----------------------------------------------------------------------
    def _maintain(self) -> None:
        maintaining = logs.Trouble(
            "maintenance", "maintenance (timers, expired leases, the worker's beat)"
        )
        next_beat = time.monotonic() + self.lease / 3
        while not self.stopping.is_set():
            pause = self.poll
            try:
                self.dispatcher.fire_due_timers()
                self.dispatcher.expire_leases()
                with self._lock:
                    restarts = self.slot_restarts
                # A slot started again is news for `cairn workers` at once, not a beat later.
                if time.monotonic() >= next_beat or restarts != self.presence.slot_restarts:
                    with self._lock:
                        running = list(self._in_flight.values())
                    self.presence = dataclasses.replace(self.presence, slot_restarts=restarts)
                    self.dispatcher.beat(self.presence, running)
                    next_beat = time.monotonic() + self.lease / 3
                pause = self._until_next_timer()
                maintaining.works()
            except Exception as exc:
                # The database refusing, or anything else: like the claiming thread, a
                # worker whose timers and beat stopped for good would look alive for a lease.
                maintaining.failed(exc)
            self.stopping.wait(max(0.0, min(pause, next_beat - time.monotonic())))

    def _until_next_timer(self) -> float:
        due = self.dispatcher.next_timer()
        if due is None:
            return self.poll
        return max(0.0, min(self.poll, due - self.dispatcher.clock()))
