"""What a user sees when the database refuses: one line in the driver's words."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from cairn.cli.main import main
from cairn.runtime import database


def test_a_database_that_cannot_be_reached_is_one_line() -> None:
    """libpq explains a refused connection over several lines; the user gets the first."""
    nobody_listens = "postgresql://postgres@127.0.0.1:1/test"
    result = CliRunner().invoke(main, ["--db", nobody_listens, "list"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        'error: the database refused: connection failed: connection to server at "127.0.0.1",'
        " port 1 failed: Connection refused"
    ]


def test_the_reason_is_the_driver_s_first_line_without_sqlalchemy_s_link() -> None:
    refused = sa.exc.OperationalError(
        "COMMIT", {}, Exception("server closed the connection unexpectedly\n\tThis probably...")
    )
    assert "sqlalche.me" in str(refused)
    assert database.reason(refused) == "server closed the connection unexpectedly"
    assert database.reason(OSError("disk full")) == "disk full"
    assert database.reason(sa.exc.OperationalError("X", {}, Exception(""))) == "OperationalError"
