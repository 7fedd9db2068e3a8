"""The ``cairn`` command group: global options and the one place errors become exit codes.

Commands live in their own modules and are registered here. A command parses its arguments,
calls one engine function and prints; it never catches errors itself, so that every
``CairnError`` reaches the user as clear lines on stderr and the documented exit code,
never as a traceback.

Every ``cairn`` command loads this module and every command module (``--help`` lists them
all), so none of them imports SQLAlchemy, the schema validator or the code-workflow adapter
at the top: a command imports what it needs when it runs, and ``cairn --help`` or ``cairn
describe`` answers without paying for the rest.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from cairn import errors
from cairn.cli import definitions, executions, export, graph, validate, workers


class CairnGroup(click.Group):
    """A click group that turns Cairn's errors into one line each and exit code 1 or 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.DefinitionError as exc:
            for problem in exc.problems:
                _say(ctx, str(problem))
            sys.exit(2)
        except errors.CairnError as exc:
            _say(ctx, f"error: {exc}")
            sys.exit(getattr(exc, "exit_code", 1))
        except Exception as exc:
            refused = _refusal(exc)
            if refused is None:
                raise
            # The database refused (unreachable, locked for too long, disk full...): nothing
            # was half-written, since every change is one transaction.
            _say(ctx, f"error: the database refused: {refused}")
            sys.exit(1)


def _say(ctx: click.Context, line: str) -> None:
    """An error line on stderr, or in the form of the command's log lines (``cairn worker
    --log-format json``) once it set them up."""
    report = ctx.obj.get("report_error") if isinstance(ctx.obj, dict) else None
    if report is None:
        click.echo(line, err=True)
    else:
        report(line)


def _refusal(exc: Exception) -> str | None:
    """The database's reason, if ``exc`` is its refusal: the driver's first line alone, since
    the rest of SQLAlchemy's message is the statement and its parameters (execution data).

    Only a command that loaded SQLAlchemy can have met one, and the others must not pay for
    importing it just to find out.
    """
    if "sqlalchemy" not in sys.modules:
        return None
    import sqlalchemy as sa

    from cairn.runtime import database

    # StatementError, DBAPIError's base: a value the driver could not even send.
    return database.reason(exc) if isinstance(exc, sa.exc.StatementError) else None


@click.group(cls=CairnGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="CAIRN_DATABASE_URL",
    default="sqlite:///cairn.db",
    show_default=True,
    metavar="URL",
    help="Database URL (SQLAlchemy form); also read from CAIRN_DATABASE_URL.",
)
@click.pass_context
def main(ctx: click.Context, db: str) -> None:
    """Cairn: durable state-machine workflows, defined in YAML, run by Python activities.

    Author a definition, check it with `cairn validate`, draw it with `cairn graph`.
    """
    ctx.obj = {"db": db}


for _command in [
    definitions.deploy,
    definitions.list_definitions,
    export.export,
    graph.command,
    validate.validate,
    *executions.COMMANDS,
    *workers.COMMANDS,
]:
    main.add_command(_command)
