"""Activities of the code-workflow durability test, imported by ``cairn worker`` subprocesses.

``Code.Hold`` heartbeats until the file named by ``CAIRN_TEST_GATE`` exists, so the test
can kill a worker while every execution is inside it. Calls are recorded across processes
by ``tests.integration.flows.record``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from cairn import ActivityError, activity
from cairn.runtime.invoke import Context
from tests.integration import flows

GATE_TIMEOUT = 60.0
BEAT_EVERY = 0.25
"""Well within the flow's HeartbeatSeconds (1)."""


@activity("Code.Prepare")
def prepare(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    flows.record(ctx)
    return {"factor": 10}


@activity("Code.Hold")
def hold(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    flows.record(ctx)
    gate = os.environ.get(flows.GATE)
    deadline = time.monotonic() + GATE_TIMEOUT
    beat = 0.0
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise ActivityError("GateClosed", f"{gate} did not appear", retryable=False)
        if time.monotonic() - beat > BEAT_EVERY:
            ctx.heartbeat()
            beat = time.monotonic()
        time.sleep(0.02)
    return {"held": params["n"]}


@activity("Code.Double")
def double(params: dict[str, Any], ctx: Context) -> int:
    flows.record(ctx)
    return int(params["x"]) * int(params["factor"])


@activity("Code.Echo")
def echo(params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    flows.record(ctx)
    return {"word": params["word"]}
