"""``cairn export``: a code workflow's definition as YAML, for review, diffing or migration.

The YAML is exactly what deploying the Python registers: it validates, and deploys to the
same content hash, so a team can move a flow from Python to YAML (or check that a refactor
of the Python changed nothing) without guessing.
"""

from __future__ import annotations

from pathlib import Path

import click

from cairn.cli import common


@click.command(name="export")
@click.argument("target", metavar="MODULE:NAME|FILE.py[:NAME]")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the YAML to FILE instead of stdout.",
)
@click.option(
    "--activities",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Import these modules first: the Activity names they register count as registered.",
)
def export(target: str, output: Path | None, modules: tuple[str, ...]) -> None:
    """Print a code workflow's definition as YAML.

    The workflow function runs once, now, to build the definition (exactly as `cairn
    deploy` would); the YAML printed validates and deploys to the same content hash. NAME
    is the attribute holding the workflow, or its workflow name; a file with one workflow
    needs none.

    \b
    Examples:
      cairn export definitions/order_code/v1.py
      cairn export definitions.order_code.v1:order -o order_code.yaml
    """
    from cairn.codeflow import adapter

    if modules:
        common.load_activities(modules)
    found = adapter.load(target)
    if len(found) != 1:
        names = ", ".join(f"{w.function.__name__} ({w.name}@{w.version})" for w in found)
        raise common.UsageError(
            f"{target} defines {len(found)} workflows"
            + (f" ({names}); name one: {target}:NAME" if found else "")
        )
    text = found[0].export()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
