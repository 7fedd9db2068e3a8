"""The crash harness: real ``cairn worker`` processes, real signals, and the checks afterwards.

``Cluster`` starts workers on one database, SIGKILLs or SIGTERMs them and remembers when,
so that every activity that ran more than once can be matched to the signal that caused
it.  ``Chaos`` kills a random worker every 0.5 to 1.5 seconds and starts a replacement;
``redeploy`` stops every worker with SIGTERM and replaces it, one at a time.  The checks
read the journal the activities write (``tests.crash.handlers``), the histories and the
demo provider's books.
"""

from __future__ import annotations

import itertools
import random
import re
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.client import Client
from cairn.core import events
from tests.crash import handlers
from tests.integration import support

READY = re.compile(r"^worker (\S+): queues ")


@dataclass(frozen=True, slots=True)
class Signalled:
    """A worker process that was sent a signal, and when."""

    pid: int
    worker: str
    signal: str  # KILL | TERM
    at: float
    exited: float
    handed_back: float | None = None
    """When a SIGTERMed worker said it had handed its tasks back."""


@dataclass
class Worker:
    process: TimedProcess
    id: str = ""

    @property
    def pid(self) -> int:
        return self.process.process.pid

    def ready(self, timeout: float = support.DEADLINE) -> Worker:
        """Wait until the worker is registered and running; learn its id."""
        line = self.process.wait_for("worker ", timeout)
        match = READY.match(line)
        assert match, line
        self.id = match.group(1)
        return self


class TimedProcess(support.WorkerProcess):
    """A worker process whose output lines carry the time they were read."""

    def _read(self) -> None:
        assert self.process.stderr is not None
        self.stamps: list[tuple[float, str]] = []
        for line in self.process.stderr:
            self.stamps.append((time.time(), line.rstrip("\n")))
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> float | None:
        """When the worker printed a line containing ``text``."""
        return next((t for t, line in getattr(self, "stamps", []) if text in line), None)


class Cluster:
    """``cairn worker`` processes on one database, started, killed and stopped by a test."""

    def __init__(self, db_url: str, *args: str, **env: str) -> None:
        self.db_url = db_url
        self.args = args
        self.env = env
        self.running: list[Worker] = []
        self.signalled: list[Signalled] = []
        self.exited: list[Worker] = []
        self._lock = threading.Lock()

    def start(self, *args: str, **env: str) -> Worker:
        process = TimedProcess(
            self.db_url,
            *self.args,
            *args,
            env=support.subprocess_env(**{**self.env, **env}),
        )
        worker = Worker(process)
        with self._lock:
            self.running.append(worker)
        return worker

    def kill(self, worker: Worker) -> Signalled:
        """SIGKILL: the process dies on the spot, whatever it was doing."""
        at = time.time()
        worker.process.process.send_signal(signal.SIGKILL)
        worker.process.process.wait(support.DEADLINE)
        return self._gone(worker, "KILL", at)

    def terminate(self, worker: Worker, timeout: float = support.DEADLINE) -> Signalled:
        """SIGTERM once the worker runs, and wait for it to drain and exit cleanly."""
        if not worker.id:
            worker.ready()
        at = time.time()
        code = worker.process.stop(timeout)
        assert code == 0, worker.process.output
        return self._gone(worker, "TERM", at)

    def _gone(self, worker: Worker, kind: str, at: float) -> Signalled:
        sent = Signalled(
            pid=worker.pid,
            worker=worker.id,
            signal=kind,
            at=at,
            exited=time.time(),
            handed_back=worker.process.said("handed back"),
        )
        with self._lock:
            self.running.remove(worker)
            self.exited.append(worker)
            self.signalled.append(sent)
        return sent

    def stop_all(self) -> None:
        """SIGTERM every running worker; then no worker ever printed a traceback or met a
        locked database."""
        for worker in list(self.running):
            self.terminate(worker)
        for worker in self.exited:
            output = worker.process.output
            assert "Traceback" not in output and "locked" not in output, output

    def close(self) -> None:
        """Kill whatever still runs (a failed test must not leave processes behind)."""
        for worker in [*self.running, *self.exited]:
            worker.process.kill()

    def kills(self) -> list[Signalled]:
        return [s for s in self.signalled if s.signal == "KILL"]


class Chaos:
    """Every 0.5 to 1.5 seconds, SIGKILL a random worker and start a replacement."""

    def __init__(self, cluster: Cluster, seed: int, low: float = 0.5, high: float = 1.5) -> None:
        self.cluster = cluster
        self.random = random.Random(seed)
        self.low, self.high = low, high
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self._thread.join(support.DEADLINE)
        if self.errors:
            raise self.errors[0]

    def _run(self) -> None:
        try:
            # Sleeping is the point here: the kills come at random moments.
            while not self.done.wait(self.random.uniform(self.low, self.high)):
                victim = self.random.choice(self.cluster.running)
                self.cluster.kill(victim)
                self.cluster.start()
        except BaseException as exc:
            self.errors.append(exc)


def redeploy(cluster: Cluster, until: threading.Event) -> int:
    """Replace every worker, one at a time, by SIGTERM and a new process, until ``until``.

    Each replacement is running before the next worker is stopped, as a rolling deploy
    does.  Returns how many workers were replaced.
    """
    replaced = 0
    while not until.is_set():
        for old in list(cluster.running):
            if until.is_set():
                break
            cluster.terminate(old)
            cluster.start().ready()
            replaced += 1
    return replaced


def wait_all_closed(client: Client, count: int, timeout: float) -> None:
    support.wait_until(
        lambda: not client.executions(status="RUNNING", limit=count),
        f"{count} executions to close",
        timeout=timeout,
        every=0.1,
    )


# -- reading the journal --------------------------------------------------------------------


@dataclass
class Run:
    """One run of one task attempt by one worker process, from the journal."""

    activity: str
    key: str
    attempt: int
    execution: str
    worker: str
    pid: int
    start: float
    end: float | None = None
    outcome: str | None = None


@dataclass
class Journal:
    runs: list[Run]
    by_attempt: dict[tuple[str, str, int], list[Run]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Any) -> Journal:
        runs: list[Run] = []
        open_runs: dict[tuple[str, str, int, int], Run] = {}
        for line in handlers.read_journal(path):
            ident = (line["activity"], line["key"], line["attempt"], line["pid"])
            if line["at"] == "start":
                run = Run(
                    activity=line["activity"],
                    key=line["key"],
                    attempt=line["attempt"],
                    execution=line["execution"],
                    worker=line["worker"],
                    pid=line["pid"],
                    start=line["time"],
                )
                runs.append(run)
                open_runs[ident] = run
            else:
                run = open_runs.pop(ident)
                run.end, run.outcome = line["time"], line["outcome"]
        journal = cls(runs)
        grouped: dict[tuple[str, str, int], list[Run]] = defaultdict(list)
        for run in runs:
            grouped[(run.activity, run.key, run.attempt)].append(run)
        journal.by_attempt = {k: sorted(v, key=lambda r: r.start) for k, v in grouped.items()}
        return journal

    def repeated(self) -> dict[tuple[str, str, int], list[Run]]:
        """The task attempts that ran more than once."""
        return {k: v for k, v in self.by_attempt.items() if len(v) > 1}


@dataclass(frozen=True, slots=True)
class Rerun:
    """A run that did not count, and the signal that explains it."""

    run: Run
    cause: Signalled

    @property
    def kind(self) -> str:
        if self.cause.signal == "TERM":
            return "released at the end of the grace period"
        if self.run.end is not None:
            return "killed after the activity returned, before its outcome was recorded"
        return "killed while the activity ran"


def explain_reruns(
    journal: Journal, signalled: Sequence[Signalled], grace: float = 0.0
) -> list[Rerun]:
    """Every run but the last of an attempt must be by a worker stopped before it recorded.

    A worker that was SIGKILLed while the run was on, or SIGTERMed (with ``grace``) and
    still running it when its grace period ended, explains the run; anything else fails
    the test.
    """
    by_pid = {s.pid: s for s in signalled}
    explained: list[Rerun] = []
    unexplained: list[Run] = []
    for runs in journal.repeated().values():
        for run in runs[:-1]:
            cause = by_pid.get(run.pid)
            if cause is None or cause.exited < run.start:
                unexplained.append(run)
            elif cause.signal == "TERM" and run.end is not None and run.end < cause.at + grace:
                unexplained.append(run)  # it returned in time: its outcome was to be recorded
            else:
                explained.append(Rerun(run, cause))
    assert unexplained == [], f"attempts that ran again with no kill to explain it: {unexplained}"
    return explained


def assert_no_overlap(journal: Journal, signalled: Sequence[Signalled]) -> None:
    """No two workers ran the same task attempt at the same time.

    A run ends at its ``end`` line, or when its process was killed; a run of a process
    SIGTERMed past its grace period may have gone on until the process exited, which the
    caller accounts for by not mixing the two.
    """
    died = {s.pid: s.at for s in signalled}
    for key, runs in journal.repeated().items():
        for earlier, later in itertools.pairwise(runs):
            end = earlier.end if earlier.end is not None else died.get(earlier.pid)
            assert end is not None, f"{earlier} never ended and was not killed"
            assert end <= later.start, f"{key} ran twice at once: {earlier} and {later}"


def assert_history_names_workers(client: Client, journal: Journal, ids: Iterable[str]) -> int:
    """Each succeeded task's history names the worker whose run of it counted."""
    last_run = {(k, a): v[-1] for (_, k, a), v in journal.by_attempt.items()}
    checked = 0
    for execution_id in ids:
        started: dict[str, str] = {}
        scheduled: dict[str, tuple[str, int]] = {}
        for event in client.history(execution_id):
            match event.payload:
                case events.TaskScheduled(task_id=task_id, key=key, attempt=attempt):
                    scheduled[task_id] = (key, attempt)
                case events.TaskStarted(task_id=task_id, worker=worker):
                    started[task_id] = worker
                case events.TaskSucceeded(task_id=task_id):
                    key, attempt = scheduled[task_id]
                    assert started[task_id] == last_run[(key, attempt)].worker, (key, attempt)
                    checked += 1
    return checked


REPORTS: list[str] = []
"""What the chaos and redeploy tests counted; pytest prints them at the end of every run."""


def summary(label: str, **numbers: Any) -> str:
    """One line of what a test counted, for the report at the end of the run."""
    text = f"{label}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in numbers.items())
    REPORTS.append(text)
    return text
