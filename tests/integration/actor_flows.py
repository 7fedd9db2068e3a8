"""Activities and definitions for the tests of signals, cancel, callbacks, sagas, children,
ContinueAsNew and redrive; worker subprocesses import it by module name.

``Actor.Work`` records every call in the calls file (as ``tests.integration.flows`` does),
returns its ``value`` parameter, fails with ``fail`` when that names an error, and holds at
a gate when the test armed one: the file ``hold-TAG`` in the folder named by
``CAIRN_TEST_GATES`` makes the call with that ``tag`` touch ``held-TAG`` and heartbeat until
``go-TAG`` appears.  That is how a test stops a worker at a chosen task, no sleeping.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cairn import ActivityError, activity
from cairn.runtime.invoke import Context
from tests.integration import flows

GATES = "CAIRN_TEST_GATES"
HOLD_LIMIT = 60.0
BEAT_EVERY = 0.1


def arm(folder: Path, tag: str) -> None:
    """Make the next call tagged ``tag`` hold until ``release``."""
    (folder / f"hold-{tag}").touch()


def held(folder: Path, tag: str) -> bool:
    """Whether a call tagged ``tag`` is holding (or held) at its gate."""
    return (folder / f"held-{tag}").exists()


def release(folder: Path, tag: str) -> None:
    (folder / f"go-{tag}").touch()


def hold(tag: str, ctx: Context) -> None:
    folder = os.environ.get(GATES)
    if not folder or not os.path.exists(os.path.join(folder, f"hold-{tag}")):
        return
    Path(folder, f"held-{tag}").touch()
    deadline = time.monotonic() + HOLD_LIMIT
    while not os.path.exists(os.path.join(folder, f"go-{tag}")):
        if time.monotonic() > deadline:
            raise ActivityError("GateClosed", f"go-{tag} did not appear", retryable=False)
        ctx.heartbeat()
        time.sleep(BEAT_EVERY)


@activity("Actor.Work")
def work(params: dict[str, Any], ctx: Context) -> Any:
    flows.record(ctx)
    hold(str(params.get("tag") or ctx.state), ctx)
    if params.get("fail"):
        raise ActivityError(params["fail"], f"{ctx.state} was told to fail", retryable=False)
    return params.get("value")


SAGA = """
Name: saga
Version: 1
StartAt: Book
States:
  Book:
    Type: Task
    Activity: Actor.Work
    Parameters: {value: booked}
    ResultPath: booking
    Compensate:
      Activity: Actor.Work
      Parameters: {tag: UndoBook, value.$: result}
      TimeoutSeconds: 3
      Retry: [{ErrorEquals: [States.ALL], IntervalSeconds: 0.1, MaxAttempts: 5}]
    Next: Pay
  Pay:
    Type: Task
    Activity: Actor.Work
    Parameters: {value: paid}
    ResultPath: payment
    Compensate:
      Activity: Actor.Work
      Parameters: {tag: UndoPay, value.$: result}
      TimeoutSeconds: 3
      Retry: [{ErrorEquals: [States.ALL], IntervalSeconds: 0.1, MaxAttempts: 5}]
    Next: Ship
  Ship:
    Type: Task
    Activity: Actor.Work
    Parameters: {fail: NoCarrier}
    Catch:
      - ErrorEquals: [States.ALL]
        ResultPath: error
        Next: Undo
    End: true
  Undo:
    Type: Compensate
    Next: Failed
  Failed:
    Type: Fail
    ErrorPath: error.Error
    CausePath: error.Cause
"""
"""Book and pay, then shipping fails: the payment and the booking are undone, in that order."""

KID = """
Name: kid
Version: 1
StartAt: Work
States:
  Work:
    Type: Task
    Activity: Actor.Work
    Parameters:
      value.$: "add(n, `1`)"
      fail.$: fail
    HeartbeatSeconds: 2
    Retry: [{ErrorEquals: [States.Timeout], IntervalSeconds: 0.1, MaxAttempts: 3}]
    ResultPath: n
    End: true
"""
"""A child workflow: one task that adds one to ``n`` (or fails with ``fail``)."""

PARENT = """
Name: parent
Version: 1
StartAt: Before
States:
  Before:
    Type: Task
    Activity: Actor.Work
    Parameters: {value: before}
    ResultPath: before
    Next: Child
  Child:
    Type: Task
    Workflow: kid@1
    Parameters:
      n.$: n
      fail.$: fail
    ResultSelector:
      n.$: n
    ResultPath: child
    Catch:
      - ErrorEquals: [Workflow.ChildFailed]
        ResultPath: error
        Next: Caught
    Next: After
  After:
    Type: Task
    Activity: Actor.Work
    Parameters: {value: after}
    ResultPath: after
    End: true
  Caught:
    Type: Pass
    End: true
"""
"""A task, a child execution of ``kid@1``, a task; a failed child is caught."""

LOOP = """
Name: loop
Version: 1
StartAt: Step
States:
  Step:
    Type: Task
    Activity: Actor.Work
    Parameters:
      tag.$: "join('-', ['step', to_string(n)])"
      value.$: n
    HeartbeatSeconds: 2
    Retry: [{ErrorEquals: [States.Timeout], IntervalSeconds: 0.1, MaxAttempts: 3}]
    ResultPath: null
    Next: Count
  Count:
    Type: Pass
    Parameters:
      n.$: "add(n, `1`)"
      limit.$: limit
      every.$: every
    Next: Next?
  Next?:
    Type: Choice
    Choices:
      - Condition: n >= limit
        Next: Finished
      - Condition: "mod(n, every) == `0`"
        Next: Again
    Default: Step
  Again:
    Type: ContinueAsNew
  Finished:
    Type: Succeed
"""
"""``limit`` steps, each a task tagged ``step-N``, with a new run every ``every`` steps."""
