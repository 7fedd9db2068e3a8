"""``cairn deploy`` and ``cairn definitions``: versions registered side by side."""

from __future__ import annotations

from pathlib import Path

import click

from cli import common
from engine import definition, errors


def definition_files(paths: tuple[str, ...]) -> list[Path]:
    """The definition files named, directories expanded to their YAML and JSON files."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
            )
        else:
            found.append(path)
    return found


def load_all(paths: tuple[str, ...], names: list[str] | None) -> list[definition.Document]:
    """Load every file, reporting the problems of all of them before giving up."""
    documents, problems = [], []
    for path in definition_files(paths):
        try:
            documents.append(definition.load(path, names))
        except errors.DefinitionError as exc:
            problems += exc.problems
    if problems:
        raise errors.DefinitionError(problems)
    return documents


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "--activities",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Also refuse Activity names this module does not register.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def deploy(
    ctx: click.Context, paths: tuple[str, ...], modules: tuple[str, ...], as_json: bool
) -> None:
    """Register definition versions (files or folders).

    Re-deploying identical content is a no-op; different content under a version that is
    already deployed is refused, because running executions depend on it.

    \b
    Example:
      cairn deploy definitions/
    """
    names = list(common.load_activities(modules)) if modules else None
    svc = common.open_service(ctx)
    results = [svc.deploy(doc) for doc in load_all(paths, names)]
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
    rows = common.open_service(ctx).definitions(name)
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
