"""Workers and clients that open a new SQLite database at the same moment all get in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from activities import provider
from cairn.runtime import database


def opened_together(count: int, open_it: Callable[[], object]) -> list[BaseException]:
    """Run ``open_it`` in ``count`` threads released at once; the errors they met."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            open_it()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_connections_racing_to_create_a_database_all_get_in(tmp_path: Path) -> None:
    # SQLite answers all but one switch to WAL on a new file "database is locked", at once.
    for attempt in range(10):
        url = f"sqlite:///{tmp_path / f'race-{attempt}.db'}"

        def open_and_write(url: str = url) -> None:
            engine = database.connect(url, upgrade=False)
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE IF NOT EXISTS seen (n INTEGER)"))
                conn.execute(sa.text("INSERT INTO seen VALUES (1)"))
            engine.dispose()

        assert opened_together(8, open_and_write) == []
        engine = database.connect(url, upgrade=False)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM seen")).scalar() == 8
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        engine.dispose()


def test_the_demo_provider_opened_by_many_slots_at_once_charges_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def charge() -> None:
        provider.charge(f"key-{threading.get_ident()}", "o", 1.0)

    for attempt in range(10):
        monkeypatch.setenv("CAIRN_DEMO_PROVIDER", str(tmp_path / f"provider-{attempt}.db"))
        assert opened_together(8, charge) == []
        assert len(provider.charges()) == 8
