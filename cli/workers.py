"""``cairn worker``, ``cairn workers`` and ``cairn db upgrade``: the long-running process, who
is running, and the schema step."""

from __future__ import annotations

import logging
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

log = logging.getLogger("cairn.worker")

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
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="How stderr lines are written. text: for people (each task's progress on a "
    "terminal). json: one JSON object per line, for log shippers, with time, level, worker, "
    "event (task.started, task.failed, worker.stopped...), message and the event's fields "
    "(execution_id, state, task, activity, attempt, error); task progress included.",
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
    log_format: str,
) -> None:
    """Run activities and fire timers until stopped.

    Claims tasks of its queues for the activities it has, fires due timers, and takes over
    the tasks of workers that died once their lease runs out. New work wakes it at once
    (PostgreSQL notifications; on SQLite, a cheap watch of the file). SIGTERM or Ctrl-C
    stops claiming, lets running activities finish within --grace seconds, and hands back
    the rest at once. `cairn workers` lists the workers running. No line it writes holds
    a password or an execution's data (inputs, results, error causes): `cairn history`
    has those.

    \b
    Example:
      cairn worker --queue default --queue payments --concurrency 8
    """
    from cairn.runtime import database, logs, worker

    worker_id = worker.new_id()
    logs.install(log_format, worker_id)
    # From here on an error ends as a log line of its own format (see ``main``), and a
    # thread that dies as one line, never a traceback holding a statement's parameters.
    ctx.obj["report_error"] = _report_error
    threading.excepthook = _thread_died
    registry = common.load_activities(modules, paths)
    tasks = common.open_dispatcher(ctx)
    runner = worker.Worker(
        tasks,
        registry,
        queues=queues or ("default",),
        concurrency=concurrency,
        grace=grace,
        poll=poll,
        lease=lease,
        worker_id=worker_id,
        on_progress=_log_progress if log_format == "json" or sys.stderr.isatty() else None,
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runner.start()
    log.info(
        "worker %s: queues %s; %d activities; concurrency %d; lease %gs; database %s",
        runner.id,
        ", ".join(runner.queues),
        len(registry),
        concurrency,
        lease,
        database.shown(database.resolve_url(ctx.obj["db"])),
        extra={
            "event": "worker.started",
            "queues": list(runner.queues),
            "activities": len(registry),
            "concurrency": concurrency,
            "lease": lease,
        },
    )
    stop.wait()
    log.info(
        "worker %s: stopping (grace %gs)", runner.id, grace, extra={"event": "worker.stopping"}
    )
    released = runner.stop()
    log.info(
        "worker %s: stopped; %d task(s) handed back",
        runner.id,
        released,
        extra={"event": "worker.stopped", "handed_back": released},
    )


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _log_progress(event: worker.Progress) -> None:
    """A task's progress, one line: a failure by its error name alone, since its cause is
    the activity's own words, which may quote the data (``cairn history`` shows it)."""
    from cairn.runtime import logs

    claim = event.claim
    shown = event.error if event.kind == "failed" else event.detail
    fields = logs.about(claim, f"task.{event.kind}")
    if event.error:
        fields["error"] = event.error
    log.info(
        "%s  %s [%s] attempt %d %s%s",
        claim.execution_id,
        claim.state,
        claim.activity,
        claim.attempt,
        event.kind,
        f": {shown}" if shown else "",
        extra=fields,
    )


def _report_error(line: str) -> None:
    log.error("%s", line, extra={"event": "worker.failed"})


def _thread_died(args: threading.ExceptHookArgs) -> None:
    from cairn.runtime import database

    name = args.thread.name if args.thread is not None else "a thread"
    error = args.exc_type.__name__
    why = database.reason(args.exc_value) if args.exc_value is not None else error
    log.error("%s died: %s: %s", name, error, why, extra={"event": "thread.died", "error": error})


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
