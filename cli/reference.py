"""The CLI reference of the README, generated from the commands' own ``--help``.

``python3 -m cairn.cli.reference`` prints it; a test checks that the README holds exactly this
text, so the reference cannot drift from the code.
"""

from __future__ import annotations

import click

from cairn.cli.main import main

WIDTH = 100
SETTINGS = {"terminal_width": WIDTH, "max_content_width": WIDTH, **main.context_settings}


def help_text(command: click.Command, path: list[str], parent: click.Context | None) -> str:
    ctx = click.Context(command, info_name=path[-1], parent=parent, **SETTINGS)
    return command.get_help(ctx)


def reference() -> str:
    """Markdown: the group's help, then each command's, in name order."""
    root = click.Context(main, info_name="cairn", **SETTINGS)
    parts = ["```text", main.get_help(root), "```"]
    for name in sorted(main.commands):
        command = main.commands[name]
        parts += [f"\n### cairn {name}\n", "```text", help_text(command, ["cairn", name], root)]
        parts.append("```")
        if isinstance(command, click.Group):
            sub_ctx = click.Context(command, info_name=name, parent=root, **SETTINGS)
            for sub in sorted(command.commands):
                parts += [f"\n#### cairn {name} {sub}\n", "```text"]
                parts += [help_text(command.commands[sub], ["cairn", name, sub], sub_ctx), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    click.echo(reference(), nl=False)
