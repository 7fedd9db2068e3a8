"""``cairn worker`` and ``cairn db upgrade``: the long-running process and the schema step."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import click

from cli import common
from engine import database, worker


@click.command(name="worker")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="Q",
    help="Task queue to serve (repeatable; default: default).",
)
@click.option("--concurrency", default=4, show_default=True, help="Activities run at once.")
@click.option(
    "--activities",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Module registering the activities (default: the activities package).",
)
@click.option(
    "--grace",
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM/Ctrl-C, how long running activities may finish.",
)
@click.option(
    "--poll",
    default=0.2,
    show_default=True,
    metavar="SECONDS",
    help="How often to look for work other processes created.",
)
@click.pass_context
def worker_command(
    ctx: click.Context,
    queues: tuple[str, ...],
    concurrency: int,
    modules: tuple[str, ...],
    grace: float,
    poll: float,
) -> None:
    """Run activities and fire timers until stopped.

    Claims tasks of its queues for the activities it has, fires due timers, and takes over
    the tasks of workers that died. SIGTERM or Ctrl-C stops claiming, lets running
    activities finish within --grace seconds, and hands back the rest at once.

    \b
    Example:
      cairn worker --queue default --queue payments --concurrency 8
    """
    registry = common.load_activities(modules)
    svc = common.open_service(ctx)
    on_tty = sys.stderr.isatty()
    runner = worker.Worker(
        svc,
        registry,
        queues=queues or ("default",),
        concurrency=concurrency,
        grace=grace,
        poll=poll,
        on_progress=_print_progress if on_tty else None,
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    click.echo(
        f"worker {runner.id}: queues {', '.join(runner.queues)}; "
        f"{len(registry)} activities; concurrency {concurrency}",
        err=True,
    )
    runner.start()
    stop.wait()
    click.echo(f"worker {runner.id}: stopping (grace {grace:g}s)", err=True)
    released = runner.stop()
    click.echo(f"worker {runner.id}: stopped; {released} task(s) handed back", err=True)


def _print_progress(event: worker.Progress) -> None:
    claim = event.claim
    detail = f": {event.detail}" if event.detail else ""
    click.echo(
        f"{claim.execution_id}  {claim.state} [{claim.activity}] attempt {claim.attempt}"
        f" {event.kind}{detail}",
        err=True,
    )


@click.group(name="db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Create or upgrade Cairn's tables (SQLite does this on first use)."""
    assert ctx.parent is not None and ctx.parent.parent is not None
    url = ctx.parent.parent.obj["db"]
    version = database.migrate(database.connect(url, upgrade=False))
    click.echo(f"schema at version {version}")


COMMANDS = [worker_command, db_group]
