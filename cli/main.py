"""The ``cairn`` command group: global options and the one place errors become exit codes.

Commands live in their own modules and are registered here. A command parses its arguments,
calls one engine function and prints; it never catches errors itself, so that every
``CairnError`` reaches the user as clear lines on stderr and the documented exit code,
never as a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import sqlalchemy as sa

from cairn import errors
from cairn.runtime import database


class CairnGroup(click.Group):
    """A click group that turns Cairn's errors into one line each and exit code 1 or 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.DefinitionError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            sys.exit(2)
        except errors.CairnError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(getattr(exc, "exit_code", 1))
        except sa.exc.DBAPIError as exc:
            # The database refused (unreachable, locked for too long, disk full...): nothing
            # was half-written, since every change is one transaction.
            click.echo(f"error: the database refused: {database.reason(exc)}", err=True)
            sys.exit(1)


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


from cairn.cli import validate  # noqa: E402  (commands register after the group exists)

main.add_command(validate.validate)

from cairn.cli import graph  # noqa: E402  (commands register after the group exists)

main.add_command(graph.command)

from cairn.cli import definitions, executions, workers  # noqa: E402  (commands register after the group exists)

main.add_command(definitions.deploy)
main.add_command(definitions.list_definitions)

from cairn.cli import export  # noqa: E402  (commands register after the group exists)

main.add_command(export.export)
for _command in executions.COMMANDS + workers.COMMANDS:
    main.add_command(_command)
