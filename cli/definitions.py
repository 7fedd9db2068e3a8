"""``cairn deploy`` and ``cairn definitions``: versions registered side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from cairn import activities, errors
from cairn.cli import common

if TYPE_CHECKING:
    from cairn.definitions import loader

SUFFIXES = (".yaml", ".yml", ".json", ".py")


def definition_files(paths: tuple[str, ...]) -> list[str]:
    """The targets named, folders expanded to their YAML, JSON and Python files."""
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(
                str(p)
                for p in path.rglob("*")
                if p.suffix in SUFFIXES
                and p.is_file()
                and not any(part.startswith((".", "__")) for part in p.relative_to(path).parts)
            )
        else:
            found.append(raw)
    return found


def load_all(paths: tuple[str, ...], names: list[str] | None) -> list[loader.Document]:
    """Load every file, reporting the problems of all of them before giving up.

    Code workflows (``FILE.py``, ``MODULE:NAME``) are built and checked against the
    activities registered once their module is imported (and the --activities modules).
    """
    from cairn.codeflow import adapter
    from cairn.definitions import loader

    documents, problems = [], []
    for target in definition_files(paths):
        try:
            if adapter.is_target(target):
                documents += adapter.documents(target, required=target in paths)
            else:
                documents.append(loader.load(target, names))
        except errors.DefinitionError as exc:
            problems += exc.problems
    if problems:
        raise errors.DefinitionError(problems)
    return documents


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="PATH|MODULE:NAME...")
@click.option(
    "--activities",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Also refuse Activity names this module does not register.",
)
@common.path_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def deploy(
    ctx: click.Context,
    targets: tuple[str, ...],
    modules: tuple[str, ...],
    paths: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register definition versions (files or folders, YAML or Python).

    Re-deploying identical content is a no-op; different content under a version that is
    already deployed is refused, because running executions depend on it.

    A Python file (in a folder too) or MODULE:NAME deploys code workflows: each @workflow
    function runs once, now, to build its definition, which is checked like a YAML file
    (Activity names against the handlers registered once its module is imported) and is
    all that runs later.

    \b
    Examples:
      cairn deploy definitions/
      cairn deploy definitions/order_code/v1.py
      cairn deploy definitions.order_code.v1:order
    """
    # Code workflows import their modules as activity modules are imported: --path first.
    activities.search_first(paths)
    names = list(common.load_activities(modules, paths)) if modules else None
    client = common.open_client(ctx)
    results = [client.deploy(doc) for doc in load_all(targets, names)]
    if as_json:
        common.print_json(
            [
                {"name": r.name, "version": r.version, "sha256": r.sha256, "created": r.created}
                for r in results
            ]
        )
        return
    for r in results:
        verb = "deployed" if r.created else "unchanged"
        click.echo(f"{verb} {r.name}@{r.version} ({r.sha256[:12]})")


@click.command(name="definitions")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_definitions(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Deployed versions side by side, with how many executions run on each."""
    rows = common.open_client(ctx).definitions(name)
    if as_json:
        common.print_json(rows)
        return
    if not rows:
        click.echo("no definitions deployed (use `cairn deploy PATH`)", err=True)
        return
    common.table(
        [
            (
                r["name"],
                r["version"],
                r["running"],
                r["executions"],
                r["sha256"][:12],
                r["deployed_at"],
            )
            for r in rows
        ],
        ["NAME", "VERSION", "RUNNING", "EXECUTIONS", "SHA256", "DEPLOYED"],
    )
