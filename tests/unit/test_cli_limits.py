"""The command line refuses what it cannot use with one clear line and exit code 2 (a usage
mistake) or 1, never a traceback: hostile JSON, versions and options out of range, a database
URL with a driver Cairn does not run on (whose password it never repeats).

Every refusal here comes before a database is opened: these commands touch none.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cairn.cli.main import main

DEEP = "[" * 10_000 + "]" * 10_000
DIGITS = '{"n": ' + "9" * 5_000 + "}"
UNUSED_DB = "sqlite:////nonexistent-folder/cairn.db"
"""A database a command would fail to open: the refusals must come first."""


def cairn(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--db", UNUSED_DB, *args], input=input)


def assert_refused(result: Result, code: int, line: str) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == line
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("start", "echo", "--input", DEEP),
        ("run", "echo", "--input", DEEP),
        ("signal", "e-1", "go", "--payload", DEEP),
        ("complete", "token", "--output", DEEP),
    ],
)
def test_json_nested_10000_deep_is_refused(args: tuple[str, ...]) -> None:
    what = "--payload" if "--payload" in args else "--output" if "--output" in args else "--input"
    assert_refused(cairn(*args), 2, f"error: {what}: nested too deeply to read (lists and objects)")


def test_json_read_from_standard_input_and_files_is_refused_the_same(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    line = "nested too deeply to read (lists and objects)"
    assert_refused(cairn("start", "echo", "--input", f"@{deep}"), 2, f"error: {deep}: {line}")
    assert_refused(
        cairn("start", "echo", "--input", "-", input=DEEP),
        2,
        f"error: --input (standard input): {line}",
    )


def test_an_integer_of_5000_digits_is_refused() -> None:
    assert_refused(
        cairn("start", "echo", "--input", DIGITS),
        2,
        "error: --input: holds an integer of thousands of digits; integers go from -2**63 to "
        "2**63-1",
    )


@pytest.mark.parametrize(
    ("target", "line"),
    [
        (
            "echo@99999999999999999999999",
            "error: bad version in 'echo@99999999999999999999999': versions go from 1 to "
            "2,147,483,647",
        ),
        ("echo@0", "error: bad version in 'echo@0': versions go from 1 to 2,147,483,647"),
        ("echo@²", "error: bad version in 'echo@²': use NAME@VERSION, e.g. order@2"),
        ("echo@٣", "error: bad version in 'echo@٣': use NAME@VERSION, e.g. order@2"),
    ],
)
def test_a_version_no_deployment_can_have_is_a_usage_error(target: str, line: str) -> None:
    assert_refused(cairn("start", target), 2, line)
    assert_refused(cairn("run", target), 2, line)


def test_list_limit_past_the_range_is_a_usage_error() -> None:
    assert_refused(
        cairn("list", "--limit", "99999999999999999999999"),
        2,
        "Error: Invalid value for '--limit': 99999999999999999999999 is not in the range "
        "1<=x<=1000000000.",
    )
    assert cairn("list", "--limit", "0").exit_code == 2


@pytest.mark.parametrize(
    ("option", "value", "line"),
    [
        ("--concurrency", "0", "'--concurrency': 0 is not in the range 1<=x<=1000."),
        ("--concurrency", "-1", "'--concurrency': -1 is not in the range 1<=x<=1000."),
        ("--poll", "-1", "'--poll': -1.0 is not in the range 0.01<=x<=3600."),
        ("--poll", "nan", "'--poll': nan is not a number of seconds"),
        ("--grace", "-1", "'--grace': -1.0 is not in the range 0<=x<=99999999."),
        ("--grace", "inf", "'--grace': inf is not in the range 0<=x<=99999999."),
        ("--lease", "nan", "'--lease': nan is not a number of seconds"),
        (
            "--queue",
            "",
            "'--queue': '' is not a queue name: 1 to 200 letters, digits, '_', '.' and '-' "
            "(like payments)",
        ),
        (
            "--queue",
            "pay ments",
            "'--queue': 'pay ments' is not a queue name: 1 to 200 letters, digits, '_', '.' "
            "and '-' (like payments)",
        ),
    ],
)
def test_worker_options_out_of_range_are_usage_errors(option: str, value: str, line: str) -> None:
    assert_refused(cairn("worker", option, value), 2, f"Error: Invalid value for {line}")


def test_run_concurrency_zero_is_a_usage_error() -> None:
    assert_refused(
        cairn("run", "echo", "--concurrency", "0"),
        2,
        "Error: Invalid value for '--concurrency': 0 is not in the range 1<=x<=1000.",
    )


@pytest.mark.parametrize(
    ("url", "line"),
    [
        (
            "postgresql+asyncpg://ann:s3cret@db.example/cairn",
            "error: unsupported database URL postgresql+asyncpg://ann:***@db.example/cairn: use "
            "sqlite:///FILE or postgresql://... (the 'postgresql+asyncpg' driver is not one "
            "Cairn runs on)",
        ),
        (
            "mysql://ann:s3cret@db.example/cairn",
            "error: unsupported database URL mysql://ann:***@db.example/cairn: use "
            "sqlite:///FILE or postgresql://... (the 'mysql' driver is not one Cairn runs on)",
        ),
        (
            "postgresql://ann:s3cret@db.example:s3cret/cairn",
            "error: bad database URL (its port is not a number): use sqlite:///FILE or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        ),
        (
            "s3cret",
            "error: bad database URL (unreadable): use sqlite:///FILE or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        ),
    ],
)
def test_a_database_url_cairn_cannot_use_is_refused_without_its_password(
    url: str, line: str
) -> None:
    result = CliRunner().invoke(main, ["--db", url, "list"])
    assert_refused(result, 1, line)
    assert "s3cret" not in result.output


def test_in_a_real_process_the_refusals_are_one_line(tmp_path: Path) -> None:
    """Arguments decoded from the terminal's bytes and JSON from a pipe, as a user sends them."""
    env = {**os.environ, "CAIRN_DATABASE_URL": "postgresql+asyncpg://ann:s3cret@db/cairn"}
    for args, stdin, line in [
        (["start", "echo@²"], "", "error: bad version in 'echo@²': use NAME@VERSION, e.g. order@2"),
        (
            ["start", "echo", "--input", "-"],
            DEEP,
            "error: --input (standard input): nested too deeply to read (lists and objects)",
        ),
        (
            ["list"],
            "",
            "error: unsupported database URL postgresql+asyncpg://ann:***@db/cairn: use "
            "sqlite:///FILE or postgresql://... (the 'postgresql+asyncpg' driver is not one "
            "Cairn runs on)",
        ),
    ]:
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from cairn.cli.main import main; main()", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert (done.returncode, done.stdout, done.stderr) == (
            2 if "list" not in args else 1,
            "",
            line + "\n",
        )
