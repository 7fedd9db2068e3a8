"""``cairn worker``, ``cairn workers`` and ``cairn db upgrade``: the long-running process, who
is running, and the schema step."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

import click

from cairn.cli import common
from cairn.core import limits

if TYPE_CHECKING:
    from cairn.runtime import worker

MAX = limits.MAX_SECONDS
"""The longest grace period or lease: the longest a definition's timeouts may be."""
LONGEST_POLL = 3600
"""A worker looks for work at least hourly even when no news of any came."""


@click.command(name="worker")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="Q",
    callback=common.check_queues,
    help="Task queue to serve (repeatable; default: default).",
)
@click.option(
    "--concurrency",
    type=common.CONCURRENCY,
    default=4,
    show_default=True,
    help="Activities run at once.",
)
@click.option(
    "--activities",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Module registering the activities (default: CAIRN_ACTIVITIES, else activities).",
)
@common.path_option
@click.option(
    "--grace",
    type=common.Seconds(0, MAX),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM/Ctrl-C, how long running activities may finish.",
)
@click.option(
    "--poll",
    cls=common.EngineDefault,
    engine_default="cairn.runtime.worker:DEFAULT_POLL",
    type=common.Seconds(0.01, LONGEST_POLL),
    show_default=True,
    metavar="SECONDS",
    help="How often to look for work and due timers even when no news of any came.",
)
@click.option(
    "--lease",
    type=common.Seconds(0.5, MAX),
    cls=common.EngineDefault,
    engine_default="cairn.runtime.leasing:DEFAULT_LEASE",
    show_default=True,
    envvar="CAIRN_LEASE_SECONDS",
    metavar="SECONDS",
    help="How long a task stays with this worker between renewals (without HeartbeatSeconds): "
    "should the worker die, others take its tasks after this. Also CAIRN_LEASE_SECONDS.",
)
@click.pass_context
def worker_command(
    ctx: click.Context,
    queues: tuple[str, ...],
    concurrency: int,
    modules: tuple[str, ...],
    paths: tuple[str, ...],
    grace: float,
    poll: float,
    lease: float,
) -> None:
    """Run activities and fire timers until stopped.

    Claims tasks of its queues for the activities it has, fires due timers, and takes over
    the tasks of workers that died once their lease runs out. New work wakes it at once
    (PostgreSQL notifications; on SQLite, a cheap watch of the file). SIGTERM or Ctrl-C
    stops claiming, lets running activities finish within --grace seconds, and hands back
    the rest at once. `cairn workers` lists the workers running.

    \b
    Example:
      cairn worker --queue default --queue payments --concurrency 8
    """
    from cairn.runtime import worker

    registry = common.load_activities(modules, paths)
    tasks = common.open_dispatcher(ctx)
    on_tty = sys.stderr.isatty()
    runner = worker.Worker(
        tasks,
        registry,
        queues=queues or ("default",),
        concurrency=concurrency,
        grace=grace,
        poll=poll,
        lease=lease,
        on_progress=_print_progress if on_tty else None,
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runner.start()
    click.echo(
        f"worker {runner.id}: queues {', '.join(runner.queues)}; "
        f"{len(registry)} activities; concurrency {concurrency}; lease {lease:g}s",
        err=True,
    )
    stop.wait()
    click.echo(f"worker {runner.id}: stopping (grace {grace:g}s)", err=True)
    released = runner.stop()
    click.echo(f"worker {runner.id}: stopped; {released} task(s) handed back", err=True)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_progress(event: worker.Progress) -> None:
    claim = event.claim
    detail = f": {event.detail}" if event.detail else ""
    click.echo(
        f"{claim.execution_id}  {claim.state} [{claim.activity}] attempt {claim.attempt}"
        f" {event.kind}{detail}",
        err=True,
    )


@click.command(name="workers")
@click.option("--all", "everyone", is_flag=True, help="Also workers presumed dead lately.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def workers_command(ctx: click.Context, everyone: bool, as_json: bool) -> None:
    """Workers running on this database: where, what they serve, how busy, last heartbeat.

    A worker beats every third of its lease; one silent for a whole lease is presumed dead
    (shown with --all) and its tasks go to other workers.
    """
    found = common.open_client(ctx).workers(everyone=everyone)
    if as_json:
        common.print_json(found)
        return
    if not found:
        click.echo("no workers running" if not everyone else "no workers", err=True)
        return
    common.table(
        [
            (
                w["id"],
                w["host"],
                w["pid"],
                ",".join(w["queues"]),
                _shorten(",".join(w["activities"]), 40),
                f"{w['heartbeat_age']:.1f}s ago" + ("" if w["live"] else " (presumed dead)"),
                f"{w['in_flight']}/{w['concurrency']}",
                w["slot_restarts"],
            )
            for w in found
        ],
        [
            "ID",
            "HOST",
            "PID",
            "QUEUES",
            "ACTIVITIES",
            "LAST HEARTBEAT",
            "IN FLIGHT",
            "SLOT RESTARTS",
        ],
    )


@click.group(name="db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Create or upgrade Cairn's tables (SQLite does this on first use)."""
    from cairn.runtime import database

    assert ctx.parent is not None and ctx.parent.parent is not None
    url = ctx.parent.parent.obj["db"]
    version = database.migrate(database.connect(url, upgrade=False))
    click.echo(f"schema at version {version}")


COMMANDS = [worker_command, workers_command, db_group]
