"""What programs and people call: deploy, start, talk to and read executions, and wait.

The CLI, the benchmarks and users' programs hold a ``Client``; workers hold a dispatcher
(``runtime.dispatcher``) instead.  Both are built on one write path (``runtime.writer``),
which a client and the workers of the same process share, so that ``cairn run`` hands new
tasks straight to its worker and hears at once when its execution closes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cairn import errors
from cairn.core import commands, events, model
from cairn.core import state as st
from cairn.jsontypes import JSON
from cairn.runtime import database, payloads, refusals, roster, store, views, writer

if TYPE_CHECKING:
    # Only read here: ``cairn describe`` and the like need not load the definition reader.
    from cairn.definitions import loader


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployed:
    """A deployed version, and whether this deploy registered it."""

    name: str
    version: int
    sha256: str
    created: bool


class Client:
    """Cairn's operations on one database, for programs and people."""

    def __init__(self, write_path: writer.Writer) -> None:
        self.writer = write_path
        """The write path, to share with a dispatcher for workers in this process."""

    # -- definitions ---------------------------------------------------------------------
    def deploy(self, document: loader.Document) -> Deployed:
        """Register a version; identical content again is a no-op, different content refused."""
        name, version = document.name, document.version
        with self.writer.write() as conn:
            row = store.definition_row(conn, name, version)
            if row is not None:
                if row.sha256 != document.sha256:
                    raise errors.Conflict(
                        f"{name} version {version} is already deployed with different content "
                        f"(sha256 {row.sha256[:12]}); deployed versions are immutable, "
                        f"give this one a new Version"
                    )
                return Deployed(name=name, version=version, sha256=row.sha256, created=False)
            store.insert_definition(
                conn,
                name,
                version,
                document.sha256,
                document.body,
                document.source,
                self.writer.clock(),
            )
        return Deployed(name=name, version=version, sha256=document.sha256, created=True)

    def definition(self, name: str, version: int | None = None) -> model.Definition:
        """A deployed definition (the newest version when none is given)."""
        return self.writer.definition(*payloads.known_workflow(name, version))

    def definitions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Deployed versions side by side, with their running and total executions."""
        if name is not None and not payloads.storable(name):
            return []
        with self.writer.read() as conn:
            return views.definitions(conn, name)

    # -- starting and talking to executions ----------------------------------------------
    def start(
        self,
        workflow: str,
        input: JSON = None,
        *,
        version: int | None = None,
        execution_id: str | None = None,
    ) -> dict[str, Any]:
        """Start an execution; the same id with the same input returns the existing one."""
        workflow, version = payloads.known_workflow(workflow, version)
        input = payloads.plain({} if input is None else input, "the input")
        execution_id = (
            uuid.uuid4().hex if execution_id is None else payloads.new_execution_id(execution_id)
        )
        try:
            with self.writer.write() as conn:
                # Resolved in the transaction: "the newest version" is the newest at commit.
                spec = self.writer.definition(workflow, version, conn)
                payloads.check_input(spec, input)
                state = self.writer.begin(conn, spec, execution_id, input, None)
        except sa.exc.IntegrityError:
            existing = self.writer.row(execution_id)
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
        return views.view(state)

    def signal(self, execution_id: str, name: str, payload: JSON = None) -> None:
        """Record a signal; a Wait for it consumes the oldest (see README, actors)."""
        self._require_running(execution_id)
        name = payloads.signal_name(name)
        payload = payloads.plain(payload, "the signal payload")
        self.writer.transition(execution_id, [commands.Signal(name=name, payload=payload)])

    def cancel(self, execution_id: str, reason: str = "") -> None:
        """Stop the execution (or send it to its OnCancel state)."""
        self._require_running(execution_id)
        reason = payloads.text(reason, "the reason")
        self.writer.transition(execution_id, [commands.Cancel(reason=reason)])

    def complete(
        self,
        token: str,
        output: JSON = None,
        *,
        error: str | None = None,
        cause: str = "",
    ) -> None:
        """Complete a callback task by its token: with ``output``, or failed with ``error``."""
        # Checked as an activity's result is: past the limit, a callback output would
        # otherwise become a state's result, and then the execution's output.
        command: commands.Command
        if error is None:
            output = payloads.plain(output, "the callback output")
            command = commands.CompleteTask(task_id=token, result=output, token=True)
        else:
            error = payloads.error_name(error)
            cause = payloads.text(cause, "the cause")
            command = commands.FailTask(task_id=token, error=error, cause=cause)
        self._by_token(token, command)

    def heartbeat(self, token: str) -> None:
        """Tell a callback task's HeartbeatSeconds that the outside work goes on."""
        self._by_token(token, commands.Heartbeat(task_id=token))

    def _by_token(self, token: str, command: commands.Command) -> None:
        token = payloads.known_token(token)
        execution_id = token.rsplit(":", 2)[0]
        if token.count(":") < 2 or self.writer.row(execution_id) is None:
            raise errors.UnknownTaskToken(f"unknown task token {token!r}")

        # Looked up and applied in one transaction, the execution locked: of two completions
        # of one token that race, the second finds the task gone and is refused (checked
        # before the transaction, both passed and the second was dropped without a word).
        def apply(conn: sa.Connection) -> None:
            store.lock(conn, execution_id)
            loaded = self.writer.load(conn, execution_id)
            task = None if loaded is None else loaded.state.tasks.get(token)
            if task is None:
                raise errors.UnknownTaskToken(
                    f"task token {token!r} is not waiting: it was completed, timed out or cancelled"
                )
            if not task.callback:
                raise errors.UnknownTaskToken(
                    f"{token!r} is a task of state {task.state!r}, which is not a "
                    "Callback: true task; its worker completes it"
                )
            self.writer.apply(conn, execution_id, [command])

        self.writer.retrying(apply)

    def redrive(self, execution_id: str) -> dict[str, Any]:
        """Resume a failed or timed-out execution where it stopped; completed steps stay done."""
        row = self.writer.row(payloads.known_execution_id(execution_id))
        if row is None:
            raise errors.NotFound(f"no execution {execution_id!r}")
        if row.status not in ("FAILED", "TIMED_OUT"):
            raise errors.Conflict(
                f"execution {execution_id!r} is {row.status}; only FAILED or "
                "TIMED_OUT executions can be redriven"
            )
        state = self.writer.transition(execution_id, [commands.Redrive()])
        if state.status in ("FAILED", "TIMED_OUT") and state.seq == row.seq:
            stopped = st.from_json(row.snapshot).resume
            where = f"at its Fail state {stopped.state!r}" if stopped else "before any state"
            raise errors.Conflict(
                f"execution {execution_id!r} stopped {where}; redriving would only fail again"
            )
        return self.describe(execution_id)

    def _require_running(self, execution_id: str) -> None:
        row = self.writer.row(payloads.known_execution_id(execution_id))
        if row is None:
            raise errors.NotFound(f"no execution {execution_id!r}")
        if row.status != "RUNNING":
            raise errors.Conflict(f"execution {execution_id!r} is {row.status}, not running")

    # -- reading (see runtime.views) -----------------------------------------------------
    def describe(self, execution_id: str) -> dict[str, Any]:
        """The execution's view."""
        with self.writer.read() as conn:
            return views.describe(conn, payloads.known_execution_id(execution_id))

    def inspect(self, execution_id: str) -> dict[str, Any]:
        """The execution's view plus where it stands: active states, tasks, timers, signals."""
        with self.writer.read() as conn:
            return views.inspect(conn, payloads.known_execution_id(execution_id))

    def query(self, execution_id: str, name: str) -> JSON:
        """Evaluate the definition's named query over the execution's current data (no writes)."""
        row = self.writer.row(payloads.known_execution_id(execution_id))
        if row is None:
            raise errors.NotFound(f"no execution {execution_id!r}")
        return views.query(self.writer.definition(row.workflow, row.version), row, name)

    def executions(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Executions, newest first, optionally of one status or workflow."""
        limit = payloads.row_limit(limit)
        if not all(payloads.storable(value) for value in (status, workflow) if value is not None):
            return []
        with self.writer.read() as conn:
            return views.executions(conn, status=status, workflow=workflow, limit=limit)

    def history(self, execution_id: str) -> list[events.Event]:
        """Every event of the execution, all runs, in order."""
        with self.writer.read() as conn:
            return views.history(conn, payloads.known_execution_id(execution_id))

    def replay(self, execution_id: str) -> tuple[bool, dict[str, Any], dict[str, Any]]:
        """Re-fold the current run's history; whether it equals the stored snapshot, and both."""
        with self.writer.read() as conn:
            return views.replay(conn, payloads.known_execution_id(execution_id))

    def workers(self, *, everyone: bool = False) -> list[dict[str, Any]]:
        """Registered workers with the tasks they hold; only live ones unless ``everyone``."""
        now = self.writer.clock()
        with self.writer.read() as conn:
            return roster.listing(conn, now, everyone=everyone)

    def refused(self, execution_id: str | None = None) -> list[dict[str, Any]]:
        """Outcomes refused because their worker had lost the lease, oldest first."""
        if execution_id is not None:
            execution_id = payloads.known_execution_id(execution_id)
        with self.writer.read() as conn:
            return refusals.listing(conn, execution_id)

    def wait(self, execution_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the execution closes (or ``timeout`` passes); returns its view."""
        execution_id = payloads.known_execution_id(execution_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = self.writer.closed.generation
        # While this process drives the execution, its closing is announced here; after a
        # quiet half second (or for an execution driven elsewhere) read the database.
        local = self.writer.drives(execution_id)
        while True:
            view = self.writer.closed_here(execution_id)
            if view is None and not local:
                view = self.describe(execution_id)
            if view is not None and view["status"] != "RUNNING":
                return view
            if deadline is not None and time.monotonic() >= deadline:
                return view or self.describe(execution_id)
            new = self.writer.closed.wait(seen, 0.5)
            local = local and new != seen
            seen = new


def open_client(url: str | None = None) -> Client:
    """A client of the database at ``url`` (or ``CAIRN_DATABASE_URL``, or ./cairn.db)."""
    return Client(writer.Writer(database.connect(url)))
