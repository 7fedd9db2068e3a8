"""Fixtures of the integration suite: every test runs on SQLite and on PostgreSQL.

``db_url`` is an empty Cairn database: an SQLite file (WAL) in the test's temporary folder,
or a schema of its own on the PostgreSQL server named by ``CAIRN_TEST_POSTGRES_URL``
(reached through ``search_path`` in the URL, so worker subprocesses given the URL land in
the same schema).  A schema costs a few milliseconds where a database costs a checkpoint.
Without a reachable server the PostgreSQL tests skip, except under ``CI=true``, where they
fail: a CI run must never pass by testing one database.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from cairn import activities
from cairn.client import Client
from cairn.runtime import database, worker
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.writer import Writer
from tests.integration import support

POSTGRES_URL = os.environ.get(
    "CAIRN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _conninfo(url: str) -> str:
    """The libpq form of an SQLAlchemy URL (psycopg wants no driver name)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server() -> str | None:
    """None when the server answers, else why it does not."""
    try:
        with psycopg.connect(_conninfo(POSTGRES_URL), connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        reason = " ".join(str(exc).split())
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({type(exc).__name__}: {reason})"
    return None


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """The URL of an empty database of the parametrised kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cairn.db'}"
        return
    problem = request.getfixturevalue("postgres_server")
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem}; CI=true needs it (set CAIRN_TEST_POSTGRES_URL)")
        pytest.skip(f"{problem}; set CAIRN_TEST_POSTGRES_URL to run the PostgreSQL tests")
    schema = f"cairn_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_conninfo(POSTGRES_URL), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(POSTGRES_URL).update_query_dict(
        {"options": f"-csearch_path={schema}", "application_name": schema}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_conninfo(POSTGRES_URL), autocommit=True) as admin:
            # Connections left by killed subprocesses must not hold locks on the schema.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (schema,),
            )
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(autouse=True)
def _engines(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[sa.Engine]]:
    """Dispose of every engine the test opened (the CLI's too) before its database goes."""
    opened: list[sa.Engine] = []
    connect = database.connect

    def tracked(*args: Any, **kwargs: Any) -> sa.Engine:
        engine = connect(*args, **kwargs)
        opened.append(engine)
        return engine

    monkeypatch.setattr(database, "connect", tracked)
    yield opened
    for engine in opened:
        engine.dispose()


@pytest.fixture
def clock() -> support.FakeClock:
    return support.FakeClock()


@pytest.fixture
def make_writer(db_url: str) -> Callable[..., Writer]:
    """Write paths on the test database, one per process it stands for; the first creates
    the schema."""

    def make(clock: Callable[[], float] = time.time, **options: Any) -> Writer:
        return Writer(database.connect(db_url, upgrade=True), clock=clock, **options)

    return make


@pytest.fixture
def write_path(make_writer: Callable[..., Writer], clock: support.FakeClock) -> Writer:
    """A write path whose clock moves only when the test advances it."""
    return make_writer(clock)


@pytest.fixture
def client(write_path: Writer) -> Client:
    """A client on ``write_path``, as a program of the test's process holds it."""
    return Client(write_path)


@pytest.fixture
def dispatcher(write_path: Writer) -> Dispatcher:
    """The worker side on the same write path as ``client``: a worker in the same process."""
    return Dispatcher(write_path)


@pytest.fixture
def live_path(make_writer: Callable[..., Writer]) -> Writer:
    """A write path on the real clock, for tests that share the database with worker
    processes."""
    return make_writer()


@pytest.fixture
def live_client(live_path: Writer) -> Client:
    return Client(live_path)


@pytest.fixture
def live_dispatcher(live_path: Writer) -> Dispatcher:
    return Dispatcher(live_path)


@pytest.fixture
def recorder() -> support.Recorder:
    """A fresh registry (not the process-wide one) whose activities count their calls."""
    return support.Recorder()


@pytest.fixture
def start_worker() -> Iterator[Callable[..., worker.Worker]]:
    """Start in-process workers (threads); all are stopped when the test ends."""
    started: list[worker.Worker] = []

    def start(
        dispatcher: Dispatcher, registry: activities.Registry, **options: Any
    ) -> worker.Worker:
        options.setdefault("poll", 0.05)
        options.setdefault("concurrency", 2)
        runner = worker.Worker(dispatcher, registry, **options)
        runner.start()
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop(grace=10)


@pytest.fixture
def worker_processes() -> Iterator[Callable[..., support.WorkerProcess]]:
    """Start ``cairn worker`` subprocesses; any still running are killed when the test ends."""
    started: list[support.WorkerProcess] = []

    def start(db_url: str, *args: str, **env: str) -> support.WorkerProcess:
        process = support.WorkerProcess(db_url, *args, env=support.subprocess_env(**env))
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def calls_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The file the activities of tests.integration.flows append their calls to."""
    from tests.integration import flows

    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv(flows.CALLS, str(path))
    return path


@pytest.fixture
def provider_db(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The order demo's provider, keeping its books in a file of this test."""
    path = tmp_path / "provider.db"
    monkeypatch.setenv("CAIRN_DEMO_PROVIDER", str(path))
    return path


@pytest.fixture
def demo(recorder: support.Recorder, provider_db: Any) -> support.Recorder:
    """The order demo's activities, counting calls; the provider keeps books in a test file."""
    for name, handler in support.ORDER_ACTIVITIES.items():
        recorder.add(name, handler)
    return recorder
