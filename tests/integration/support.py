"""Helpers the integration tests share: a fake clock, counting activities, polling, replay checks.

Nothing here sleeps in place of synchronisation: ``wait_until`` polls a condition with a
deadline, and the worker subprocess wrapper waits for the lines a worker prints.
"""

from __future__ import annotations

import inspect
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from activities import orders
from cairn import activities
from cairn.client import Client
from cairn.core import events
from cairn.definitions import loader
from cairn.jsontypes import JSON
from cairn.runtime import invoke, leasing
from cairn.runtime.dispatcher import Dispatcher

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = Path(__file__).parent / "definitions"
START = 1_767_225_600.0
"""2026-01-01T00:00:00Z: where the fake clock starts."""
DEADLINE = 30.0
"""How long a test waits for something that should happen within a second or two."""
ORDER_ACTIVITIES: dict[str, Callable[..., Any]] = {
    "AssessFraudRisk": orders.assess_fraud_risk,
    "ChargeCard": orders.charge_card,
    "RefundCard": orders.refund_card,
    "ReserveInventory": orders.reserve_inventory,
    "ReleaseInventory": orders.release_inventory,
    "ShipPackage": orders.ship_package,
    "SendConfirmationEmail": orders.send_confirmation_email,
}
"""The order demo's activities by name, for tests that wrap them to count or journal calls."""

T = TypeVar("T")


class FakeClock:
    """A clock that moves only when told to; pass it to ``Writer(clock=...)``."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward; returns the new time."""
        with self._lock:
            self.now += seconds
            return self.now


@dataclass(frozen=True, slots=True)
class Call:
    activity: str
    key: str
    attempt: int
    params: JSON


@dataclass
class Recorder:
    """A fresh activity registry whose handlers record every call they receive."""

    registry: activities.Registry = field(default_factory=activities.Registry)
    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, handler: Callable[..., Any]) -> None:
        """Register ``handler`` under ``name``, wrapped so that its calls are counted."""
        if inspect.iscoroutinefunction(handler):

            async def counted_async(params: JSON, ctx: invoke.Context) -> Any:
                self._note(name, params, ctx)
                return await handler(params, ctx)

            self.registry.register(name, counted_async)
        else:

            def counted(params: JSON, ctx: invoke.Context) -> Any:
                self._note(name, params, ctx)
                return handler(params, ctx)

            self.registry.register(name, counted)

    def activity(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator form of ``add``."""

        def register(handler: Callable[..., T]) -> Callable[..., T]:
            self.add(name, handler)
            return handler

        return register

    def _note(self, name: str, params: JSON, ctx: invoke.Context) -> None:
        with self._lock:
            self.calls.append(Call(name, ctx.idempotency_key, ctx.attempt, params))

    def count(self, name: str | None = None) -> int:
        with self._lock:
            return sum(1 for c in self.calls if name is None or c.activity == name)

    def of(self, name: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.activity == name]


def wait_until(
    condition: Callable[[], T | None], what: str, timeout: float = DEADLINE, every: float = 0.02
) -> T:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def deploy(client: Client, text: str) -> loader.Document:
    """Load definition text, deploy it and return the document."""
    document = loader.loads(text)
    client.deploy(document)
    return document


def deploy_file(client: Client, name: str) -> loader.Document:
    """Deploy one of the definitions in tests/integration/definitions."""
    document = loader.load(DEFINITIONS / name)
    client.deploy(document)
    return document


def history(client: Client, execution_id: str, *types: str) -> list[events.Event]:
    """The execution's events, only those of ``types`` when given."""
    found = client.history(execution_id)
    return [e for e in found if not types or e.type in types]


def types_of(client: Client, execution_id: str) -> list[str]:
    return [e.type for e in client.history(execution_id)]


def entered(client: Client, execution_id: str) -> list[str]:
    """The names of the states the execution entered, in order."""
    return [e.state or "" for e in history(client, execution_id, events.STATE_ENTERED)]


def closed(client: Client, execution_id: str) -> bool:
    return bool(client.describe(execution_id)["status"] != "RUNNING")


def wait_closed(client: Client, execution_id: str, timeout: float = DEADLINE) -> dict[str, Any]:
    """Wait for the execution to close and return its view."""
    view = client.wait(execution_id, timeout=timeout)
    assert view["status"] != "RUNNING", f"{execution_id} still running after {timeout:g}s"
    return view


def assert_replays(client: Client) -> int:
    """Every execution in the database folds from its history to its stored snapshot."""
    views = client.executions(limit=1_000_000)
    for view in views:
        same, folded, stored = client.replay(view["id"])
        if not same:
            keys = sorted(k for k in set(folded) | set(stored) if folded.get(k) != stored.get(k))
            raise AssertionError(
                f"replay of {view['id']} differs from its snapshot in {keys}: "
                f"folded {[folded.get(k) for k in keys]} stored {[stored.get(k) for k in keys]}"
            )
    return len(views)


def offer(
    registry: activities.Registry | Sequence[str],
    worker: str = "hand",
    queues: Sequence[str] = ("default",),
    slots: int = 1,
) -> leasing.Offer:
    return leasing.Offer(worker=worker, queues=queues, activities=tuple(registry), slots=slots)


def run_claim(claim: leasing.Claim, registry: activities.Registry) -> invoke.Outcome:
    """Run a claimed task's activity as a worker would, and return its outcome."""
    ctx = invoke.Context(
        execution_id=claim.execution_id,
        state=claim.state,
        activity=claim.activity,
        task_id=claim.task_id,
        attempt=claim.attempt,
        idempotency_key=claim.key,
        heartbeat_details=claim.heartbeat_details,
    )
    return invoke.invoke(registry[claim.activity], claim.input, ctx)


def work_one(
    dispatcher: Dispatcher,
    registry: activities.Registry,
    worker: str = "hand",
    queues: Sequence[str] = ("default",),
) -> leasing.Claim:
    """Claim one task, run it and record its outcome; fails if nothing was claimable."""
    claims = dispatcher.claim(offer(registry, worker, queues))
    assert len(claims) == 1, f"expected one claimable task, got {claims}"
    claim = claims[0]
    assert dispatcher.finish(claim, worker, run_claim(claim, registry)) is not None
    return claim


def drain(
    dispatcher: Dispatcher,
    registry: activities.Registry,
    worker: str = "hand",
    queues: Sequence[str] = ("default",),
) -> int:
    """Run claimable tasks by hand until there are none; returns how many ran."""
    ran = 0
    while claims := dispatcher.claim(offer(registry, worker, queues)):
        for claim in claims:
            assert dispatcher.finish(claim, worker, run_claim(claim, registry)) is not None
            ran += 1
    return ran


def count_rows(client: Client, table: Any, execution_id: str | None = None) -> int:
    import sqlalchemy as sa

    query = sa.select(sa.func.count()).select_from(table)
    if execution_id is not None:
        query = query.where(table.c.execution_id == execution_id)
    with client.writer.read() as conn:
        return int(conn.execute(query).scalar_one())


# -- the command line as a subprocess ---------------------------------------------------------


def cairn_command() -> list[str]:
    """How to run the ``cairn`` console script (the installed one when on PATH)."""
    script = shutil.which("cairn")
    if script is not None:
        return [script]
    return [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test process's environment, with this repository importable (tests.integration)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("CAIRN_DATABASE_URL", None)
    env.update(extra)
    return env


def cairn(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    """Run ``cairn ARGS`` to completion; returns the CompletedProcess (text mode)."""
    return subprocess.run(
        [*cairn_command(), *args],
        cwd=ROOT,
        env=env or subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class WorkerProcess:
    """``cairn worker`` in a subprocess, with its stderr collected line by line."""

    def __init__(self, db_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [*cairn_command(), "--db", db_url, "worker", *args],
            cwd=ROOT,
            env=env or subprocess_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = DEADLINE) -> str:
        """Wait until the worker printed a line containing ``text``; returns the line."""

        def seen() -> str | None:
            found = next((line for line in self.lines if text in line), None)
            if found is None and self.process.poll() is not None:
                self._reader.join(5)
                found = next((line for line in self.lines if text in line), None)
                if found is None:
                    raise AssertionError(
                        f"worker exited ({self.process.returncode}) before printing {text!r}:\n"
                        + self.output
                    )
            return found

        return wait_until(seen, f"worker to print {text!r}", timeout)

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = DEADLINE) -> int:
        """SIGTERM, then wait for a clean exit; returns the exit code."""
        self.terminate()
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()


def per_key(calls: Sequence[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How many times each (activity, idempotency key) ran."""
    return Counter((c["activity"], c["key"]) for c in calls)
