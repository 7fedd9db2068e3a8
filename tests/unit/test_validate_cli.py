"""``cairn validate``: every broken fixture prints exactly its expected line, and no traceback.

``tests/fixtures/invalid/expected.txt`` holds, per fixture, the one line ``cairn validate``
prints for it when run from the repository root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cairn.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "invalid"
EXPECTED_FILE = FIXTURES / "expected.txt"
LOCATION = re.compile(r"^(?P<file>[^:]+):\d+:\d+: ")


def _expected() -> dict[str, str]:
    lines = EXPECTED_FILE.read_text(encoding="utf-8").splitlines()
    found: dict[str, str] = {}
    for line in lines:
        if line and not line.startswith("#"):
            match = LOCATION.match(line)
            assert match, f"not a FILE:LINE:COL line: {line}"
            found[match["file"]] = line
    return found


EXPECTED = _expected()

VALID = """\
Name: valid
Version: 7
StartAt: Charge
States:
  Charge:
    Type: Task
    Activity: FixtureCharge
    Compensate: {Activity: FixtureRefund}
    Next: Done
  Done:
    Type: Succeed
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["validate", *args])


@pytest.fixture(autouse=True)
def _from_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Expected lines name files relative to the repository root, as a user there sees them.
    monkeypatch.chdir(ROOT)


def test_every_fixture_has_an_expectation_and_there_are_enough() -> None:
    on_disk = {
        f"tests/fixtures/invalid/{p.name}"
        for p in FIXTURES.iterdir()
        if p.suffix in (".yaml", ".yml", ".json")
    }
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 45
    assert {Path(f).suffix for f in on_disk} == {".yaml", ".json"}


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_each_fixture_prints_exactly_its_line(file: str) -> None:
    result = run(file)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr == EXPECTED[file] + "\n"


def test_a_huge_file_is_refused_without_parsing(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as stream:
        stream.write(b"States:\n")
        for _ in range(10 * 1024):
            stream.write(b"  # " + b"x" * 1019 + b"\n")
    result = run(str(huge))
    assert result.exit_code == 2
    assert result.stderr == (
        f"{huge}:0:0: the file is 1,048,577 bytes or more; a definition may be at most 1 MiB\n"
    )


def test_valid_files_print_ok_and_exit_0(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.json").write_text(
        json.dumps(
            {"Name": "j", "Version": 1, "StartAt": "S", "States": {"S": {"Type": "Succeed"}}}
        )
    )
    result = run(str(tmp_path))
    assert result.exit_code == 0
    assert result.stdout == f"ok {tmp_path}/a.yaml (valid v7)\nok {tmp_path}/b.json (j v1)\n"
    assert result.stderr == ""
    quiet = run("--quiet", str(tmp_path))
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")


def test_folders_are_searched_recursively_in_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b" / "v1.yml").write_text(VALID)
    (tmp_path / "a.yaml").write_text(VALID.replace("Next: Done", "Next: Dne"))
    (tmp_path / "notes.txt").write_text("not a definition")
    (tmp_path / ".hidden" / "x.yaml").write_text("broken: [")
    result = run(str(tmp_path))
    assert result.exit_code == 2
    assert result.stdout == f"ok {tmp_path}/b/v1.yml (valid v7)\n"
    assert result.stderr == (
        f"{tmp_path}/a.yaml:9:11: Next names unknown state 'Dne' (did you mean 'Done'?) "
        "(at States.Charge.Next)\n"
    )


def test_every_problem_of_every_file_is_listed(tmp_path: Path) -> None:
    (tmp_path / "missing.yaml").unlink(missing_ok=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(str(tmp_path / "missing.yaml"), str(empty), "tests/fixtures/invalid/empty.yaml")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{tmp_path}/missing.yaml:0:0: no such file",
        f"{empty}:0:0: no definition files (.yaml, .yml, .json) in this folder",
        EXPECTED["tests/fixtures/invalid/empty.yaml"],
    ]


def test_activities_module_names_unknown_activities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "cairn_validate_fixture_activities.py"
    module.write_text(
        "from cairn.activities import activity\n\n"
        "@activity('FixtureCharge')\ndef charge(params, ctx):\n    return {}\n\n"
        "@activity('FixtureRefundCard')\ndef refund(params, ctx):\n    return {}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "d.yaml"
    path.write_text(VALID)
    result = run(str(path), "--activities", module.stem)
    assert result.exit_code == 2
    assert result.stderr == (
        f"{path}:8:28: activity 'FixtureRefund' is not registered "
        "(did you mean 'FixtureRefundCard'?) (at States.Charge.Compensate.Activity)\n"
    )


def test_an_activities_module_that_cannot_be_imported_is_a_usage_error() -> None:
    result = run("tests/fixtures/invalid/empty.yaml", "--activities", "no_such_module_here")
    assert result.exit_code == 2
    assert "Invalid value for '--activities'" in result.stderr
    assert "no_such_module_here" in result.stderr


def test_help_shows_an_example() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "cairn validate definitions/" in result.stdout


def test_a_real_terminal_never_sees_a_traceback() -> None:
    command = shutil.which("cairn")
    fallback = [sys.executable, "-c", "from cairn.cli.main import main; main()"]
    argv = [command] if command else fallback
    completed = subprocess.run(
        [*argv, "validate", "tests/fixtures/invalid"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.splitlines() == [EXPECTED[file] for file in sorted(EXPECTED)]
