"""Commands on executions: start, run, list, describe, history, replay, signal, cancel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cairn.cli import common

if TYPE_CHECKING:
    from cairn.core import model
    from cairn.runtime import worker

INPUT_HELP = "Input JSON: inline, @path/to/file.json, or - for standard input."
LIST_LIMIT = 10**9
"""The most executions ``list`` shows: what ``replay --all`` reads, far past any screen."""


def _check_activities(spec: model.Definition, registered: set[str]) -> None:
    from cairn.core import model

    missing = sorted(set(model.activities_of(spec)) - registered)
    if missing:
        raise common.UsageError(
            f"{spec.name}@{spec.version} needs activities that are not registered: "
            f"{', '.join(missing)} (import them with --activities MODULE)"
        )


@click.command()
@click.argument("target", metavar="NAME[@VERSION]")
@click.option("--input", "input_text", default="{}", metavar="JSON", help=INPUT_HELP)
@click.option("--id", "execution_id", metavar="ID", help="Execution id; starting twice is safe.")
@click.option(
    "--activities",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Refuse to start if these modules do not register every activity needed.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def start(
    ctx: click.Context,
    target: str,
    input_text: str,
    execution_id: str | None,
    modules: tuple[str, ...],
    as_json: bool,
) -> None:
    """Start an execution of a deployed workflow (the newest version unless @VERSION).

    With --id, starting again with the same input returns the existing execution, and with
    a different input is refused. Workers run it: see `cairn worker`.

    \b
    Example:
      cairn start order@2 --input @order.json --id order-A1001
    """
    name, version = common.parse_target(target)
    given = common.read_json(input_text)
    client = common.open_client(ctx)
    if modules:
        _check_activities(client.definition(name, version), set(common.load_activities(modules)))
    view = client.start(name, given, version=version, execution_id=execution_id)
    if as_json:
        common.print_json(view)
    else:
        click.echo(f"{view['id']}  {view['workflow']}@{view['version']}  {view['status']}")


@click.command()
@click.argument("target", metavar="PATH|NAME[@VERSION]")
@click.option("--input", "input_text", default="{}", metavar="JSON", help=INPUT_HELP)
@click.option("--id", "execution_id", metavar="ID", help="Execution id; running twice is safe.")
@click.option(
    "--activities",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Module registering the activities (default: CAIRN_ACTIVITIES, else activities).",
)
@common.path_option
@click.option(
    "--concurrency",
    type=common.CONCURRENCY,
    default=4,
    show_default=True,
    help="Activities run at once.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole execution as JSON.")
@click.pass_context
def run(
    ctx: click.Context,
    target: str,
    input_text: str,
    execution_id: str | None,
    modules: tuple[str, ...],
    paths: tuple[str, ...],
    concurrency: int,
    as_json: bool,
) -> None:
    """Start an execution and work on it in this process until it closes.

    TARGET is a definition file (deployed first if needed) or a deployed NAME[@VERSION].
    The execution's output goes to stdout; progress goes to stderr on a terminal. Exits 0
    when the execution succeeded, 1 otherwise. Interrupted, the execution stays recorded
    and any `cairn worker` finishes it.

    \b
    Example:
      cairn run definitions/order/v2.yaml --input @order.json
    """
    from cairn.core import model
    from cairn.definitions import loader
    from cairn.runtime import dispatcher, worker

    # What the command line got wrong is said before the database is opened.
    given = common.read_json(input_text)
    named = None if Path(target).is_file() else common.parse_target(target)
    registry = common.load_activities(modules, paths)
    client = common.open_client(ctx)
    version: int | None
    if named is None:
        doc = loader.load(target, list(registry))
        client.deploy(doc)
        name, version = doc.name, doc.version
    else:
        name, version = named
    spec = client.definition(name, version)
    _check_activities(spec, set(registry))
    view = client.start(spec.name, given, version=spec.version, execution_id=execution_id)
    queues = set(model.activities_of(spec).values()) or {"default"}
    progress = _progress if sys.stderr.isatty() else None
    runner = worker.Worker(
        dispatcher.Dispatcher(client.writer),
        registry,
        queues=queues,
        concurrency=concurrency,
        on_progress=progress,
        grace=5.0,
    )
    if progress:
        click.echo(f"▶ {view['id']}  {spec.name}@{spec.version}", err=True)
    runner.start()
    try:
        view = client.wait(view["id"])
    except KeyboardInterrupt:
        runner.stop(grace=2.0)
        click.echo(
            f"interrupted: execution {view['id']} is recorded; `cairn worker` will finish it",
            err=True,
        )
        sys.exit(130)
    runner.stop()
    _finish(view, as_json)


def _progress(event: worker.Progress) -> None:
    claim = event.claim
    attempt = f" (attempt {claim.attempt})" if claim.attempt > 1 else ""
    marks = {"started": "…", "succeeded": "✓", "failed": "✗", "lost": "!"}
    detail = f": {event.detail}" if event.detail else ""
    click.echo(
        f"  {marks[event.kind]} {claim.state} [{claim.activity}]{attempt} {event.kind}{detail}",
        err=True,
    )


def _finish(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        common.print_json(view)
    elif view["status"] == "SUCCEEDED":
        common.print_json(view["output"])
    if view["status"] != "SUCCEEDED":
        if not as_json:
            click.echo(f"{view['status']}: {view['error']}: {view['cause']}", err=True)
        sys.exit(1)


@click.command(name="list")
@click.option(
    "--status",
    type=click.Choice(
        ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"], case_sensitive=False
    ),
)
@click.option("--workflow", metavar="NAME", help="Only executions of this workflow.")
@click.option(
    "--limit",
    type=click.IntRange(1, LIST_LIMIT),
    default=50,
    show_default=True,
    help="At most this many, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_executions(
    ctx: click.Context, status: str | None, workflow: str | None, limit: int, as_json: bool
) -> None:
    """Executions, newest first."""
    rows = common.open_client(ctx).executions(
        status=status.upper() if status else None, workflow=workflow, limit=limit
    )
    if as_json:
        common.print_json(rows)
        return
    common.table(
        [
            (
                r["id"],
                f"{r['workflow']}@{r['version']}",
                r["status"],
                r["started_at"],
                r["closed_at"] or "",
            )
            for r in rows
        ],
        ["ID", "WORKFLOW", "STATUS", "STARTED", "CLOSED"],
    )


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def describe(ctx: click.Context, execution_id: str, as_json: bool) -> None:
    """Status, current state(s), data, timers and pending tasks of an execution."""
    view = common.open_client(ctx).inspect(execution_id)
    if as_json:
        common.print_json(view)
        return
    click.echo(f"{view['id']}  {view['workflow']}@{view['version']}  {view['status']}")
    click.echo(f"  started  {view['started_at']}")
    if view["closed_at"]:
        click.echo(f"  closed   {view['closed_at']}")
    if view["error"]:
        click.echo(f"  error    {view['error']}: {view['cause']}")
    click.echo(f"  input    {common.compact(view['input'], 100)}")
    if view["status"] == "SUCCEEDED":
        click.echo(f"  output   {common.compact(view['output'], 100)}")
    for s in view["states"]:
        where = f" in {s['scope']}" if s["scope"] else ""
        click.echo(f"  at       {s['state']}{where} since {s['entered_at']}")
    for t in view["tasks"]:
        owner = f" on {t['worker']}" if t["worker"] else " (waiting for a worker)"
        click.echo(f"  task     {t['activity']} attempt {t['attempt']}{owner}  key {t['key']}")
    for t in view["timers"]:
        click.echo(f"  timer    {t['purpose']} {t['state'] or ''} due {t['due']}")
    for s in view["signals"]:
        click.echo(f"  signal   {s['name']} (not consumed yet)")
    if view["compensated"]:
        click.echo(f"  undone   {', '.join(view['compensated'])}")
    for r in view["refused"]:
        click.echo(
            f"  refused  {r['activity']} attempt {r['attempt']} {r['outcome']} on {r['worker']}"
            f" at {r['refused_at']}: {r['reason']}"
        )


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of events.")
@click.pass_context
def history(ctx: click.Context, execution_id: str, as_json: bool) -> None:
    """The event history of an execution, oldest first (every run, after ContinueAsNew)."""
    from cairn.core import step

    found = common.open_client(ctx).history(execution_id)
    if as_json:
        common.print_json(
            [
                {
                    "run": e.run,
                    "seq": e.seq,
                    "type": e.type,
                    "timestamp": step.iso(e.time),
                    "state": e.state,
                    "scope": e.scope,
                    "details": e.details,
                }
                for e in found
            ]
        )
        return
    runs = len({e.run for e in found}) > 1
    common.table(
        [
            (
                *((e.run,) if runs else ()),
                e.seq,
                step.iso(e.time),
                e.type,
                f"{e.scope}/{e.state}" if e.scope and e.state else e.state or "",
                common.compact(e.details, 70),
            )
            for e in found
        ],
        [*(["RUN"] if runs else []), "SEQ", "TIME", "TYPE", "STATE", "DETAILS"],
    )


@click.command()
@click.argument("execution_ids", nargs=-1, metavar="ID...")
@click.option("--all", "every", is_flag=True, help="Check every execution in the database.")
@click.pass_context
def replay(ctx: click.Context, execution_ids: tuple[str, ...], every: bool) -> None:
    """Re-fold histories and check them against the stored snapshots (exit 1 on a mismatch)."""
    client = common.open_client(ctx)
    ids = list(execution_ids)
    if every:
        ids += [v["id"] for v in client.executions(limit=LIST_LIMIT)]
    if not ids:
        raise common.UsageError("name at least one execution ID, or --all")
    bad = 0
    for execution_id in ids:
        same, folded, stored = client.replay(execution_id)
        if same:
            click.echo(f"ok {execution_id}")
            continue
        bad += 1
        keys = sorted(k for k in set(folded) | set(stored) if folded.get(k) != stored.get(k))
        click.echo(f"MISMATCH {execution_id}: differs in {', '.join(keys)}", err=True)
    if bad:
        sys.exit(1)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.argument("name")
@click.option("--payload", "payload_text", default="null", metavar="JSON", help=INPUT_HELP)
@click.pass_context
def signal(ctx: click.Context, execution_id: str, name: str, payload_text: str) -> None:
    """Send a named signal; it is recorded even if nothing waits for it yet."""
    payload = common.read_json(payload_text, "--payload")
    common.open_client(ctx).signal(execution_id, name, payload)
    click.echo(f"signal {name} recorded for {execution_id}")


@click.command()
@click.argument("execution_id", metavar="ID")
@click.argument("name", required=False)
@click.pass_context
def query(ctx: click.Context, execution_id: str, name: str | None) -> None:
    """Read a running execution without changing it.

    With NAME, evaluate the definition's named query (its Queries section) over the current
    data and print the JSON result; without, print where it stands (states, data, tasks,
    timers) as JSON.

    \b
    Example:
      cairn query order-A1001 tracking
    """
    client = common.open_client(ctx)
    if name is None:
        view = client.inspect(execution_id)
        common.print_json(
            {
                k: view[k]
                for k in ("id", "status", "states", "tasks", "timers", "signals", "input", "output")
            }
        )
    else:
        common.print_json(client.query(execution_id, name))


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--reason", default="", help="Why; kept in the history.")
@click.pass_context
def cancel(ctx: click.Context, execution_id: str, reason: str) -> None:
    """Cancel a running execution: its timers and pending tasks are dropped."""
    common.open_client(ctx).cancel(execution_id, reason)
    click.echo(f"cancelled {execution_id}")


@click.command()
@click.argument("token")
@click.option("--output", "output_text", metavar="JSON", help="The task's result. " + INPUT_HELP)
@click.option("--error", metavar="NAME", help="Fail the task with this error name instead.")
@click.option("--cause", default="", help="With --error: what went wrong.")
@click.pass_context
def complete(
    ctx: click.Context, token: str, output_text: str | None, error: str | None, cause: str
) -> None:
    """Complete a callback task (Callback: true) by the token its activity was handed.

    A token completes at most once; the task's TimeoutSeconds and HeartbeatSeconds run
    until it does.

    \b
    Examples:
      cairn complete "$TOKEN" --output '{"approved": true}'
      cairn complete "$TOKEN" --error Rejected --cause "the manager said no"
    """
    if (output_text is None) == (error is None):
        raise common.UsageError("give exactly one of --output JSON or --error NAME")
    output = None if output_text is None else common.read_json(output_text, "--output")
    common.open_client(ctx).complete(token, output, error=error, cause=cause)
    click.echo("failed" if error else "completed")


@click.command()
@click.argument("token")
@click.pass_context
def heartbeat(ctx: click.Context, token: str) -> None:
    """Tell a waiting callback task that the outside work goes on (its HeartbeatSeconds)."""
    common.open_client(ctx).heartbeat(token)
    click.echo("recorded")


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def redrive(ctx: click.Context, execution_id: str, as_json: bool) -> None:
    """Resume a FAILED or TIMED_OUT execution from the state where it stopped.

    The history is kept and nothing that completed runs again: a Task is tried anew, a
    Parallel or Map runs only the branches or items that had not finished. Workers pick it up.
    """
    view = common.open_client(ctx).redrive(execution_id)
    if as_json:
        common.print_json(view)
    else:
        click.echo(f"{view['id']}  {view['workflow']}@{view['version']}  {view['status']}")


COMMANDS = [
    start,
    run,
    list_executions,
    describe,
    history,
    replay,
    signal,
    query,
    cancel,
    complete,
    heartbeat,
    redrive,
]
