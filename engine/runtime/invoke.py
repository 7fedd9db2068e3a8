"""Running one activity: its context, the call (sync or async), and checking what it returned.

Whatever the handler does, the outcome is a command for the core, never an exception that
could take the worker down: a handler's exception becomes a task failure named after its
class (even ``SystemExit`` or ``KeyboardInterrupt``, which would otherwise end the slot's
thread), and a result that is not JSON, is too large or could not be stored fails the task
with a clear cause.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cairn import activities
from cairn.core import commands, names
from cairn.jsontypes import JSON
from cairn.runtime import payloads

Outcome = commands.CompleteTask | commands.FailTask
"""What one run of an activity ends in: the command that records it."""

_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""A NUL character as JSON writes it: ``\\u0000`` after an even number of backslashes."""


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


def invoke(handler: activities.Handler, params: JSON, ctx: Context) -> Outcome:
    """Run ``handler`` and turn whatever happens into CompleteTask or FailTask."""
    try:
        result = handler(params, ctx)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
    except activities.ActivityError as exc:
        if not (exc.name and payloads.storable(exc.name)):
            # Retry and Catch rules match error names: a failure needs one they can name.
            return commands.FailTask(
                task_id=ctx.task_id,
                error=names.TASK_FAILED,
                cause=f"activity {ctx.activity} raised an ActivityError whose name is empty, "
                f"over {payloads.NAME_LENGTH} characters or holds NUL (cause: {exc.cause})",
                retryable=exc.retryable,
            )
        return commands.FailTask(
            task_id=ctx.task_id, error=exc.name, cause=exc.cause, retryable=exc.retryable
        )
    except Exception as exc:
        return commands.FailTask(task_id=ctx.task_id, error=type(exc).__name__, cause=_text(exc))
    except BaseException as exc:
        # sys.exit(), KeyboardInterrupt and their kind belong to the process, not to an
        # activity: raised here they would end the slot's thread and leave its task leased.
        return commands.FailTask(
            task_id=ctx.task_id,
            error=names.TASK_FAILED,
            cause=f"activity {ctx.activity} raised {type(exc).__name__}({_text(exc)}), "
            "which would have stopped its worker",
        )
    return check_result(ctx, result)


def _text(exc: BaseException) -> str:
    """An exception's message; one whose ``__str__`` fails is named by its class."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose message could not be read>"


async def _await(awaitable: Any) -> Any:
    return await awaitable


def check_result(ctx: Context, result: Any) -> Outcome:
    """A valid result completes the task; one not JSON, too large or with NUL fails it."""
    try:
        # Strict JSON (no NaN or Infinity), and storable as the store encodes it (orjson
        # also refuses integers beyond 64 bits).  Any error of either, a RecursionError
        # included, is the result's: a handler may return any object.
        json.dumps(result, allow_nan=False)
        encoded = orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS)
    except Exception as exc:
        return commands.FailTask(
            task_id=ctx.task_id,
            error=names.RUNTIME,
            cause=f"activity {ctx.activity} returned a result that is not JSON: {_text(exc)}",
            retryable=False,
        )
    if _NUL.search(encoded):
        # PostgreSQL refuses NUL in text and JSON; refused on every database alike.
        return commands.FailTask(
            task_id=ctx.task_id,
            error=names.RUNTIME,
            cause=f"activity {ctx.activity} returned a result with a NUL character (\\u0000), "
            "which cannot be stored",
            retryable=False,
        )
    # The limits every payload meets at the door: nesting, 64-bit integers (orjson takes
    # unsigned ones too) and the payload limit's setting.
    problem = payloads.unfit(result)
    if problem is not None:
        return commands.FailTask(
            task_id=ctx.task_id,
            error=names.RUNTIME,
            cause=f"activity {ctx.activity} returned a result that {problem}",
            retryable=False,
        )
    size, limit = len(encoded), payloads.size_limit()
    if size > limit:
        return commands.FailTask(
            task_id=ctx.task_id,
            error=names.DATA_LIMIT_EXCEEDED,
            cause=f"activity {ctx.activity} returned {size} bytes; "
            f"the limit is {limit // 1024} KiB",
            retryable=False,
        )
    # The result as it will be stored (tuples become lists, keys strings), so that the state
    # this process goes on with is the one a reload would give.
    return commands.CompleteTask(task_id=ctx.task_id, result=orjson.loads(encoded))
