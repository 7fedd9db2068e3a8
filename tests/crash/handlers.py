"""Activities for the crash tests' worker processes (``--activities tests.crash.handlers``).

Every call appends a ``start`` line to the journal named by ``CAIRN_CRASH_JOURNAL`` before
it does anything, and an ``end`` line once it is about to return: activity, idempotency key,
attempt, execution, the worker holding the lease and its process, and the time.  One
``O_APPEND`` write per line keeps lines whole across processes, and a process killed with
SIGKILL leaves exactly the lines it wrote.  From the journal a test tells which attempts
ran more than once, and whether two workers ever ran one attempt at the same time.

- ``Crash.<name>`` twins of the order demo's activities (``activities.orders``) journal
  and call the demo's handler, which talks to the demo provider.  A card ``tok_flaky``
  fails its first attempt with ``CardNetworkError`` before reaching the provider, so the
  order's Retry back-off runs; shipping to the ``slow lane`` takes 1.5 seconds;
  ``CAIRN_CRASH_WORK_MS`` adds up to that many milliseconds of work to every call, so
  kills land inside activities too.
- ``Crash.Step`` journals and returns (after ``seconds`` of its input, if given).
- ``Crash.Hold`` stops where the worker process's ``CAIRN_CRASH_HOLD`` says, so a test can
  SIGKILL the worker there: ``before`` the activity does anything (the task is leased, not
  one line journaled), ``during`` it (after a checkpoint heartbeat), or ``returned``: it
  charges, waits for the file ``CAIRN_CRASH_GATE``, journals its ``end`` and returns.
  Elsewhere it charges the demo provider with its key and returns where it resumed from.
- ``Crash.FailOnce`` fails its first attempt (a retryable error) and succeeds after.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from activities import provider
from cairn import ActivityError, activity
from cairn.runtime.invoke import Context
from tests.integration import support

JOURNAL = "CAIRN_CRASH_JOURNAL"
HOLD = "CAIRN_CRASH_HOLD"
GATE = "CAIRN_CRASH_GATE"
WORK_MS = "CAIRN_CRASH_WORK_MS"
FLAKY_CARD = "tok_flaky"
SLOW_LANE = "slow lane"
SLOW_LANE_SECONDS = 1.5
HOLD_LIMIT = 60.0
"""A held activity gives up after this long, so a test that failed leaves no process behind."""


def journal(ctx: Context, at: str, **extra: Any) -> None:
    path = os.environ.get(JOURNAL)
    if not path:
        return
    line = {
        "at": at,
        "activity": ctx.activity,
        "key": ctx.idempotency_key,
        "attempt": ctx.attempt,
        "execution": ctx.execution_id,
        "worker": ctx.worker,
        "pid": os.getpid(),
        "time": time.time(),
        **extra,
    }
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def read_journal(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    file = Path(path)
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line]


def _work() -> None:
    most = float(os.environ.get(WORK_MS, "0"))
    if most > 0:
        time.sleep(random.uniform(0, most) / 1000)


def _journaled(name: str, handler: Callable[[dict[str, Any], Context], Any]) -> None:
    def run(params: dict[str, Any], ctx: Context) -> Any:
        journal(ctx, "start")
        try:
            _work()
            if name == "ChargeCard" and params.get("card") == FLAKY_CARD and ctx.attempt == 1:
                raise ActivityError("CardNetworkError", "the card network timed out")
            if name == "ShipPackage" and params.get("address") == SLOW_LANE:
                time.sleep(SLOW_LANE_SECONDS)
            result = handler(params, ctx)
        except Exception as exc:
            journal(ctx, "end", outcome=type(exc).__name__)
            raise
        journal(ctx, "end", outcome="ok")
        return result

    activity(f"Crash.{name}")(run)


for _name, _handler in support.ORDER_ACTIVITIES.items():
    _journaled(_name, _handler)


@activity("Crash.Step")
def step(params: dict[str, Any] | None, ctx: Context) -> dict[str, Any]:
    journal(ctx, "start")
    if isinstance(params, dict) and "seconds" in params:
        time.sleep(float(params["seconds"]))
    else:
        _work()
    journal(ctx, "end", outcome="ok")
    return {"step": ctx.state}


@activity("Crash.FailOnce")
def fail_once(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    journal(ctx, "start")
    if ctx.attempt == 1:
        journal(ctx, "end", outcome="Flaky")
        raise ActivityError("Flaky", "the first attempt always fails")
    journal(ctx, "end", outcome="ok")
    return {"attempt": ctx.attempt}


def _held(until: Callable[[], bool] = lambda: False) -> None:
    deadline = time.monotonic() + HOLD_LIMIT
    while not until():
        if time.monotonic() > deadline:
            raise ActivityError("HeldTooLong", "nobody killed this worker", retryable=False)
        time.sleep(0.01)


@activity("Crash.Hold")
def hold(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    where = os.environ.get(HOLD, "")
    if where == "before":
        _held()
    journal(ctx, "start", resumed_from=ctx.heartbeat_details)
    if where == "during":
        ctx.heartbeat({"checkpoint": ctx.idempotency_key})
        _held()
    charge = provider.charge(ctx.idempotency_key, ctx.execution_id, float(params.get("amount", 1)))
    if where == "returned":
        gate = os.environ[GATE]
        _held(lambda: os.path.exists(gate))
    journal(ctx, "end", outcome="ok")
    return {"charge": charge["charge_id"], "resumed_from": ctx.heartbeat_details}
