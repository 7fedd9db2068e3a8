"""Fixtures of the crash tests: the integration suite's databases, a journal, a cluster.

Every test runs on SQLite and on PostgreSQL (``db_url`` and its rules come from
tests/integration/conftest.py).  Workers are real ``cairn worker`` processes with short
leases (``--lease``), so that a killed worker's tasks come back within a second or two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.client import Client
from cairn.runtime import database
from cairn.runtime.writer import Writer
from tests.crash import handlers, harness
from tests.integration import conftest as integration

# The integration suite's fixtures, under the names tests ask for.
postgres_server = integration.postgres_server
db_url = integration.db_url
_engines = integration._engines
provider_db = integration.provider_db

ACTIVITIES = "tests.crash.handlers"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the chaos and redeploy tests counted: kills, re-runs and why, waits."""
    if harness.REPORTS:
        terminalreporter.section("crash harness")
        for line in harness.REPORTS:
            terminalreporter.write_line(line)


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the crash activities journal their runs to (worker processes inherit it)."""
    path = tmp_path / "journal.jsonl"
    monkeypatch.setenv(handlers.JOURNAL, str(path))
    return path


@pytest.fixture
def client(db_url: str) -> Client:
    """A client with no worker of its own: it starts executions as another program would."""
    return Client(Writer(database.connect(db_url, upgrade=True)))


@pytest.fixture
def cluster(
    db_url: str, journal: Path, provider_db: Path, client: Client
) -> Iterator[Callable[..., harness.Cluster]]:
    """Make clusters of worker processes on the test database; all are killed at the end."""
    made: list[harness.Cluster] = []

    def make(*args: str, **env: Any) -> harness.Cluster:
        made.append(harness.Cluster(db_url, "--activities", ACTIVITIES, *args, **env))
        return made[-1]

    yield make
    for group in made:
        group.close()
