"""``cairn graph``: draw a definition, so a flow can be reviewed as a picture.

Text diagrams (Mermaid, Graphviz dot) need nothing beyond Cairn. Pictures (SVG, PNG) are drawn
by Graphviz's own ``dot`` program, which Cairn runs when it is installed rather than depending
on a Python binding of it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click

from cairn import errors

# What each output file suffix holds: a diagram's text, or a picture Graphviz draws.
TEXT_FORMATS = {".mmd": "mermaid", ".dot": "dot", ".gv": "dot"}
PICTURE_FORMATS = {".svg": "svg", ".png": "png"}

INSTALL_GRAPHVIZ = (
    "drawing {suffix} needs Graphviz's `dot` program, which is not on PATH; install it "
    "(apt-get install graphviz, or brew install graphviz on macOS) or write a .dot/.mmd file"
)


@click.command("graph")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "diagram_format",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Diagram language. With -o the file's suffix chooses it.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to FILE instead of stdout: .mmd, .dot or .gv (text); .svg or .png (drawn by "
    "Graphviz, which must be installed).",
)
@click.pass_context
def command(ctx: click.Context, path: Path, diagram_format: str, output: Path | None) -> None:
    """Draw the state machine defined in PATH as a Mermaid or Graphviz diagram.

    The diagram shows a start point, every state with its type (a Task with its activity or
    child workflow, a Wait with its time or signal), Next arrows, Choice arrows labelled with
    their conditions and "default", dashed Catch arrows labelled with the errors they catch,
    Fail states in red, and Parallel and Map states as frames around their branches' states.

    \b
    Examples:
      cairn graph definitions/order/v2.yaml              # Mermaid on stdout
      cairn graph definitions/order/v2.yaml -o order.mmd
      cairn graph definitions/order/v2.yaml --format dot | dot -Tsvg > order.svg
      cairn graph definitions/order/v2.yaml -o order.svg  # needs Graphviz installed

    Mermaid text renders in GitHub and GitLab Markdown inside a ```mermaid fenced block.
    """
    from cairn import diagram as graph
    from cairn.definitions import loader

    suffix = output.suffix.lower() if output else ""
    if output is not None:
        diagram_format = _format_for(ctx, output, diagram_format)
    body = loader.load(path).body
    text = graph.to_dot(body) if diagram_format == "dot" else graph.to_mermaid(body)
    if output is None:
        click.echo(text, nl=False)
    elif suffix in PICTURE_FORMATS:
        render(text, output)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise errors.CairnError(f"cannot write {output}: {exc.strerror}") from exc


def _format_for(ctx: click.Context, output: Path, asked: str) -> str:
    """Return the diagram language ``output``'s suffix calls for, refusing a contrary --format."""
    suffix = output.suffix.lower()
    if suffix in TEXT_FORMATS:
        wanted = TEXT_FORMATS[suffix]
    elif suffix in PICTURE_FORMATS:
        wanted = "dot"
    else:
        known = ", ".join([*TEXT_FORMATS, *PICTURE_FORMATS])
        raise click.BadParameter(
            f"cannot tell what to write to {output.name!r}; use one of {known}",
            ctx=ctx,
            param_hint="'-o' / '--output'",
        )
    explicit = ctx.get_parameter_source("diagram_format") is not click.core.ParameterSource.DEFAULT
    if explicit and asked != wanted:
        raise click.BadParameter(
            f"{output.name} is written as {wanted}, not {asked}",
            ctx=ctx,
            param_hint="'--format'",
        )
    return wanted


def dot_command(dot_program: str, output: Path) -> list[str]:
    """Return the Graphviz command that draws dot text read from stdin into ``output``."""
    return [dot_program, f"-T{PICTURE_FORMATS[output.suffix.lower()]}", "-o", str(output)]


def render(dot_text: str, output: Path) -> None:
    """Draw ``dot_text`` into the picture file ``output`` with Graphviz's ``dot``."""
    dot_program = shutil.which("dot")
    if dot_program is None:
        raise errors.CairnError(INSTALL_GRAPHVIZ.format(suffix=output.suffix.lower()))
    finished = subprocess.run(
        dot_command(dot_program, output),
        input=dot_text,
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        reason = " ".join(finished.stderr.split()) or f"exit status {finished.returncode}"
        raise errors.CairnError(f"Graphviz could not draw {output}: {reason}")
