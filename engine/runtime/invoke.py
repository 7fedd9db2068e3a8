"""Running one activity: its context, the call (sync or async), and checking what it returned.

Whatever the handler does, the outcome is a command for the core, never an exception that
could take the worker down: a handler's exception becomes a task failure named after its
class, and a result that is not JSON or is too large fails the task with a clear cause.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cairn import activities
from cairn.core import commands, names
from cairn.jsontypes import JSON

PAYLOAD_LIMIT = 256 * 1024
"""Largest input or task result, in bytes of compact JSON (as Step Functions)."""


@dataclass(slots=True, kw_only=True)
class Context:
    """What an activity knows about the task it runs, and its line back to the engine."""

    execution_id: str
    state: str
    activity: str
    task_id: str
    attempt: int
    idempotency_key: str
    heartbeat_details: JSON = None
    """The details of the last heartbeat of an earlier attempt: where to resume from."""
    worker: str = ""
    """The worker running this attempt (the owner of its lease)."""
    _beat: Callable[[JSON], bool] = field(default=lambda details: True, repr=False)
    cancelled: bool = False
    """Set by a heartbeat that found the task gone (cancelled, or taken over): stop early."""

    @property
    def task_token(self) -> str:
        """The token that completes a ``Callback: true`` task (``cairn complete TOKEN``)."""
        return self.task_id

    def heartbeat(self, details: JSON = None) -> None:
        """Tell the engine the activity is alive, optionally with progress to resume from."""
        if not self._beat(details):
            self.cancelled = True


def invoke(handler: activities.Handler, params: JSON, ctx: Context) -> commands.Command:
    """Run ``handler`` and turn whatever happens into CompleteTask or FailTask."""
    try:
        result = handler(params, ctx)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
    except activities.ActivityError as exc:
        return commands.FailTask(
            task_id=ctx.task_id, error=exc.name, cause=exc.cause, retryable=exc.retryable
        )
    except Exception as exc:
        return commands.FailTask(task_id=ctx.task_id, error=type(exc).__name__, cause=str(exc))
    return check_result(ctx, result)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def check_result(ctx: Context, result: Any) -> commands.Command:
    """A valid result completes the task; one that is not JSON or too large fails it."""
    try:
        # Strict JSON (no NaN or Infinity), and storable as the store encodes it (orjson
        # also refuses integers beyond 64 bits).
        json.dumps(result, allow_nan=False)
        encoded = orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
        return commands.FailTask(
            task_id=ctx.task_id,
            error=names.RUNTIME,
            cause=f"activity {ctx.activity} returned a result that is not JSON: {exc}",
            retryable=False,
        )
    size = len(encoded)
    if size > PAYLOAD_LIMIT:
        return commands.FailTask(
            task_id=ctx.task_id,
            error=names.DATA_LIMIT_EXCEEDED,
            cause=f"activity {ctx.activity} returned {size} bytes; "
            f"the limit is {PAYLOAD_LIMIT // 1024} KiB",
            retryable=False,
        )
    # The result as it will be stored (tuples become lists, keys strings), so that the state
    # this process goes on with is the one a reload would give.
    return commands.CompleteTask(task_id=ctx.task_id, result=orjson.loads(encoded))
