"""A command loads only what it uses, so that ``cairn --help`` and ``cairn describe`` answer at
once: the database layer, the schema validator, yaml, the code-workflow adapter and the
worker cost most of a second to import. Reading a definition (``validate``, ``graph``) needs
no database, so it does not load one.

Each command runs in a fresh interpreter, which then lists the modules it imported: what a
command loads is the same on every machine, where a timing would not be.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cairn
from cairn.definitions import loader

PROBE = """
import sys
from cairn.cli.main import main
try:
    main(sys.argv[2:], prog_name="cairn")
finally:
    with open(sys.argv[1], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
"""

DATABASE = ("sqlalchemy",)
HEAVY = ("jsonschema", "yaml", "cairn.codeflow", "cairn.definitions", "cairn.runtime.worker")

WAITING = """
Name: waiting
Version: 1
StartAt: Hold
States:
  Hold:
    Type: Wait
    Seconds: 3600
    End: true
"""


def imported(tmp_path: Path, *args: str) -> set[str]:
    """The modules ``cairn ARGS`` imported, run in its own interpreter."""
    listing = tmp_path / "modules.txt"
    finished = subprocess.run(
        [sys.executable, "-c", PROBE, str(listing), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return set(listing.read_text(encoding="utf-8").split())


def among(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The modules that are ``packages`` or inside them."""
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages))


@pytest.mark.parametrize("args", [["--help"], ["describe", "--help"], ["validate", "--help"]])
def test_help_imports_neither_the_database_nor_the_reader_nor_the_adapter(
    tmp_path: Path, args: list[str]
) -> None:
    assert among(imported(tmp_path, *args), DATABASE + HEAVY) == []


@pytest.mark.parametrize("command", ["validate", "graph"])
def test_reading_a_definition_never_loads_the_database(tmp_path: Path, command: str) -> None:
    (tmp_path / "waiting.yaml").write_text(WAITING, encoding="utf-8")
    assert among(imported(tmp_path, command, "waiting.yaml"), DATABASE) == []


def test_describe_imports_the_database_layer_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cairn.db'}"
    client = cairn.open_client(url)
    client.deploy(loader.loads(WAITING, "waiting.yaml"))
    client.start("waiting", {}, execution_id="held")
    modules = imported(tmp_path, "--db", url, "describe", "held")
    assert "sqlalchemy" in modules, "describe never reached the database"
    assert among(modules, HEAVY) == []
