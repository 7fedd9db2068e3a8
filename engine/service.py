"""The shell around the pure core: load, fold, decide, append; one transaction per cause.

Everything that changes an execution goes through ``Service.transition``: it loads the
snapshot, runs ``decide`` for the command, and writes the events, the new snapshot and the
tasks and timers the decision created or dropped, atomically.  A worker that completes a
task may claim the task that follows in the same transaction, which saves a commit per step.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson
import sqlalchemy as sa

from engine import (
    database,
    decider,
    definition,
    errors,
    events,
    handoff,
    leasing,
    model,
    refusals,
    roster,
    store,
    tables,
    views,
)
from engine import state as st
from engine.expressions import JSON
from engine.invoke import PAYLOAD_LIMIT

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
_PARENT_CLOSED = "cairn_parent_closed"
"""Connection info flag: a child's closing closed its parent in this transaction."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployed:
    name: str
    version: int
    sha256: str
    created: bool


class Service:
    """Cairn's operations on one database: deploy, start, signal, work, inspect."""

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
        self._slots = handoff.Slots()
        self._states: OrderedDict[str, st.Execution] = OrderedDict()
        """The last state this process wrote per execution; used while it is still current."""
        self._recently_closed: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """Views of executions that closed in this process: ``wait`` needs no read for them."""
        self._writer = database.writer_lock(db)

    # -- definitions ----------------------------------------------------------------------
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

    # -- starting ---------------------------------------------------------------------------
    def start(
        self,
        workflow: str,
        input: JSON = None,
        *,
        version: int | None = None,
        execution_id: str | None = None,
    ) -> dict[str, Any]:
        """Start an execution; the same id with the same input returns the existing one."""
        input = plain({} if input is None else input, "the input")
        execution_id = execution_id or uuid.uuid4().hex
        now = self.clock()
        try:
            with self.write() as conn:
                # Resolved in the transaction: "the newest version" is the newest at commit.
                spec = self.definition(workflow, version, conn)
                _check_input(spec, input)
                start = events.Start(execution_id=execution_id, input=input)
                decision = decider.decide(
                    spec, st.initial_state(), start, now, history_limit=self.history_limit
                )
                spec, state, pending = self._settle(conn, spec, decision.state, [*decision.events])
                leases: dict[str, tuple[str, float]] = {}
                state = self._hand_off(conn, spec, st.initial_state(), state, now, leases, pending)
                store.insert_execution(conn, state)
                self._write(conn, execution_id, state, pending, leases)
                conn.info[_WRITTEN].append(state)
                fresh = store.Loaded(
                    id=execution_id,
                    workflow=spec.name,
                    version=spec.version,
                    seq=0,
                    state=st.initial_state(),
                    parent=None,
                )
                self._cascade(conn, fresh, state, pending)
        except sa.exc.IntegrityError:
            existing = self._row(execution_id)
            if existing is None:
                raise
            differs = [
                what
                for what, same in (
                    ("workflow", existing.workflow == workflow),
                    ("version", version is None or existing.version == version),
                    ("input", existing.input == input),
                )
                if not same
            ]
            if differs:
                was = f"{existing.workflow}@{existing.version}"
                raise errors.Conflict(
                    f"execution {execution_id!r} already exists as {was} "
                    f"with a different {' and '.join(differs)}"
                ) from None
            return views.view(existing)
        self._announce(state)
        return views.view(state)

    # -- the one way state changes --------------------------------------------------------
    def transition(
        self,
        execution_id: str,
        commands: Sequence[events.Command],
        *,
        offer: leasing.Offer | None = None,
        conn: sa.Connection | None = None,
    ) -> tuple[st.Execution, list[leasing.Claim]]:
        """Apply commands in one transaction; with ``offer``, claim new tasks it can run."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                if conn is not None:
                    return self._transition(conn, execution_id, commands, offer)
                with self.write() as own:
                    result = self._transition(own, execution_id, commands, offer)
                    parent_closed = own.info.pop(_PARENT_CLOSED, False)
                self._announce(result[0], parent_closed)
                return result
            except sa.exc.DBAPIError as exc:
                if conn is not None or attempt == CONFLICT_RETRIES - 1 or not _lost_race(exc):
                    raise
            except store.ConcurrencyConflict:
                if conn is not None or attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _transition(
        self,
        conn: sa.Connection,
        execution_id: str,
        commands: Sequence[events.Command],
        offer: leasing.Offer | None,
        started: leasing.Started | None = None,
    ) -> tuple[st.Execution, list[leasing.Claim]]:
        loaded = store.load(conn, execution_id, self._states.get(execution_id))
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
                begin = events.BeginTask(task_id=started.task_id, worker=started.worker)
                decision = decider.decide(spec, state, begin, started.at)
                state = decision.state
                new_events.extend(decision.events)
        for command in commands:
            decision = decider.decide(spec, state, command, now, history_limit=self.history_limit)
            state = decision.state
            new_events.extend(decision.events)
        spec, state, new_events = self._settle(conn, spec, state, new_events)
        leases: dict[str, tuple[str, float]] = {}
        mine: list[str] = []
        if offer is not None:
            for task in _takeable(loaded.state, state, offer):
                state = self._lease(spec, state, task, offer, now, leases, new_events)
                mine.append(task.id)
        state = self._hand_off(conn, spec, loaded.state, state, now, leases, new_events)
        if new_events:
            store.save(conn, loaded.seq, state)
            conn.info[_WRITTEN].append(state)
            self._write(
                conn,
                execution_id,
                state,
                new_events,
                leases,
                before=loaded.state,
                gone=gone,
            )
        self._cascade(conn, loaded, state, new_events)
        lease = offer.lease if offer is not None else leasing.DEFAULT_LEASE
        return state, [_claim(execution_id, state.tasks[t], now, lease) for t in mine]

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
        started."""
        begin = events.BeginTask(task_id=task.id, worker=offer.worker)
        decision = decider.decide(spec, state, begin, now)
        new_events.extend(decision.events)
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
        if not self._slots.parked:
            return state
        for task in [t for k, t in state.tasks.items() if k not in before.tasks]:
            if task.id in leases or task.awaiting:
                continue
            slot = self._slots.take(task)
            if slot is None:
                continue
            state = self._lease(spec, state, task, slot.offer, now, leases, new_events)
            claim = _claim(state.id, state.tasks[task.id], now, slot.offer.lease)
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
        start = events.Start(
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
        loaded: store.Loaded,
        state: st.Execution,
        new_events: Sequence[events.Event],
    ) -> None:
        """What a transition means for other executions: children to start or cancel, and
        the parent to tell; all in the same transaction."""
        before = loaded.state
        closed = {e.details["child_id"] for e in new_events if e.type == events.CHILD_CLOSED}
        for child in state.children.values():
            if child.id not in before.children:
                self._start_child(conn, loaded.id, child)
        for child_id in before.children:
            if child_id not in state.children and child_id not in closed:
                reason = f"its parent {loaded.id} no longer waits for it"
                self._transition(conn, child_id, [events.Cancel(reason=reason)], None)
        if loaded.parent is not None and state.closed and not before.closed:
            self._tell_parent(conn, loaded.parent, state)

    def _tell_parent(self, conn: sa.Connection, parent: str, child: st.Execution) -> None:
        closed = events.CloseChild(
            child_id=child.id,
            status=child.status,
            output=child.output,
            error=child.error,
            cause=child.cause,
        )
        state, _ = self._transition(conn, parent, [closed], None)
        if state.closed:
            # Waiters in this process are woken after the commit (see _announce).
            conn.info[_PARENT_CLOSED] = True

    def _start_child(self, conn: sa.Connection, parent: str, child: st.Child) -> None:
        now = self.clock()
        try:
            spec = self.definition(child.workflow, child.version)
            _check_input(spec, child.input)
        except (errors.NotFound, errors.InvalidInput) as exc:
            refused = events.CloseChild(
                child_id=child.id, status="FAILED", error="Workflow.StartFailed", cause=str(exc)
            )
            self._transition(conn, parent, [refused], None)
            return
        start = events.Start(execution_id=child.id, input=child.input)
        decision = decider.decide(
            spec, st.initial_state(), start, now, history_limit=self.history_limit
        )
        spec, state, pending = self._settle(conn, spec, decision.state, [*decision.events])
        leases: dict[str, tuple[str, float]] = {}
        state = self._hand_off(conn, spec, st.initial_state(), state, now, leases, pending)
        store.insert_execution(conn, state, parent=parent)
        self._write(conn, child.id, state, pending, leases)
        if state.closed:
            self._tell_parent(conn, parent, state)

    def _write(
        self,
        conn: sa.Connection,
        execution_id: str,
        state: st.Execution,
        new_events: Sequence[events.Event],
        leases: dict[str, tuple[str, float]],
        before: st.Execution | None = None,
        gone: str | None = None,
    ) -> None:
        """Append events and bring the task and timer rows in line with the new state."""
        old = before or st.initial_state()
        store.append(conn, execution_id, state.run, new_events)
        now = self.clock()
        store.delete_tasks(conn, [k for k in old.tasks if k not in state.tasks and k != gone])
        new = [t for k, t in state.tasks.items() if k not in old.tasks]
        store.insert_tasks(conn, execution_id, new, now, leases)
        for t in new:
            if t.id not in leases:
                conn.info.setdefault(_UNLEASED, set()).add(t.queue)
        store.delete_timers(conn, [k for k in old.timers if k not in state.timers])
        store.insert_timers(
            conn, execution_id, [t for k, t in state.timers.items() if k not in old.timers]
        )

    # -- worker protocol ------------------------------------------------------------------
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
        return [
            leasing.Claim(
                task_id=row.id,
                execution_id=row.execution_id,
                activity=row.activity,
                state=row.state,
                input=row.input,
                attempt=row.attempt,
                key=row.key,
                timeout=row.timeout,
                heartbeat=row.heartbeat,
                deadline=None if row.timeout is None else now + row.timeout,
                started_at=now,
                heartbeat_details=row.heartbeat_details,
                lease=offer.lease,
            )
            for row in leased
        ]

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
        for attempt in range(CONFLICT_RETRIES):
            try:
                with self.write() as conn:
                    store.lock(conn, claim.execution_id)
                    if not store.take_owned(conn, claim.task_id, worker):
                        refusals.record(conn, claim, worker, outcome, self.clock())
                        return None
                    state, claims = self._transition(
                        conn, claim.execution_id, [outcome], offer, started
                    )
                    parent_closed = conn.info.pop(_PARENT_CLOSED, False)
                self._announce(state, parent_closed)
                return claims
            except sa.exc.DBAPIError as exc:
                if attempt == CONFLICT_RETRIES - 1 or not _lost_race(exc):
                    raise
            except store.ConcurrencyConflict:
                if attempt == CONFLICT_RETRIES - 1:
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
                conn.info.setdefault(_UNLEASED, set()).update(queues)
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
                    error, cause = decider.TIMEOUT, f"no result within {row.timeout}s"
                elif row.heartbeat is not None:
                    error, cause = decider.HEARTBEAT_TIMEOUT, f"no heartbeat for {row.heartbeat}s"
                else:
                    # The worker died: the same attempt goes back to the queue, same key.
                    values = dict(row._mapping)
                    values.update(lease_owner=None, lease_expires_at=None, started_at=None)
                    values["available_at"] = now
                    conn.execute(T.insert().values(**values))
                    conn.info.setdefault(_UNLEASED, set()).add(row.queue)
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

    # -- talking to executions ------------------------------------------------------------
    def signal(self, execution_id: str, name: str, payload: JSON = None) -> None:
        self._require_running(execution_id)
        payload = plain(payload, "the signal payload")
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
            output = plain(output, "the output")
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
        for attempt in range(CONFLICT_RETRIES):
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
                    parent_closed = conn.info.pop(_PARENT_CLOSED, False)
                self._announce(state, parent_closed)
                return
            except sa.exc.DBAPIError as exc:
                if attempt == CONFLICT_RETRIES - 1 or not _lost_race(exc):
                    raise
            except store.ConcurrencyConflict:
                if attempt == CONFLICT_RETRIES - 1:
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

    # -- reading --------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A writing transaction.

        On SQLite, writers queue for the write lock here (``database.writer_lock``), threads
        of this process and other processes alike, instead of in SQLite's busy handler.
        Tasks it leaves unleased are announced: to this process's workers after the commit,
        and on PostgreSQL to every listening worker by a notification sent with the commit.
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

    # -- idle slots (see engine.handoff) --------------------------------------------------
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

    def _remember(self, state: st.Execution) -> None:
        """Keep a committed state, so the next step of the execution needs not parse it again.

        Only after the commit: a state of a transaction that rolled back could share its
        (run, seq) with the one another writer then commits, and would pass for it.
        """
        self._states[state.id] = state
        self._states.move_to_end(state.id)
        if len(self._states) > REMEMBERED_STATES:
            self._states.popitem(last=False)

    def _announce(self, state: st.Execution, parent_closed: bool = False) -> None:
        """Wake waiters of this process when an execution closed."""
        if state.closed and state.status != "CONTINUED":
            self._recently_closed[state.id] = views.view(state)
            if len(self._recently_closed) > RECENTLY_CLOSED:
                self._recently_closed.popitem(last=False)
        if state.closed or parent_closed:
            self.closed.notify()

    def read(self) -> sa.Connection:
        """A connection for reading only (on SQLite it does not take the write lock)."""
        return self.db.connect().execution_options(**{database.READ_ONLY: True})

    def _row(self, execution_id: str) -> Any:
        with self.read() as conn:
            return store.execution_row(conn, execution_id)

    # -- reading (see engine.views) -------------------------------------------------------
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


def plain(value: JSON, what: str) -> JSON:
    """``value`` as it will be stored and read back (tuples as lists, keys as strings).

    Decisions are taken on the value in memory and replayed from the stored one: they must
    be the same value.
    """
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise errors.InvalidInput(f"{what} is not JSON: {exc}") from exc


def _lost_race(exc: sa.exc.DBAPIError) -> bool:
    """Whether another writer got there first (decide again) rather than something broke."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    # PostgreSQL: deadlock detected, serialization failure (a parent and child locked apart).
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


def _takeable(before: st.Execution, after: st.Execution, offer: leasing.Offer) -> list[st.Task]:
    new = [t for k, t in after.tasks.items() if k not in before.tasks and t.worker is None]
    fits = [t for t in new if t.queue in offer.queues and t.activity in offer.activities]
    return fits[: offer.slots]


def _claim(execution_id: str, task: st.Task, now: float, lease: float) -> leasing.Claim:
    return leasing.Claim(
        task_id=task.id,
        execution_id=execution_id,
        activity=task.activity,
        state=task.state,
        input=task.input,
        attempt=task.attempt,
        key=task.key,
        timeout=task.timeout,
        heartbeat=task.heartbeat,
        deadline=None if task.timeout is None else now + task.timeout,
        started_at=now,
        heartbeat_details=task.heartbeat_details,
        lease=lease,
    )


def _check_input(spec: model.Definition, input: JSON) -> None:
    if store.json_size(input) > PAYLOAD_LIMIT:
        raise errors.InvalidInput(f"the input is larger than {PAYLOAD_LIMIT // 1024} KiB")
    if spec.input_schema is None:
        return
    problems = sorted(
        jsonschema.Draft202012Validator(spec.input_schema).iter_errors(input),
        key=lambda e: list(e.absolute_path),
    )
    if problems:
        lines = [f"input{_path(list(p.absolute_path))}: {p.message}" for p in problems]
        raise errors.InvalidInput(
            f"the input does not match the InputSchema of {spec.name}@{spec.version}: "
            + "; ".join(lines)
        )


def _path(parts: list[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def open_service(url: str | None = None) -> Service:
    """A service on the database at ``url`` (or ``CAIRN_DATABASE_URL``, or ./cairn.db)."""
    return Service(database.connect(url))
