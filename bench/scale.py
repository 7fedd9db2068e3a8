"""Scale-out benchmark: executions per second with 1, 2 and 4 ``cairn worker`` processes,
and the latency from "task scheduled" to "task started" when the workers are idle.

Each case gets a fresh database (an SQLite file, or a new PostgreSQL database), starts the
worker processes as an operator would (``cairn worker --activities bench.activities``: the
order flow of definitions/order/v1.yaml with activities that do nothing), waits until all
are running, then:

- throughput: this process starts ``--executions`` orders from two threads as fast as it
  can (a client, with no worker of its own: every first task is claimed by a worker
  process) and waits for them to close; executions per second is measured from the
  executions table, first start to last close.  CPU seconds are read from /proc for the
  worker processes, the PostgreSQL server (every ``postgres`` process on the machine) and
  this process (the client), and given as a share of all the machine's cores.
- latency: orders arrive one every ``--gap`` seconds, so workers are idle when each
  comes; "scheduled to started" is the time between the first task's TaskScheduled event
  (written by the client) and its TaskStarted event (the claim, written by a worker).

``--profile`` runs the largest case of each database with every worker under cProfile (all
threads) and prints the functions that took the most time, merged over the workers.

Usage::

    python3 -m bench.scale                  # both databases, 1, 2 and 4 workers (~2 minutes)
    python3 -m bench.scale --db postgres --processes 1 4 --executions 2000
    python3 -m bench.scale --profile --db sqlite
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench import engine, workloads
from cairn.client import Client
from cairn.core import events
from cairn.jsontypes import JSON
from cairn.runtime import tables
from cairn.runtime.writer import Writer

STARTERS = 2
READY_TIMEOUT = 60.0
CLOSE_TIMEOUT = 600.0
TICK = os.sysconf("SC_CLK_TCK")
CAIRN = "import sys; from cli.main import main; sys.exit(main())"


@dataclass
class Worker:
    """One ``cairn worker`` process and the lines it printed."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("worker ") and "concurrency" in line:
                self.ready.set()


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    db: str
    processes: int
    executions: int
    seconds: float
    start_seconds: float
    tasks: int
    cpu_workers: float
    cpu_server: float
    cpu_client: float
    machine: float
    """How busy all cores were (every process on the machine, not only these)."""
    latencies: Sequence[float]

    def cells(self) -> list[str]:
        rate = self.executions / self.seconds
        share = 100 / (self.seconds * (os.cpu_count() or 1))
        return [
            self.db,
            str(self.processes),
            f"{rate:,.1f}",
            f"{rate * self.tasks:,.0f}",
            f"{self.executions / self.start_seconds:,.0f}",
            f"{self.cpu_workers * share:.0f}%",
            f"{self.cpu_server * share:.0f}%" if self.db == "postgres" else "-",
            f"{self.cpu_client * share:.0f}%",
            f"{self.machine * 100:.0f}%",
            f"{engine.percentile(self.latencies, 50) * 1000:.1f}",
            f"{engine.percentile(self.latencies, 99) * 1000:.1f}",
        ]


HEADER = [
    "db",
    "workers",
    "exec/s",
    "tasks/s",
    "starts/s",
    "cpu workers",
    "cpu server",
    "cpu client",
    "machine busy",
    "sched→start p50 ms",
    "p99 ms",
]


# -- processes and their CPU ----------------------------------------------------------------


def start_workers(
    url: str, count: int, concurrency: int, poll: float, profile_dir: str | None
) -> list[Worker]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workloads.ROOT), env.get("PYTHONPATH")]))
    env.pop("CAIRN_DATABASE_URL", None)
    started = []
    for n in range(count):
        if profile_dir is None:
            command = [sys.executable, "-c", CAIRN]
        else:
            command = [sys.executable, "-m", "bench.profiled_worker", f"{profile_dir}/{n}.prof"]
        args = [
            "--db",
            url,
            "worker",
            "--activities",
            "bench.activities",
            "--queue",
            "default",
            "--queue",
            "payments",
            "--concurrency",
            str(concurrency),
            "--poll",
            str(poll),
        ]
        process = subprocess.Popen(
            [*command, *args],
            cwd=workloads.ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        worker = Worker(process)
        threading.Thread(target=worker.read, daemon=True).start()
        started.append(worker)
    for worker in started:
        if not worker.ready.wait(READY_TIMEOUT):
            stop_workers(started)
            raise engine.BenchError("a worker did not start:\n" + "\n".join(worker.lines))
    return started


def stop_workers(workers: Sequence[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.process.wait(60)
        except subprocess.TimeoutExpired:
            worker.process.kill()


def cpu_of(pids: Sequence[int]) -> float:
    """User and system CPU seconds of live processes, from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def machine_busy() -> tuple[int, int]:
    """Busy and total jiffies of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def postgres_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# -- measuring ------------------------------------------------------------------------------


def throughput(
    client: Client, flow: workloads.Flow, inputs: Iterator[JSON], count: int
) -> tuple[float, float]:
    """Start ``count`` executions from two threads, wait for all; (seconds, start seconds)."""
    batch = [next(inputs) for _ in range(count)]
    name, version = flow.document.name, flow.document.version
    began = time.perf_counter()
    with futures.ThreadPoolExecutor(STARTERS) as pool:
        list(pool.map(lambda item: client.start(name, item, version=version), batch))
    start_seconds = time.perf_counter() - began
    wait_closed(client)
    E = tables.executions
    with client.writer.read() as conn:
        first, last, succeeded = conn.execute(
            sa.select(
                sa.func.min(E.c.started_at),
                sa.func.max(E.c.closed_at),
                sa.func.sum(sa.case((E.c.status == "SUCCEEDED", 1), else_=0)),
            )
        ).one()
    if succeeded != count:
        raise engine.BenchError(f"{count - succeeded} executions did not succeed")
    return float(last - first), start_seconds


def wait_closed(client: Client) -> None:
    deadline = time.monotonic() + CLOSE_TIMEOUT
    while client.executions(status="RUNNING", limit=1):
        if time.monotonic() > deadline:
            raise engine.BenchError(f"executions still running after {CLOSE_TIMEOUT:g}s")
        time.sleep(0.02)


def idle_latency(
    client: Client, flow: workloads.Flow, inputs: Iterator[JSON], count: int, gap: float
) -> list[float]:
    """Scheduled-to-started of first tasks, one execution every ``gap`` seconds."""
    name, version = flow.document.name, flow.document.version
    ids = []
    for _ in range(count):
        ids.append(client.start(name, next(inputs), version=version)["id"])
        time.sleep(gap)  # the arrival rate: workers are idle when the next order comes
    wait_closed(client)
    latencies = []
    for execution_id in ids:
        history = client.history(execution_id)
        scheduled = next(e for e in history if e.type == events.TASK_SCHEDULED)
        task_id = scheduled.details["task_id"]
        started = next(
            e for e in history if e.type == events.TASK_STARTED and e.details["task_id"] == task_id
        )
        latencies.append(started.time - scheduled.time)
    return latencies


def run_case(
    kind: str, processes: int, args: argparse.Namespace, profile_dir: str | None = None
) -> Result:
    flow = workloads.order()
    tasks = 4
    with engine.fresh_database(kind, args.pg_url) as db:
        url = db.url.render_as_string(hide_password=False)
        client = Client(Writer(db))
        client.deploy(flow.document)
        inputs = flow.inputs()
        workers = start_workers(url, processes, args.concurrency, args.poll, profile_dir)
        try:
            server = postgres_pids() if kind == "postgres" else []
            pids = [w.process.pid for w in workers]
            before = (cpu_of(pids), cpu_of(server), time.process_time(), *machine_busy())
            seconds, start_seconds = throughput(client, flow, inputs, args.executions)
            after = (cpu_of(pids), cpu_of(server), time.process_time(), *machine_busy())
            latencies = idle_latency(client, flow, inputs, args.latency_samples, args.gap)
        finally:
            stop_workers(workers)
    return Result(
        db=kind,
        processes=processes,
        executions=args.executions,
        seconds=seconds,
        start_seconds=start_seconds,
        tasks=tasks,
        cpu_workers=after[0] - before[0],
        cpu_server=after[1] - before[1],
        cpu_client=after[2] - before[2],
        machine=(after[3] - before[3]) / max(1, after[4] - before[4]),
        latencies=latencies,
    )


def profile(kind: str, processes: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="cairn-scale-") as folder:
        result = run_case(kind, processes, args, profile_dir=folder)
        files = sorted(Path(folder).glob("*.prof"))
        if not files:
            raise engine.BenchError("the workers left no profile")
        stats = pstats.Stats(str(files[0]))
        for file in files[1:]:
            stats.add(str(file))
    print(engine.table(HEADER, [result.cells()], align="llrrrrrrrrr"))
    print()
    print(
        f"top 25 functions by tottime over {processes} workers, all threads "
        "(time blocked counts: idle slots waiting, SQLite busy waits and fsync, "
        "PostgreSQL round trips inside execute/commit):"
    )
    print(engine.top_functions(stats, args.executions))


# -- command line ---------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Timings are printed, never asserted.",
    )
    parser.add_argument("--db", choices=[*engine.DATABASES, "both"], default="both")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--executions", type=int, default=1000, help="per case (default 1000)")
    parser.add_argument("--concurrency", type=int, default=4, help="slots per worker (4)")
    parser.add_argument("--poll", type=float, default=0.2, help="worker --poll (0.2)")
    parser.add_argument(
        "--latency-samples", type=int, default=100, help="executions for the latency (100)"
    )
    parser.add_argument("--gap", type=float, default=0.03, help="seconds between them (0.03)")
    parser.add_argument("--profile", action="store_true", help="profile the largest case")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CAIRN_TEST_POSTGRES_URL") or engine.DEFAULT_PG_URL,
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    kinds = engine.DATABASES if args.db == "both" else (args.db,)
    try:
        for line in engine.machine(kinds, args.pg_url):
            print(line)
        print(
            f"each case: a fresh database, N `cairn worker` processes with {args.concurrency} "
            f"slots (--poll {args.poll:g}), {args.executions} orders started by this process "
            f"from {STARTERS} threads; then {args.latency_samples} orders one every "
            f"{args.gap * 1000:.0f} ms for the latency"
        )
        print(flush=True)
        if args.profile:
            for kind in kinds:
                profile(kind, max(args.processes), args)
            return 0
        rows = []
        for kind in kinds:
            for processes in args.processes:
                began = time.perf_counter()
                result = run_case(kind, processes, args)
                rows.append(result.cells())
                engine.note(f"  {kind} {processes} workers: {time.perf_counter() - began:.1f} s")
        print(engine.table(HEADER, rows, align="llrrrrrrrrr"))
    except engine.BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
