"""The README's promises: its commands, its examples, its contents and the command-line
reference it links to (docs/cli.md) are current."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from cairn.cli.reference import reference
from cairn.definitions import loader

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CLI_REFERENCE = ROOT / "docs" / "cli.md"


def test_cli_reference_is_generated_from_the_current_help() -> None:
    assert CLI_REFERENCE.read_text(encoding="utf-8") == reference(), (
        "regenerate it: python3 -m cairn.cli.reference > docs/cli.md"
    )
    assert "(docs/cli.md)" in README


def _anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces dashed."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_the_contents_link_every_section_and_only_sections() -> None:
    prose = re.sub(r"```.*?```", "", README, flags=re.DOTALL)
    sections = {_anchor(h) for h in re.findall(r"^##+ (.+)$", prose, flags=re.MULTILINE)}
    contents = prose.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    linked = set(re.findall(r"\]\(#([^)]+)\)", contents))
    top = {_anchor(h) for h in re.findall(r"^## (.+)$", prose, flags=re.MULTILINE)}
    assert linked <= sections, f"links to no section: {sorted(linked - sections)}"
    assert top - {"contents"} <= linked, f"sections not in the contents: {sorted(top - linked)}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = re.findall(r"^python3 -m pip install .*$", README, flags=re.MULTILINE)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_readme_definition_examples_validate() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.DOTALL)
    examples = [b for b in blocks if isinstance(yaml.safe_load(b), dict) and "States" in b]
    assert examples
    for text in examples:
        loader.loads(text, "README.md")


def test_the_embedding_example_runs(tmp_path: Path) -> None:
    section = README.split("## Embedding Cairn in a Python program\n", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    # It runs from the repository's folder: its definitions and activities, a database there.
    for folder in ("definitions", "activities"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    finished = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[:2] == [
        "RUNNING",
        "SUCCEEDED {'status': 'cancelled', 'order_id': 'A-1003', 'reason': 'changed my mind'}",
    ]
    assert lines[2] == "1 ExecutionStarted "
    assert lines[-1].endswith(" ExecutionSucceeded ")
    assert any(line.endswith(" SignalConsumed CancelWindow") for line in lines)
