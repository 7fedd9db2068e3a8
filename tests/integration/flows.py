"""Activities for the integration tests that worker subprocesses import by module name.

``cairn worker --activities tests.integration.flows`` registers them in the process-wide
registry.  Every call appends one JSON line (activity, idempotency key, attempt, process id)
to the file named by ``CAIRN_TEST_CALLS``, so a test can count, across processes, how often
each task really ran.  ``Steps.Two`` holds until the file named by ``CAIRN_TEST_GATE``
exists, which lets a test stop a worker while a task is in flight.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from cairn import ActivityError, activity
from cairn.runtime.invoke import Context

CALLS = "CAIRN_TEST_CALLS"
GATE = "CAIRN_TEST_GATE"
DEFINITIONS = Path(__file__).parent / "definitions"
GATE_TIMEOUT = 60.0


def record(ctx: Context) -> None:
    """Append one line for this call; a single O_APPEND write keeps lines whole across processes."""
    path = os.environ.get(CALLS)
    if not path:
        return
    line = json.dumps(
        {
            "activity": ctx.activity,
            "key": ctx.idempotency_key,
            "attempt": ctx.attempt,
            "execution": ctx.execution_id,
            "pid": os.getpid(),
        }
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def calls(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The calls recorded in ``path``, oldest first."""
    file = Path(path)
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line]


@activity("Fan.Prepare")
def fan_prepare(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    record(ctx)
    return {"n": params.get("n")}


@activity("Fan.Left")
def fan_left(params: dict[str, Any], ctx: Context) -> str:
    record(ctx)
    return "left"


@activity("Fan.Right")
def fan_right(params: dict[str, Any], ctx: Context) -> str:
    record(ctx)
    return "right"


@activity("Fan.Join")
def fan_join(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    record(ctx)
    return {"n": params["n"], "joined": "+".join(params["branches"])}


@activity("Steps.One")
def steps_one(params: dict[str, Any], ctx: Context) -> int:
    record(ctx)
    return 1


@activity("Steps.Two")
def steps_two(params: dict[str, Any], ctx: Context) -> int:
    record(ctx)
    gate = os.environ.get(GATE)
    deadline = time.monotonic() + GATE_TIMEOUT
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise ActivityError("GateClosed", f"{gate} did not appear", retryable=False)
        time.sleep(0.01)
    return 2


@activity("Steps.Three")
def steps_three(params: dict[str, Any], ctx: Context) -> int:
    record(ctx)
    return 3


@activity("Greet")
def greet(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    record(ctx)
    if params.get("fail"):
        raise ActivityError(params["fail"], f"{params['name']} asked to fail", retryable=False)
    return {"greeting": f"hello {params['name']}"}
