"""``cairn validate``: check definitions before review and deploy, one clear line per problem.

Authors run it on a file, a folder or the whole ``definitions/`` tree, in CI or from an editor;
every problem of every file is listed at once (``FILE:LINE:COL: message (at PATH)``), so one
run shows all there is to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import click

from cairn import activities, errors

SUFFIXES = (".yaml", ".yml", ".json", ".py")


def _registered(ctx: click.Context, param: click.Parameter, module: str | None) -> set[str] | None:
    """Import the activities module and return the names it registers."""
    if module is None:
        return None
    try:
        return set(activities.import_module(module))
    except errors.CairnError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH|MODULE:NAME...")
@click.option(
    "--activities",
    "names",
    metavar="MODULE",
    callback=_registered,
    help="Import this Python module and report Activity names it does not register.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing for valid files.")
def validate(paths: tuple[str, ...], names: set[str] | None, quiet: bool) -> None:
    """Check definitions against the schema and the semantic rules.

    PATH is a definition file (.yaml, .yml or .json), a Python file or MODULE:NAME of
    code workflows (each built now, and its Activity names checked against the handlers
    registered once its module is imported), or a folder, searched recursively. Valid
    files print `ok FILE (Name vVersion)`; each problem prints one line on stderr,
    `FILE:LINE:COL: message (at PATH)`. Exits 0 when every file is valid, 2 otherwise.

    \b
    Examples:
      cairn validate definitions/
      cairn validate definitions/order/v2.yaml --activities activities
    """
    from cairn.codeflow import adapter
    from cairn.definitions import loader

    problems: list[errors.Problem] = []
    for path in paths:
        folder = os.path.isdir(path)
        found = False
        for file in sorted(_definitions_under(path)) if folder else [path]:
            try:
                if adapter.is_target(file):
                    documents = adapter.documents(file, required=not folder)
                else:
                    documents = [loader.load(file, activities=names)]
            except errors.DefinitionError as exc:
                problems.extend(exc.problems)
                found = True
                continue
            found = found or bool(documents)
            for document in documents if not quiet else ():
                click.echo(f"ok {file} ({document.name} v{document.version})")
        if folder and not found:
            # A folder of helper modules holds no definition either.
            message = "no definition files (.yaml, .yml, .json) in this folder"
            problems.append(errors.Problem(file=path, line=0, column=0, message=message))
    if problems:
        raise errors.DefinitionError(problems)


def _definitions_under(folder: str) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        # Hidden folders (.git, .venv) and __pycache__ never hold a repository's definitions.
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        yield from (os.path.join(root, f) for f in files if f.lower().endswith(SUFFIXES))
