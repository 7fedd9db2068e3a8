"""Engine benchmark: executions and state transitions per second, and start-to-finish latency.

Every execution goes the way a user's would: ``Client.start`` in the starting thread, a real
``Worker`` with its slot and maintenance threads in the same process taking the tasks, and
``Client.wait`` until it closes.  Each case runs on a database of its own, made for it and
thrown away after: an SQLite file in a temporary folder (WAL, ``synchronous`` as
``CAIRN_SQLITE_SYNCHRONOUS`` says, FULL by default) or a new PostgreSQL database.

Flows: definitions/order/v1.yaml with in-memory activities (4 tasks), and a generated chain
of 20 Pass and Choice states (no tasks; it runs to its end inside ``start``).
Modes: ``sequential`` starts one execution and waits for it before the next; ``concurrent``
keeps ``--concurrency`` executions in flight from as many starter threads, against a worker
with as many slots.  A few executions warm each case up before the measured ones.

Usage::

    python3 -m bench                       # both databases, 500 executions a case (~1 minute)
    python3 -m bench --quick               # a smoke run, 40 a case (~5 seconds)
    python3 -m bench --db sqlite --executions 2000
    python3 -m bench --profile             # SQLite order sequential: SQL counts, cProfile
    CAIRN_SQLITE_SYNCHRONOUS=NORMAL python3 -m bench --db sqlite

PostgreSQL is reached at ``--pg-url`` (default ``CAIRN_TEST_POSTGRES_URL``, else
postgresql://postgres@127.0.0.1:5432/test); the user needs CREATEDB.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import platform
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from bench import workloads
from cairn.client import Client
from cairn.jsontypes import JSON
from cairn.runtime import database, worker
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.writer import Writer

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
DATABASES = ("sqlite", "postgres")
MODES = ("sequential", "concurrent")
WAIT_TIMEOUT = 120.0


class BenchError(Exception):
    """The benchmark could not run as asked (no server, an execution that did not succeed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    executions: int
    warmup: int
    concurrency: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    db: str
    flow: str
    mode: str
    executions: int
    seconds: float
    transitions: int
    """StateEntered events of one execution."""
    latencies: Sequence[float]

    def cells(self) -> list[str]:
        rate = self.executions / self.seconds
        return [
            self.db,
            self.flow,
            self.mode,
            str(self.executions),
            f"{rate:,.1f}",
            f"{rate * self.transitions:,.0f}",
            f"{percentile(self.latencies, 50) * 1000:.1f}",
            f"{percentile(self.latencies, 99) * 1000:.1f}",
        ]


HEADER = ["db", "flow", "mode", "executions", "exec/s", "transitions/s", "p50 ms", "p99 ms"]


# -- databases ------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(kind: str, pg_url: str) -> Iterator[sa.Engine]:
    """A new, empty, upgraded database of ``kind``, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cairn-bench-") as folder:
            db = database.connect(f"sqlite:///{folder}/cairn.db", upgrade=True)
            try:
                yield db
            finally:
                db.dispose()
        return
    admin = _admin(pg_url)
    name = f"cairn_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except sa.exc.DBAPIError as exc:
            raise BenchError(f"cannot create a database at {_shown(pg_url)}: {exc.orig}") from exc
        url = sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        db = database.connect(url, upgrade=True)
        try:
            yield db
        finally:
            db.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _admin(pg_url: str) -> sa.Engine:
    url = sa.make_url(pg_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def postgres_version(pg_url: str) -> str:
    admin = _admin(pg_url)
    try:
        with admin.connect() as conn:
            return str(conn.exec_driver_sql("SHOW server_version").scalar())
    except sa.exc.OperationalError as exc:
        raise BenchError(f"cannot reach PostgreSQL at {pg_url}: {exc.orig}") from exc
    finally:
        admin.dispose()


def sqlite_settings() -> str:
    """The journal mode and synchronous setting a Cairn SQLite connection actually has."""
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as folder:
        db = database.connect(f"sqlite:///{folder}/probe.db", upgrade=False)
        try:
            with db.connect() as conn:
                journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                level = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        finally:
            db.dispose()
    source = os.environ.get("CAIRN_SQLITE_SYNCHRONOUS")
    told = f"CAIRN_SQLITE_SYNCHRONOUS={source}" if source else "CAIRN_SQLITE_SYNCHRONOUS unset"
    return f"journal_mode={journal}, synchronous={names.get(int(level or 0), level)} ({told})"


# -- running executions ---------------------------------------------------------------------


@contextlib.contextmanager
def running_worker(client: Client, flow: workloads.Flow, slots: int) -> Iterator[None]:
    """A real worker with ``slots`` slot threads, stopped (and its leases released) after."""
    w = worker.Worker(
        Dispatcher(client.writer), flow.registry, queues=flow.queues, concurrency=slots
    )
    w.start()
    try:
        yield
    finally:
        w.stop(grace=10.0)


def run_one(client: Client, flow: workloads.Flow, input: JSON) -> tuple[str, float]:
    """Start an execution and wait for it to close; its id and start-to-finish seconds."""
    began = time.perf_counter()
    started = client.start(flow.document.name, input, version=flow.document.version)
    view = client.wait(started["id"], timeout=WAIT_TIMEOUT)
    took = time.perf_counter() - began
    if view["status"] != "SUCCEEDED":
        raise BenchError(
            f"{flow.label}: execution {view['id']} ended {view['status']} "
            f"({view['error']}: {view['cause']})"
        )
    return view["id"], took


def run_many(
    client: Client, flow: workloads.Flow, inputs: Iterator[JSON], count: int, inflight: int
) -> tuple[float, list[float], str]:
    """Run ``count`` executions, ``inflight`` at a time; wall seconds, latencies, a last id."""
    batch = [next(inputs) for _ in range(count)]
    began = time.perf_counter()
    if inflight <= 1:
        results = [run_one(client, flow, item) for item in batch]
    else:
        with futures.ThreadPoolExecutor(inflight, thread_name_prefix="bench-starter") as pool:
            results = list(pool.map(lambda item: run_one(client, flow, item), batch))
    seconds = time.perf_counter() - began
    return seconds, [took for _, took in results], results[-1][0]


def transitions_of(client: Client, execution_id: str) -> int:
    return sum(1 for e in client.history(execution_id) if e.type == "StateEntered")


def run_case(db: sa.Engine, kind: str, flow: workloads.Flow, mode: str, sizes: Sizes) -> Row:
    """Deploy, start a worker, warm up, then measure one flow in one mode."""
    client = Client(Writer(db))
    client.deploy(flow.document)
    inflight = 1 if mode == "sequential" else sizes.concurrency
    inputs = flow.inputs()
    with running_worker(client, flow, sizes.concurrency):
        _, _, sample = run_many(client, flow, inputs, max(1, sizes.warmup), inflight)
        transitions = transitions_of(client, sample)
        seconds, latencies, _ = run_many(client, flow, inputs, sizes.executions, inflight)
    return Row(
        db=kind,
        flow=flow.label,
        mode=mode if inflight == 1 else f"{inflight} in flight",
        executions=sizes.executions,
        seconds=seconds,
        transitions=transitions,
        latencies=latencies,
    )


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


# -- output ---------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "lllrrrrr") -> str:
    """A plain text table; ``align`` has an ``l`` or ``r`` per column."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        ).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def machine(kinds: Sequence[str], pg_url: str) -> list[str]:
    lines = [
        f"machine:  {os.cpu_count()} cores, {platform.machine()}, {platform.system()} "
        f"{platform.release()}, load average {_load()} (other processes skew the numbers)",
        f"python:   {platform.python_implementation()} {platform.python_version()}, "
        f"SQLAlchemy {sa.__version__}",
    ]
    lines.append(f"cairn:    {_revision()}")
    if "sqlite" in kinds:
        lines.append(f"sqlite:   {sqlite3.sqlite_version}, {sqlite_settings()}")
    if "postgres" in kinds:
        lines.append(f"postgres: {postgres_version(pg_url)} at {_shown(pg_url)}")
    return lines


def _revision() -> str:
    """The commit measured, and whether engine/ differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(workloads.ROOT), *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "engine")
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"commit {commit}" + (" with uncommitted changes in engine/" if dirty else "")


def _load() -> str:
    try:
        return " ".join(f"{n:.2f}" for n in os.getloadavg())
    except OSError:
        return "unknown"


def _shown(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the suite ------------------------------------------------------------------------------


def suite(kinds: Sequence[str], sizes: Sizes, pg_url: str) -> None:
    for line in machine(kinds, pg_url):
        print(line)
    print(
        f"each case: a fresh database, a worker with {sizes.concurrency} slots in this process, "
        f"{sizes.warmup} warm-up executions, then {sizes.executions} measured"
    )
    print(flush=True)
    flows = [workloads.order(), workloads.choices()]
    rows: list[Row] = []
    for kind in kinds:
        for flow in flows:
            for mode in MODES:
                began = time.perf_counter()
                with fresh_database(kind, pg_url) as db:
                    rows.append(run_case(db, kind, flow, mode, sizes))
                note(f"  {kind} {flow.label} {mode}: {time.perf_counter() - began:.1f} s")
    print()
    print(table(HEADER, [r.cells() for r in rows]))


# -- profiling ------------------------------------------------------------------------------


class ThreadProfiles:
    """cProfile in the calling thread and in every thread started while ``threads()`` is open.

    Before Python 3.12 a profiler sees only the thread that enabled it, and most of the work
    happens in the worker's threads, so each new thread enables a profiler of its own as it
    starts and the statistics are merged at the end.  From 3.12 one profiler sees them all.
    """

    PER_THREAD = sys.version_info < (3, 12)

    def __init__(self) -> None:
        self.main = cProfile.Profile()
        self._others: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _hook(self, frame: Any, kind: str, arg: Any) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile()
        profile.enable()
        with self._lock:
            self._others.append(profile)

    @contextlib.contextmanager
    def threads(self) -> Iterator[None]:
        if not self.PER_THREAD:
            yield
            return
        threading.setprofile(self._hook)
        try:
            yield
        finally:
            threading.setprofile(None)

    def stats(self) -> pstats.Stats:
        merged = pstats.Stats(self.main)
        for profile in self._others:
            merged.add(profile)
        return merged


class Statements:
    """Counts SQL statements, commits and rollbacks on an engine, by thread and statement.

    SQLAlchemy's engine events (``before_cursor_execute``, ``commit``, ``rollback``) see what
    goes through SQLAlchemy.  Statements run on the driver connection directly do not pass
    them, so on SQLite the driver's trace callback also counts everything the database runs.
    """

    def __init__(self, db: sa.Engine) -> None:
        self.db = db
        self.traced = db.dialect.name == "sqlite"
        self.sqlalchemy: Counter[tuple[str, str]] = Counter()
        self.database: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._active = False

    def __enter__(self) -> Statements:
        self._active = True
        event.listen(self.db, "before_cursor_execute", self._statement)
        event.listen(self.db, "commit", self._commit)
        event.listen(self.db, "rollback", self._rollback)
        if self.traced:
            event.listen(self.db, "checkout", self._trace)
        return self

    def __exit__(self, *exc: object) -> None:
        self._active = False
        event.remove(self.db, "before_cursor_execute", self._statement)
        event.remove(self.db, "commit", self._commit)
        event.remove(self.db, "rollback", self._rollback)
        if self.traced:
            event.remove(self.db, "checkout", self._trace)

    def _count(self, counter: Counter[tuple[str, str]], label: str) -> None:
        with self._lock:
            counter[(_role(), label)] += 1

    def _statement(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        self._count(self.sqlalchemy, _label(statement) + (" (executemany)" if many else ""))

    def _commit(self, conn: Any) -> None:
        self._count(self.sqlalchemy, "COMMIT")

    def _rollback(self, conn: Any) -> None:
        self._count(self.sqlalchemy, "ROLLBACK")

    def _trace(self, driver: Any, record: Any, proxy: Any) -> None:
        driver.set_trace_callback(self._traced)

    def _traced(self, statement: str) -> None:
        if self._active:
            self._count(self.database, _label(statement))

    def report(self, executions: int, seconds: float) -> str:
        def per(n: int) -> str:
            return f"{n / executions:.2f}"

        def total(counter: Counter[tuple[str, str]], label: str | None = None) -> int:
            return sum(n for (_, what), n in counter.items() if label in (None, what))

        seen = self.database if self.traced else self.sqlalchemy
        statements = total(seen) - total(seen, "COMMIT") - total(seen, "ROLLBACK")
        via = total(self.sqlalchemy) - total(self.sqlalchemy, "COMMIT")
        via -= total(self.sqlalchemy, "ROLLBACK")
        lines = [
            f"per execution: {per(statements)} SQL statements "
            + (f"({per(via)} of them through SQLAlchemy), " if self.traced else "")
            + f"{per(total(seen, 'COMMIT'))} commits, {per(total(seen, 'ROLLBACK'))} rollbacks "
            "(a read-only transaction ends in a rollback)",
            "idle slots and the maintenance thread also poll by time, not per execution "
            f"({seconds:.1f} s measured)",
            "",
        ]
        keys = sorted(
            set(self.database) | set(self.sqlalchemy),
            key=lambda k: (k[0], -seen[k], -self.sqlalchemy[k], k[1]),
        )
        if self.traced:
            header = ["thread", "statement", "per exec", "via SQLAlchemy"]
            rows = [[*k, per(self.database[k]), per(self.sqlalchemy[k])] for k in keys]
        else:
            header = ["thread", "statement", "per exec"]
            rows = [[*k, per(self.sqlalchemy[k])] for k in keys]
        lines.append(table(header, rows, align="ll" + "r" * (len(header) - 2)))
        return "\n".join(lines)


def _role(name: str | None = None) -> str:
    name = name or threading.current_thread().name
    if name.startswith("cairn-slot"):
        return "worker slot"
    if name.startswith("cairn-maint"):
        return "worker maintenance"
    return "starter (start, wait)"


def _label(statement: str) -> str:
    """A statement reduced to its verb and table: ``SELECT tasks``, ``INSERT events``."""
    words = statement.split()
    if not words:
        return "(empty)"
    verb = words[0].upper()
    upper = [w.upper() for w in words]
    if verb == "SELECT" and "FROM" in upper:
        return f"SELECT {words[upper.index('FROM') + 1]}"
    if verb in ("INSERT", "DELETE") and len(words) > 2:
        return f"{verb} {words[2]}"
    if verb == "UPDATE" and len(words) > 1:
        return f"UPDATE {words[1]}"
    return " ".join(upper[:2])


def _where(key: tuple[str, int, str]) -> str:
    file, line, name = key
    if file == "~":
        return name
    path = os.path.abspath(file)
    root = str(workloads.ROOT) + os.sep
    if path.startswith(root):
        path = path[len(root) :]
    elif "site-packages" + os.sep in path:
        path = path.split("site-packages" + os.sep, 1)[1]
    elif os.sep + "lib" + os.sep + "python" in path:
        path = "stdlib/" + os.path.basename(path)
    return f"{path}:{line}({name})"


def top_functions(stats: pstats.Stats, executions: int, limit: int = 25) -> str:
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:limit]
    rows = [
        [
            f"{nc / executions:.1f}",
            f"{tt:.3f}",
            f"{tt * 1000 / executions:.3f}",
            f"{ct:.3f}",
            _where(key),
        ]
        for key, (_cc, nc, tt, ct, _callers) in ranked
    ]
    header = ["calls/exec", "tottime s", "ms/exec", "cumtime s", "function"]
    return table(header, rows, align="rrrrl")


def profile(sizes: Sizes, pg_url: str) -> None:
    """The sequential SQLite order case: its SQL counted, then again under cProfile.

    The two are separate runs of ``--executions`` each, so that neither the counting nor
    the profiler distorts the other.
    """
    for line in machine(["sqlite"], pg_url):
        print(line)
    flow = workloads.order()
    n = sizes.executions
    with fresh_database("sqlite", pg_url) as db:
        client = Client(Writer(db))
        client.deploy(flow.document)
        inputs = flow.inputs()
        with running_worker(client, flow, sizes.concurrency):
            run_many(client, flow, inputs, max(1, sizes.warmup), 1)
            with Statements(db) as counted:
                plain, plain_latencies, _ = run_many(client, flow, inputs, n, 1)
        # A worker of its own, so that its threads start with a profiler each.
        profiles = ThreadProfiles()
        profiles.main.enable()
        try:
            with profiles.threads():
                w = worker.Worker(
                    Dispatcher(client.writer),
                    flow.registry,
                    queues=flow.queues,
                    concurrency=sizes.concurrency,
                )
                w.start()
            try:
                seconds, latencies, _ = run_many(client, flow, inputs, n, 1)
            finally:
                w.stop(grace=10.0)
        finally:
            profiles.main.disable()
    print(
        f"case: sqlite, {flow.label}, sequential, worker with {sizes.concurrency} slots, "
        f"{sizes.warmup} warm-up executions"
    )
    print(
        f"{n} executions counting SQL: {n / plain:.1f} exec/s, "
        f"p50 {percentile(plain_latencies, 50) * 1000:.1f} ms"
    )
    print(
        f"{n} executions under cProfile: {n / seconds:.1f} exec/s, "
        f"p50 {percentile(latencies, 50) * 1000:.1f} ms"
    )
    print()
    print(f"top 25 functions by tottime, all threads merged (wall clock, {seconds:.1f} s):")
    print(
        "(time blocked counts: idle slots and the waiting starter in lock acquire, "
        "SQLite's busy wait and fsync in execute/commit)"
    )
    print(top_functions(profiles.stats(), n))
    print()
    print(
        "SQL per execution (SQLAlchemy engine events before_cursor_execute, commit, rollback; "
        "and the SQLite trace callback for what bypasses them):"
    )
    print(counted.report(n, plain))


# -- command line ---------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Timings are printed, never asserted.",
    )
    parser.add_argument("--db", choices=[*DATABASES, "both"], default="both", help="default: both")
    parser.add_argument(
        "--executions", type=int, help="measured executions per case (default 500, quick 40)"
    )
    parser.add_argument(
        "--warmup", type=int, help="warm-up executions per case (default 20, quick 3)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="executions in flight in the concurrent mode, and worker slots (default 8)",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the table: SQLite, order, sequential under cProfile, with SQL counts",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CAIRN_TEST_POSTGRES_URL") or DEFAULT_PG_URL,
        help="a PostgreSQL database to connect to for creating and dropping bench databases",
    )
    args = parser.parse_args(argv)
    if args.executions is not None and args.executions < 1:
        parser.error("--executions must be at least 1")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    sizes = Sizes(
        executions=args.executions or (40 if args.quick else 500),
        warmup=args.warmup if args.warmup is not None else (3 if args.quick else 20),
        concurrency=args.concurrency,
    )
    kinds = DATABASES if args.db == "both" else (args.db,)
    try:
        if args.profile:
            profile(sizes, args.pg_url)
        else:
            suite(kinds, sizes, args.pg_url)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
