"""ContinueAsNew benchmark: a long counting loop, a new run every ``--every`` iterations.

Each iteration is a Pass that adds one to ``n`` (``add(n, `1`)``) and a Choice that ends
the loop, starts a new run (ContinueAsNew) every ``--every`` iterations, or goes round
again.  With ``--step task`` each iteration also runs a no-op activity through a real
``Worker`` in this process, so every iteration is a transaction of its own, as it is for a
loop that does real work.

What it shows: the rate, how many runs there were and the largest history of one run (it
stays near ``4 * every`` events however many iterations there are), and the process's
memory: peak RSS (``resource.getrusage``) before and after, and the RSS after a loop of a
tenth of the iterations next to the RSS after the whole loop.

Usage::

    python3 -m bench.continue_as_new                      # 100,000 iterations on SQLite
    python3 -m bench.continue_as_new --db postgres --iterations 20000 --every 500
    python3 -m bench.continue_as_new --step task --iterations 10000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bench import engine as bench
from cairn import activities
from cairn.client import Client
from cairn.definitions import loader
from cairn.jsontypes import JSON
from cairn.runtime import tables, worker
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.writer import Writer

STEP_PASS = """
Name: counter
Version: 1
StartAt: Count
States:
  Count:
    Type: Pass
    Parameters:
      n.$: "add(n, `1`)"
      limit.$: limit
      every.$: every
    Next: Next?
  Next?:
    Type: Choice
    Choices:
      - Condition: "n >= limit"
        Next: Done
      - Condition: "mod(n, every) == `0`"
        Next: Again
    Default: Count
  Again:
    Type: ContinueAsNew
  Done:
    Type: Succeed
"""

STEP_TASK = (
    STEP_PASS.replace(
        "StartAt: Count",
        "StartAt: Tick",
    )
    .replace(
        "  Count:\n",
        "  Tick:\n    Type: Task\n    Activity: Tick\n    ResultPath: null\n    Next: Count\n"
        "  Count:\n",
    )
    .replace("Default: Count", "Default: Tick")
)

SAMPLE_EVERY = 0.02
WAIT_TIMEOUT = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    label: str
    iterations: int
    seconds: float
    runs: int
    max_events: int
    events: int
    commits: int
    rss_after: int
    peak_during: int
    """Highest RSS sampled while the phase ran, in KiB."""
    maxrss_after: int

    def cells(self) -> list[str]:
        return [
            self.label,
            f"{self.iterations:,}",
            f"{self.seconds:.2f}",
            f"{self.iterations / self.seconds:,.0f}",
            f"{self.runs:,}",
            f"{self.max_events:,}",
            f"{self.events:,}",
            f"{self.commits:,}",
            mib(self.rss_after),
            mib(self.peak_during),
            mib(self.maxrss_after),
        ]


HEADER = [
    "loop",
    "iterations",
    "seconds",
    "iterations/s",
    "runs",
    "max events/run",
    "events",
    "commits",
    "RSS after",
    "RSS peak in loop",
    "peak RSS (getrusage)",
]


def rss() -> int:
    """The process's resident set size now, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def maxrss() -> int:
    """Peak RSS of the process so far, in KiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


class Sampler:
    """Samples RSS in a thread: the highest value seen while ``measure()`` is open."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    @contextmanager
    def measure(self) -> Iterator[Sampler]:
        self.peak = rss()
        self._stop.clear()
        thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.peak = max(self.peak, rss())

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self.peak = max(self.peak, rss())


class Commits:
    """Counts the transactions committed on an engine."""

    def __init__(self, db: sa.Engine) -> None:
        self.count = 0
        sa.event.listen(db, "commit", self._commit)

    def _commit(self, conn: Any) -> None:
        self.count += 1


def events_per_run(client: Client, execution_id: str) -> dict[int, int]:
    E = tables.events
    query = (
        sa.select(E.c.run, sa.func.count())
        .where(E.c.execution_id == execution_id)
        .group_by(E.c.run)
    )
    with client.writer.read() as conn:
        return {int(run): int(count) for run, count in conn.execute(query)}


def run_loop(
    client: Client,
    commits: Commits,
    sampler: Sampler,
    label: str,
    iterations: int,
    every: int,
) -> Phase:
    loop: dict[str, JSON] = {"n": 0, "limit": iterations, "every": every}
    before = commits.count
    with sampler.measure():
        began = time.perf_counter()
        started = client.start("counter", loop)
        view = client.wait(started["id"], timeout=WAIT_TIMEOUT)
        seconds = time.perf_counter() - began
    if view["status"] != "SUCCEEDED" or view["output"]["n"] != iterations:
        raise bench.BenchError(
            f"the loop of {iterations} ended {view['status']} "
            f"({view['error']}: {view['cause']}; output {view['output']})"
        )
    runs = events_per_run(client, view["id"])
    return Phase(
        label=label,
        iterations=iterations,
        seconds=seconds,
        runs=view["run"],
        max_events=max(runs.values()),
        events=sum(runs.values()),
        commits=commits.count - before,
        rss_after=rss(),
        peak_during=sampler.peak,
        maxrss_after=maxrss(),
    )


@contextmanager
def running(client: Client, step: str) -> Iterator[None]:
    if step != "task":
        yield
        return
    registry = activities.Registry()
    registry.register("Tick", lambda params, ctx: None)
    runner = worker.Worker(Dispatcher(client.writer), registry, concurrency=1, poll=0.05)
    runner.start()
    try:
        yield
    finally:
        runner.stop(grace=10.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.continue_as_new", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=1_000, help="iterations per run")
    parser.add_argument("--db", choices=bench.DATABASES, default="sqlite")
    parser.add_argument(
        "--step",
        choices=("pass", "task"),
        default="pass",
        help="pass: Pass + Choice per iteration; task: a no-op activity too, run by a worker",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CAIRN_TEST_POSTGRES_URL", bench.DEFAULT_PG_URL),
        help="PostgreSQL server (with --db postgres); a database is made and dropped on it",
    )
    args = parser.parse_args(argv)
    if args.iterations < 10 or args.every < 1:
        parser.error("--iterations must be at least 10 and --every at least 1")
    try:
        report(args)
    except bench.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def report(args: argparse.Namespace) -> None:
    where = (
        bench.sqlite_settings()
        if args.db == "sqlite"
        else f"PostgreSQL {bench.postgres_version(args.pg_url)}"
    )
    shape = "Pass + Choice" if args.step == "pass" else "Task + Pass + Choice"
    print(
        f"ContinueAsNew loop: {args.iterations:,} iterations ({shape} each), a new run every "
        f"{args.every:,}; {args.db}: {where}; Python {sys.version.split()[0]}"
    )
    document = loader.loads(STEP_PASS if args.step == "pass" else STEP_TASK)
    sampler = Sampler()
    with bench.fresh_database(args.db, args.pg_url) as db:
        client = Client(Writer(db))
        client.deploy(document)
        commits = Commits(db)
        with running(client, args.step):
            run_loop(
                client,
                commits,
                sampler,
                "warm-up",
                min(args.iterations, 2 * args.every),
                args.every,
            )
            peak_before, rss_before = maxrss(), rss()
            tenth = run_loop(client, commits, sampler, "a tenth", args.iterations // 10, args.every)
            whole = run_loop(client, commits, sampler, "whole", args.iterations, args.every)
    print()
    print(bench.table(HEADER, [tenth.cells(), whole.cells()], align="lrrrrrrrrrr"))
    print()
    print(f"iterations/s (whole loop): {whole.iterations / whole.seconds:,.0f}")
    print(f"runs: {whole.runs:,}; events per run at most {whole.max_events:,}")
    print(f"peak RSS: {mib(peak_before)} before the measured loops, {mib(maxrss())} after")
    growth = whole.rss_after - tenth.rss_after
    print(
        f"RSS after {tenth.iterations:,} iterations: {mib(tenth.rss_after)}; "
        f"after {whole.iterations:,}: {mib(whole.rss_after)} ({growth / 1024:+.1f} MiB); "
        f"before both: {mib(rss_before)}"
    )
    if args.step == "pass":
        print(
            f"transactions for the whole loop: {whole.commits} (a loop of pure states runs "
            "every run inside the transaction of its cause, here the start)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
