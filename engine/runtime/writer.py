"""The write path around the pure core: load, fold, decide, append; one transaction per cause.

Everything that changes an execution goes through ``apply`` (``begin`` for a new one): it
loads the snapshot, runs ``decide`` for the commands, and writes the events, the new snapshot
and the tasks and timers the decision created or dropped, atomically.  A worker that
completes a task may claim the task that follows in the same transaction, which saves a
commit per step.

Both sides of the engine hold the same ``Writer``: the client (``cairn.client``) for what
programs and people ask, the dispatcher (``runtime.dispatcher``) for what workers do.  Sharing
it is what lets a transaction hand a new task straight to an idle worker slot of this process
and wake a thread waiting here for an execution to close.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from cairn import errors
from cairn.core import commands, decider, events, model, names
from cairn.core import state as st
from cairn.jsontypes import JSON
from cairn.runtime import database, handoff, leasing, payloads, store, views

CONFLICT_RETRIES = 20
RECENTLY_CLOSED = 1024
MAX_RUNS_PER_STEP = 1000
"""Runs one transaction may chain through ContinueAsNew before the loop is refused."""
REMEMBERED_STATES = 4096
_HANDOFFS = "cairn_handoffs"
"""Connection info: (parked slot, claim) pairs to deliver once the transaction commits."""
_WRITTEN = "cairn_written"
"""Connection info: the states this transaction wrote, remembered once it commits."""
_UNLEASED = "cairn_unleased"
"""Connection info: the queues to which the transaction added tasks that nobody holds yet."""

T = TypeVar("T")


class Writer:
    """The write path on one database: every change of an execution is one transition."""

    def __init__(
        self,
        db: sa.Engine,
        *,
        clock: Callable[[], float] = time.time,
        history_limit: int = decider.HISTORY_LIMIT,
    ) -> None:
        self.db = db
        self.clock = clock
        self.history_limit = history_limit
        self.closed = handoff.Notifier()
        """Notified when an execution closed in this process."""
        self._definitions: dict[tuple[str, int], model.Definition] = {}
        self.work = handoff.Notifier()
        """Notified when tasks may be claimable: queued here, announced by another process
        (a worker's listener), or a slot fell idle while work was left over."""
        self.slots = handoff.Slots()
        """Idle worker slots of this process, handed new tasks by the transaction that
        creates them."""
        self._states: OrderedDict[str, st.Execution] = OrderedDict()
        """The last state this process wrote per execution; used while it is still current."""
        self._recently_closed: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """Views of executions that closed in this process: ``wait`` needs no read for them."""
        self._writer = database.writer_lock(db)

    def definition(
        self, name: str, version: int | None = None, conn: sa.Connection | None = None
    ) -> model.Definition:
        """A deployed definition (the newest version when none is given), built once."""
        if version is None and conn is not None:
            version = store.newest_version(conn, name)
        if version is not None and (name, version) in self._definitions:
            return self._definitions[(name, version)]
        if conn is None:
            with self.read() as own:
                row = store.definition_row(own, name, version)
        else:
            row = store.definition_row(conn, name, version)
        if row is None:
            which = name if version is None else f"{name}@{version}"
            raise errors.NotFound(
                f"no workflow {which} is deployed (deploy it with `cairn deploy`)"
            )
        key = (row.name, row.version)
        if key not in self._definitions:
            self._definitions[key] = model.build(row.body)
        return self._definitions[key]

    # -- the one way state changes -------------------------------------------------------
    def transition(self, execution_id: str, batch: Sequence[commands.Command]) -> st.Execution:
        """Apply commands in a transaction of their own (see ``apply`` and ``retrying``)."""
        return self.retrying(lambda conn: self.apply(conn, execution_id, batch))[0]

    def retrying(self, change: Callable[[sa.Connection], T]) -> T:
        """Run ``change`` in a writing transaction, again from the start while another writer
        gets there first (a conflict, a deadlock, a duplicate key)."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                with self.write() as conn:
                    return change(conn)
            except sa.exc.DBAPIError as exc:
                if attempt == CONFLICT_RETRIES - 1 or not lost_race(exc):
                    raise
            except store.ConcurrencyConflict:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def load(self, conn: sa.Connection, execution_id: str) -> store.Loaded | None:
        """The execution as stored, parsed again only if this process did not write it last."""
        return store.load(conn, execution_id, self._states.get(execution_id))

    def apply(
        self,
        conn: sa.Connection,
        execution_id: str,
        batch: Sequence[commands.Command],
        offer: leasing.Offer | None = None,
        started: leasing.Started | None = None,
    ) -> tuple[st.Execution, list[leasing.Claim]]:
        """Decide the commands of ``batch`` and write the outcome in the caller's transaction.

        With ``offer``, new tasks the offering worker can run are leased to it; with
        ``started``, the task it finishes is first recorded as started if it is not yet.
        """
        loaded = self.load(conn, execution_id)
        if loaded is None:
            raise errors.NotFound(f"no execution {execution_id!r}")
        spec = self.definition(loaded.workflow, loaded.version)
        now = self.clock()
        state = loaded.state
        new_events: list[events.Event] = []
        gone = None
        if started is not None:
            gone = started.task_id
            task = state.tasks.get(started.task_id)
            if task is not None and task.worker != started.worker:
                # Claimed by polling: record when and by whom it started, at its real time.
                begin = commands.BeginTask(task_id=started.task_id, worker=started.worker)
                decision = decider.decide(
                    spec, state, begin, started.at, history_limit=self.history_limit
                )
                state = decision.state
                new_events.extend(decision.events)
        for command in batch:
            decision = decider.decide(spec, state, command, now, history_limit=self.history_limit)
            state = decision.state
            new_events.extend(decision.events)
        spec, state, new_events = self._settle(conn, spec, state, new_events)
        leases: dict[str, tuple[str, float]] = {}
        mine: list[str] = []
        if offer is not None:
            for task in _takeable(loaded.state, state, offer):
                state = self._lease(spec, state, task, offer, now, leases, new_events)
                if task.id in leases:
                    mine.append(task.id)
        state = self._hand_off(conn, spec, loaded.state, state, now, leases, new_events)
        if new_events:
            store.save(conn, loaded.seq, state)
            conn.info[_WRITTEN].append(state)
            self._write(conn, execution_id, state, new_events, now, leases, loaded.state, gone)
        self._cascade(conn, execution_id, loaded.parent, loaded.state, state, new_events)
        lease = offer.lease if offer is not None else leasing.DEFAULT_LEASE
        return state, [leasing.claim(execution_id, state.tasks[t], now, lease) for t in mine]

    def _lease(
        self,
        spec: model.Definition,
        state: st.Execution,
        task: st.Task,
        offer: leasing.Offer,
        now: float,
        leases: dict[str, tuple[str, float]],
        new_events: list[events.Event],
    ) -> st.Execution:
        """Lease a new task to the offering worker in this transaction, recording that it
        started.

        Recording it may end the run (the event past the history limit fails it), and the
        task with it: then nothing is leased, and ``task.id`` stays out of ``leases``.
        """
        begin = commands.BeginTask(task_id=task.id, worker=offer.worker)
        decision = decider.decide(spec, state, begin, now, history_limit=self.history_limit)
        new_events.extend(decision.events)
        if task.id in decision.state.tasks:
            leases[task.id] = (
                offer.worker,
                now + leasing.lease_for(task.heartbeat, task.timeout, offer.lease),
            )
        return decision.state

    def _hand_off(
        self,
        conn: sa.Connection,
        spec: model.Definition,
        before: st.Execution,
        state: st.Execution,
        now: float,
        leases: dict[str, tuple[str, float]],
        new_events: list[events.Event],
    ) -> st.Execution:
        """Lease new tasks to idle slots of this process; they get them after the commit."""
        if not self.slots.parked:
            return state
        for task in [t for k, t in state.tasks.items() if k not in before.tasks]:
            if task.id in leases or task.awaiting:
                continue
            slot = self.slots.take(task)
            if slot is None:
                continue
            state = self._lease(spec, state, task, slot.offer, now, leases, new_events)
            if task.id not in leases:
                self.slots.put_back([slot])
                continue
            claim = leasing.claim(state.id, state.tasks[task.id], now, slot.offer.lease)
            conn.info[_HANDOFFS].append((slot, claim))
        return state

    def _settle(
        self,
        conn: sa.Connection,
        spec: model.Definition,
        state: st.Execution,
        new_events: list[events.Event],
    ) -> tuple[model.Definition, st.Execution, list[events.Event]]:
        """Follow ContinueAsNew: record each ended run's events, begin the next run.

        Returns the definition, state and unrecorded events of the run that goes on.
        """
        runs = 0
        while state.status == "CONTINUED":
            store.append(conn, state.id, state.run, new_events)
            runs += 1
            # A loop that never waits would chain runs inside this transaction for ever.
            halt = None
            if runs > MAX_RUNS_PER_STEP:
                halt = (
                    f"more than {MAX_RUNS_PER_STEP} runs in one step: a ContinueAsNew loop "
                    "that never waits for a task, timer or signal"
                )
            spec, state, new_events = self._next_run(spec, state, self.clock(), halt)
        return spec, state, new_events

    def _next_run(
        self, spec: model.Definition, ended: st.Execution, now: float, halt: str | None = None
    ) -> tuple[model.Definition, st.Execution, list[events.Event]]:
        """ContinueAsNew: the next run of the same execution, with a fresh history.

        Its input is the ended run's output; signals nobody consumed are carried over.
        """
        version = spec.version if ended.continue_version == "same" else None
        spec = self.definition(spec.name, version)
        start = commands.Start(
            execution_id=ended.id,
            input=ended.output,
            run=ended.run + 1,
            signals=tuple((s.name, s.payload) for s in ended.signals),
            halt=halt,
        )
        decision = decider.decide(
            spec, st.initial_state(), start, now, history_limit=self.history_limit
        )
        return spec, decision.state, list(decision.events)

    def _cascade(
        self,
        conn: sa.Connection,
        execution_id: str,
        parent: str | None,
        before: st.Execution,
        state: st.Execution,
        new_events: Sequence[events.Event],
    ) -> None:
        """What a transition means for other executions: children to start or cancel, and
        the parent to tell; all in the same transaction."""
        closed = {
            e.payload.child_id for e in new_events if isinstance(e.payload, events.ChildClosed)
        }
        for child in state.children.values():
            if child.id not in before.children:
                self._start_child(conn, execution_id, child)
        for child_id in before.children:
            if child_id not in state.children and child_id not in closed:
                reason = f"its parent {execution_id} no longer waits for it"
                self.apply(conn, child_id, [commands.Cancel(reason=reason)])
        if parent is not None and state.closed and not before.closed:
            self._tell_parent(conn, parent, state)

    def _tell_parent(self, conn: sa.Connection, parent: str, child: st.Execution) -> None:
        closed = commands.CloseChild(
            child_id=child.id,
            status=child.status,
            output=child.output,
            error=child.error,
            cause=child.cause,
        )
        self.apply(conn, parent, [closed])

    def _start_child(self, conn: sa.Connection, parent: str, child: st.Child) -> None:
        try:
            # A child's id holds its parent's, so it grows with every level: a workflow that
            # starts itself reaches the limit after a few levels and fails there, instead of
            # starting children for ever in one transaction.
            if len(child.id) > payloads.STORED_ID_LENGTH:
                raise errors.InvalidInput(
                    f"child workflows nest too deep: the id of this one would have "
                    f"{len(child.id)} characters, over the {payloads.STORED_ID_LENGTH} an "
                    f"execution id may have"
                )
            spec = self.definition(child.workflow, child.version)
            payloads.check_input(spec, child.input)
        except (errors.NotFound, errors.InvalidInput) as exc:
            refused = commands.CloseChild(
                child_id=child.id, status="FAILED", error=names.CHILD_START_FAILED, cause=str(exc)
            )
            self.apply(conn, parent, [refused])
            return
        self.begin(conn, spec, child.id, child.input, parent)

    def begin(
        self,
        conn: sa.Connection,
        spec: model.Definition,
        execution_id: str,
        input: JSON,
        parent: str | None,
    ) -> st.Execution:
        """Write a new execution's first steps in the caller's transaction, and what they mean
        for its children and its parent (a child that ends at once tells it at once)."""
        now = self.clock()
        start = commands.Start(execution_id=execution_id, input=input)
        decision = decider.decide(
            spec, st.initial_state(), start, now, history_limit=self.history_limit
        )
        spec, state, pending = self._settle(conn, spec, decision.state, [*decision.events])
        leases: dict[str, tuple[str, float]] = {}
        state = self._hand_off(conn, spec, st.initial_state(), state, now, leases, pending)
        store.insert_execution(conn, state, parent=parent)
        self._write(conn, execution_id, state, pending, now, leases)
        conn.info[_WRITTEN].append(state)
        self._cascade(conn, execution_id, parent, st.initial_state(), state, pending)
        return state

    def _write(
        self,
        conn: sa.Connection,
        execution_id: str,
        state: st.Execution,
        new_events: Sequence[events.Event],
        now: float,
        leases: dict[str, tuple[str, float]],
        before: st.Execution | None = None,
        gone: str | None = None,
    ) -> None:
        """Append events and bring the task and timer rows in line with the new state.

        ``now`` is the decision's time: a task leased in passing starts then, so that its
        lease and its deadline (counted from the same moment) end together.
        """
        old = before or st.initial_state()
        store.append(conn, execution_id, state.run, new_events)
        store.delete_tasks(conn, [k for k in old.tasks if k not in state.tasks and k != gone])
        new = [t for k, t in state.tasks.items() if k not in old.tasks]
        store.insert_tasks(conn, execution_id, new, now, leases)
        queued(conn, [t.queue for t in new if t.id not in leases])
        store.delete_timers(conn, [k for k in old.timers if k not in state.timers])
        store.insert_timers(
            conn, execution_id, [t for k, t in state.timers.items() if k not in old.timers]
        )

    # -- transactions --------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A writing transaction.

        On SQLite, writers queue for the write lock here (``database.writer_lock``), threads
        of this process and other processes alike, instead of in SQLite's busy handler.
        Tasks it leaves unleased are announced: to this process's workers after the commit,
        and on PostgreSQL to every listening worker by a notification sent with the commit.
        Executions it closed wake the threads of this process that wait for them.
        """
        with self._writer:
            handoffs: list[tuple[handoff.Parked, leasing.Claim]] = []
            written: list[st.Execution] = []
            unleased: set[str] = set()
            try:
                with self.db.begin() as conn:
                    conn.info[_HANDOFFS] = handoffs
                    conn.info[_WRITTEN] = written
                    try:
                        yield conn
                        unleased = conn.info.get(_UNLEASED) or unleased
                        if unleased:
                            store.notify_work(conn, unleased)
                    finally:
                        conn.info.pop(_HANDOFFS, None)
                        conn.info.pop(_WRITTEN, None)
                        conn.info.pop(_UNLEASED, None)
            except BaseException:
                for slot, _ in handoffs:
                    slot.deliver(None)
                raise
            for state in written:
                self._remember(state)
        for slot, claim in handoffs:
            slot.deliver(claim)
        if unleased:
            self.work.notify()
        if any(state.closed for state in written):
            self._announce(written)

    def _remember(self, state: st.Execution) -> None:
        """Keep a committed state, so the next step of the execution needs not parse it again.

        Only after the commit: a state of a transaction that rolled back could share its
        (run, seq) with the one another writer then commits, and would pass for it.
        """
        self._states[state.id] = state
        self._states.move_to_end(state.id)
        if len(self._states) > REMEMBERED_STATES:
            self._states.popitem(last=False)

    def _announce(self, written: Sequence[st.Execution]) -> None:
        """Keep the views of executions that closed and wake the waiters of this process."""
        for state in written:
            if state.closed and state.status != "CONTINUED":
                self._recently_closed[state.id] = views.view(state)
                if len(self._recently_closed) > RECENTLY_CLOSED:
                    self._recently_closed.popitem(last=False)
        self.closed.notify()

    def closed_here(self, execution_id: str) -> dict[str, Any] | None:
        """The view of the execution if it closed in this process lately."""
        return self._recently_closed.get(execution_id)

    def drives(self, execution_id: str) -> bool:
        """Whether this process wrote the execution lately (and so hears when it closes)."""
        return execution_id in self._states

    def read(self) -> sa.Connection:
        """A connection for reading only (on SQLite it does not take the write lock)."""
        return self.db.connect().execution_options(**{database.READ_ONLY: True})

    def row(self, execution_id: str) -> Any:
        """The execution's row, or None."""
        with self.read() as conn:
            return store.execution_row(conn, execution_id)


def queued(conn: sa.Connection, queues: Collection[str]) -> None:
    """Announce, once ``conn`` commits, that these queues have tasks nobody holds."""
    if queues:
        conn.info.setdefault(_UNLEASED, set()).update(queues)


def lost_race(exc: sa.exc.DBAPIError) -> bool:
    """Whether another writer got there first (decide again) rather than something broke."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    # PostgreSQL: deadlock detected, serialization failure (a parent and child locked apart).
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


def _takeable(before: st.Execution, after: st.Execution, offer: leasing.Offer) -> list[st.Task]:
    new = [t for k, t in after.tasks.items() if k not in before.tasks and t.worker is None]
    fits = [t for t in new if t.queue in offer.queues and t.activity in offer.activities]
    return fits[: offer.slots]
