"""The shell around the pure core: load, fold, decide, append; one transaction per cause.

Everything that changes an execution goes through ``transition``: it loads the snapshot, runs
``decide`` for the command, and writes the events, the new snapshot and the tasks and timers
the decision created or dropped, atomically.  A worker that completes a task may claim the
task that follows in the same transaction, which saves a commit per step.

``Shell`` holds the write path alone; ``runtime.service.Service``, its one subclass, adds the
public operations, so that the path every change takes reads in one module.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jsonschema
import orjson
import sqlalchemy as sa

from cairn import errors
from cairn.core import decider, events, model, names
from cairn.core import state as st
from cairn.jsontypes import JSON
from cairn.runtime import database, handoff, leasing, store, views
from cairn.runtime.invoke import PAYLOAD_LIMIT

CONFLICT_RETRIES = 20
RECENTLY_CLOSED = 1024
MAX_RUNS_PER_STEP = 1000
"""Runs one transaction may chain through ContinueAsNew before the loop is refused."""
REMEMBERED_STATES = 4096
_HANDOFFS = "cairn_handoffs"
"""Connection info: (parked slot, claim) pairs to deliver once the transaction commits."""
_WRITTEN = "cairn_written"
"""Connection info: the states this transaction wrote, remembered once it commits."""
UNLEASED = "cairn_unleased"
"""Connection info: the queues to which the transaction added tasks that nobody holds yet."""
PARENT_CLOSED = "cairn_parent_closed"
"""Connection info flag: a child's closing closed its parent in this transaction."""


class Shell:
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
        self._slots = handoff.Slots()
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

    # -- starting ------------------------------------------------------------------------
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
                self._write(conn, execution_id, state, pending, now, leases)
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

    # -- the one way state changes -------------------------------------------------------
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
                    parent_closed = own.info.pop(PARENT_CLOSED, False)
                self._announce(result[0], parent_closed)
                return result
            except sa.exc.DBAPIError as exc:
                if conn is not None or attempt == CONFLICT_RETRIES - 1 or not lost_race(exc):
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
                now,
                leases,
                before=loaded.state,
                gone=gone,
            )
        self._cascade(conn, loaded, state, new_events)
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
            conn.info[PARENT_CLOSED] = True

    def _start_child(self, conn: sa.Connection, parent: str, child: st.Child) -> None:
        now = self.clock()
        try:
            spec = self.definition(child.workflow, child.version)
            _check_input(spec, child.input)
        except (errors.NotFound, errors.InvalidInput) as exc:
            refused = events.CloseChild(
                child_id=child.id, status="FAILED", error=names.CHILD_START_FAILED, cause=str(exc)
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
        self._write(conn, child.id, state, pending, now, leases)
        if state.closed:
            self._tell_parent(conn, parent, state)

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
        for t in new:
            if t.id not in leases:
                conn.info.setdefault(UNLEASED, set()).add(t.queue)
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
                        unleased = conn.info.get(UNLEASED) or unleased
                        if unleased:
                            store.notify_work(conn, unleased)
                    finally:
                        conn.info.pop(_HANDOFFS, None)
                        conn.info.pop(_WRITTEN, None)
                        conn.info.pop(UNLEASED, None)
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


def plain(value: JSON, what: str) -> JSON:
    """``value`` as it will be stored and read back (tuples as lists, keys as strings).

    Decisions are taken on the value in memory and replayed from the stored one: they must
    be the same value.
    """
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise errors.InvalidInput(f"{what} is not JSON: {exc}") from exc


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
