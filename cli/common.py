"""What the commands share: opening the database, reading --input, printing for people or --json."""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cairn import activities, errors
from cairn.core import limits

if TYPE_CHECKING:
    from cairn import client
    from cairn.runtime import dispatcher


QUEUE = re.compile(r"[A-Za-z0-9_.-]+")
"""A task queue name, as the definition schema's TaskQueue pattern has it."""
QUEUE_LENGTH = 200
"""The longest queue name: what the tasks table's queue column holds."""
CONCURRENCY = click.IntRange(1, 1000)
"""Activity slots a process runs at once: each is a thread."""


class UsageError(errors.CairnError):
    """The command line asked for something malformed."""

    exit_code = 2


def open_client(ctx: click.Context) -> client.Client:
    from cairn import client

    return client.open_client(ctx.obj["db"])


def open_dispatcher(ctx: click.Context) -> dispatcher.Dispatcher:
    """The worker side alone, for a process that only works."""
    from cairn.runtime import database, dispatcher, writer

    return dispatcher.Dispatcher(writer.Writer(database.connect(ctx.obj["db"])))


class EngineDefault(click.Option):
    """An option whose default is the engine's own constant (``engine_default="MODULE:NAME"``),
    read only when its command runs or shows its help.

    Registering a command must not import the engine module that holds its defaults: every
    ``cairn`` command registers them all, and would wait for SQLAlchemy to do it.
    """

    def __init__(self, *args: Any, engine_default: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine_default = engine_default

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        module, _, name = self.engine_default.partition(":")
        return getattr(importlib.import_module(module), name)


def read_json(text: str, what: str = "--input") -> Any:
    """Inline JSON, ``@path`` to a JSON file, or ``-`` for standard input."""
    source = what
    if text == "-":
        text, source = sys.stdin.read(), f"{what} (standard input)"
    elif text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{what}: cannot read {path}: {exc}") from exc
        source = str(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError:
        # The json module reads nesting by recursion: thousands of levels exhaust the stack.
        raise UsageError(f"{source}: nested too deeply to read (lists and objects)") from None
    except ValueError:
        # The one ValueError left is Python's refusal to read an integer of thousands of digits.
        raise UsageError(
            f"{source}: holds an integer of thousands of digits; integers go from -2**63 to 2**63-1"
        ) from None


def parse_target(target: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION``."""
    name, _, version = target.partition("@")
    if not version:
        return name, None
    shown = f"{target[:60]}..." if len(target) > 60 else target
    # isdigit alone takes "²" and other digits int() refuses.
    if not (version.isascii() and version.isdigit()):
        raise UsageError(f"bad version in {shown!r}: use NAME@VERSION, e.g. order@2")
    if len(version) > len(str(limits.MAX_VERSION)) or not 1 <= int(version) <= limits.MAX_VERSION:
        raise UsageError(f"bad version in {shown!r}: versions go from 1 to {limits.MAX_VERSION:,}")
    return name, int(version)


class Seconds(click.FloatRange):
    """A duration option: a number of seconds within bounds, and finite (click's FloatRange
    takes ``nan``, and ``inf`` where it has no upper bound)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a number of seconds", param, ctx)
        return number


def check_queues(ctx: click.Context, param: click.Parameter, queues: tuple[str, ...]) -> Any:
    """``--queue`` names as a definition's TaskQueue spells them; others could match no task."""
    for queue in queues:
        if not QUEUE.fullmatch(queue) or len(queue) > QUEUE_LENGTH:
            raise click.BadParameter(
                f"{queue[:40]!r} is not a queue name: 1 to {QUEUE_LENGTH} letters, digits, "
                "'_', '.' and '-' (like payments)",
                ctx=ctx,
                param=param,
            )
    return queues


def load_activities(modules: Sequence[str], paths: Sequence[str] = ()) -> activities.Registry:
    """Import the activity modules (see ``activities.load``) and return the registry."""
    return activities.load(modules, paths)


def path_option(command: Callable[..., None]) -> Callable[..., None]:
    """``--path DIR``: also look for activity and workflow modules in DIR (repeatable)."""
    return click.option(
        "--path",
        "paths",
        multiple=True,
        metavar="DIR",
        type=click.Path(exists=True, file_okay=False),
        help="Also import modules from DIR (after the current directory); repeatable.",
    )(command)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


def compact(value: Any, width: int = 60) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Print rows as aligned columns."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        click.echo(click.style(line, bold=True) if n == 0 else line)
