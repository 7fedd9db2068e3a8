"""The README's promises: its commands, its example and its CLI reference are current."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cairn.cli.reference import reference
from cairn.definitions import loader

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_cli_reference_is_generated_from_the_current_help() -> None:
    assert reference() in README, "regenerate it: python3 -m cairn.cli.reference"


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
