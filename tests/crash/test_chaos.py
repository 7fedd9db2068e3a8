"""Hundreds of orders while workers are killed, redeployed and crowded; every one succeeds.

The order flow is definitions/order/v2.yaml as written, with each Activity pointing at its
journaled twin in tests.crash.handlers (which calls the demo's own handler).  Some orders
wait in their cancel window, some have a card whose first charge attempt fails (a retry
back-off), so kills land in every kind of state.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from activities import provider
from cairn.client import Client
from cairn.core import events
from cairn.definitions import loader
from tests.crash import handlers, harness
from tests.integration import support

pytestmark = pytest.mark.crash

ORDERS = 200
ORDER_V2 = support.ROOT / "definitions" / "order" / "v2.yaml"
QUEUES = ("--queue", "default", "--queue", "payments")
POLL = 0.1
GRACE = 1.0
REDEPLOY_POLL = 0.5
"""The "one poll" of the redeploy's bound on waits (grace plus one poll).  A handed-back task
is usually running again 10-40 ms after the grace period (workers hear of it at once); a
stalled fsync or a busy core once made it 236 ms, more than the default poll of 0.2 s."""


def deploy_orders(client: Client) -> None:
    text = re.sub(r"Activity: (\w+)", r"Activity: Crash.\1", ORDER_V2.read_text())
    client.deploy(loader.loads(text, str(ORDER_V2)))


def order(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "order_id": f"O-{n:03d}",
        "email": f"buyer{n}@example.com",
        "card": handlers.FLAKY_CARD if n % 5 == 0 else "tok_visa",
        "total": 10 + n,
        "items": [{"sku": f"SKU-{n % 7}", "qty": 1 + n % 3}],
        "address": f"{n} Main St",
        "cancel_window_seconds": n % 3,
        **changes,
    }


def check_orders(
    client: Client,
    ids: list[str],
    journal: Path,
    cluster: harness.Cluster,
    grace: float = 0.0,
) -> list[harness.Rerun]:
    """Every order shipped, replays, ran each attempt once bar kills, and charged once."""
    views = [client.describe(i) for i in ids]
    failed = {v["id"]: (v["status"], v["error"], v["cause"]) for v in views}
    failed = {k: v for k, v in failed.items() if v[0] != "SUCCEEDED"}
    assert failed == {}, [support.history(client, k) for k in failed]
    assert {v["output"]["status"] for v in views} == {"shipped"}
    assert support.assert_replays(client) == len(ids)
    runs = harness.Journal.read(journal)
    reruns = harness.explain_reruns(runs, cluster.signalled, grace)
    harness.assert_no_overlap(runs, cluster.signalled)
    assert harness.assert_history_names_workers(client, runs, ids) == 5 * len(ids)
    # A killed worker never comes back with an outcome; an activity released at the end of
    # a grace period may return before its process exits, and is refused.
    released = {(r.run.key, r.run.worker) for r in reruns if r.cause.signal == "TERM"}
    assert {(r["key"], r["worker"]) for r in client.refused()} <= released
    # One charge per order, on the key of its ChargeCard; a key came back to the provider
    # only when a run of it was killed after reaching it.
    charges = provider.charges()
    assert sorted(c["order_id"] for c in charges) == sorted(f"O-{n:03d}" for n in range(len(ids)))
    assert {v["output"]["charge_id"] for v in views} == {c["charge_id"] for c in charges}
    again = {r.run.key for r in reruns if r.run.activity == "Crash.ChargeCard"}
    assert {c["idempotency_key"] for c in charges if c["requests"] > 1} <= again
    assert not any(c["refunded"] for c in charges)
    return reruns


def test_orders_survive_a_worker_killed_every_second(
    client: Client, cluster: Callable[..., harness.Cluster], journal: Path
) -> None:
    deploy_orders(client)
    workers = cluster(
        *QUEUES,
        "--lease",
        "2",
        "--poll",
        str(POLL),
        "--concurrency",
        "4",
        **{handlers.WORK_MS: "20"},
    )
    for started in [workers.start() for _ in range(3)]:
        started.ready()
    began = time.monotonic()
    with harness.Chaos(workers, seed=ORDERS):
        ids = [
            client.start("order", order(n), execution_id=f"order-{n:03d}")["id"]
            for n in range(ORDERS)
        ]
        harness.wait_all_closed(client, ORDERS, timeout=90)
    took = time.monotonic() - began
    workers.stop_all()

    reruns = check_orders(client, ids, journal, workers)
    kills = workers.kills()
    assert len(kills) >= 3, "the chaos loop hardly ran"
    kinds = Counter(r.kind for r in reruns)
    harness.summary(
        f"chaos [{client.writer.db.dialect.name}]",
        executions=ORDERS,
        seconds=f"{took:.1f}",
        kills=len(kills),
        activities_run_twice=len(reruns),
        **{k.split(",")[0].replace(" ", "_"): n for k, n in kinds.items()},
        which=which(reruns),
    )


def which(reruns: list[harness.Rerun]) -> str:
    """The activities that ran again, and how often: "(ChargeCard 2, ShipPackage 1)"."""
    counts = Counter(r.run.activity.removeprefix("Crash.") for r in reruns)
    return "(" + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) + ")"


def test_orders_survive_a_rolling_redeploy(
    client: Client, cluster: Callable[..., harness.Cluster], journal: Path
) -> None:
    deploy_orders(client)
    # Eight slots a worker, capacity to spare: a task waits for a worker that stops, not for
    # a slow neighbour to free a slot.
    workers = cluster(
        *QUEUES,
        "--grace",
        str(GRACE),
        "--poll",
        str(REDEPLOY_POLL),
        "--concurrency",
        "8",
        **{handlers.WORK_MS: "20"},
    )
    for started in [workers.start() for _ in range(3)]:
        started.ready()
    ids: list[str] = []
    done = threading.Event()

    def place_orders() -> None:
        for n in range(ORDERS):
            # Orders arrive at a steady pace, below what the workers can take, so a task
            # waits only for a worker that stops, not for a backlog.
            slow = {"address": handlers.SLOW_LANE} if n % 10 == 0 else {}
            ids.append(client.start("order", order(n, **slow), execution_id=f"order-{n:03d}")["id"])
            time.sleep(0.02)

    began = time.monotonic()
    placing = threading.Thread(target=place_orders, daemon=True)
    placing.start()

    failed: list[BaseException] = []

    def all_closed() -> None:
        try:
            placing.join(support.DEADLINE)
            harness.wait_all_closed(client, ORDERS, timeout=90)
        except BaseException as exc:
            failed.append(exc)
        finally:
            done.set()

    closing = threading.Thread(target=all_closed, daemon=True)
    closing.start()
    replaced = harness.redeploy(workers, done)
    closing.join(support.DEADLINE)
    if failed:
        raise failed[0]
    took = time.monotonic() - began
    workers.stop_all()

    reruns = check_orders(client, ids, journal, workers, GRACE)
    assert replaced >= 3, "not even one round of the redeploy ran"
    assert {r.kind for r in reruns} <= {"released at the end of the grace period"}
    waits = task_waits(client, ids, harness.Journal.read(journal), workers.signalled)
    longest = waits[-1].seconds
    harness.summary(
        f"redeploy [{client.writer.db.dialect.name}]",
        executions=ORDERS,
        seconds=f"{took:.1f}",
        workers_replaced=replaced,
        released_and_run_again=len(reruns),
        which=which(reruns),
        longest_task_wait=f"{longest:.2f}s",
    )
    assert longest <= GRACE + REDEPLOY_POLL, waits[-5:]


@dataclass(frozen=True, slots=True)
class Wait:
    """How long a task waited for a worker, and what for (in a failure's message)."""

    seconds: float
    what: str


def task_waits(
    client: Client,
    ids: list[str],
    runs: harness.Journal,
    signalled: list[harness.Signalled],
) -> list[Wait]:
    """How long each task waited for a worker: from being scheduled to its first run, and
    from the SIGTERM of a worker that held it past its grace period to its next run."""
    scheduled: dict[tuple[Any, Any], float] = {}
    for execution_id in ids:
        for event in support.history(client, execution_id, events.TASK_SCHEDULED):
            scheduled[(event.details["key"], event.details["attempt"])] = event.time
    stopped = {s.pid: s for s in signalled}
    waits = []
    for (_, key, attempt), attempt_runs in runs.by_attempt.items():
        first = attempt_runs[0]
        waits.append(Wait(first.start - scheduled[(key, attempt)], f"{key}: scheduled"))
        for earlier, later in itertools.pairwise(attempt_runs):
            term = stopped[earlier.pid]
            back = "?" if term.handed_back is None else f"{term.handed_back - term.at:.3f}s"
            what = f"{key}: SIGTERM to {earlier.worker}, handed back after {back}"
            waits.append(Wait(later.start - term.at, what))
    return sorted(waits, key=lambda w: w.seconds)


def test_four_workers_never_run_one_task_attempt_at_once(
    client: Client, cluster: Callable[..., harness.Cluster], journal: Path
) -> None:
    client.deploy(loader.loads(SPREAD))
    workers = cluster("--lease", "1", "--poll", str(POLL), "--concurrency", "4")
    for started in [workers.start() for _ in range(4)]:
        started.ready()
    ids = [client.start("spread", {"items": list(range(6))})["id"] for _ in range(60)]
    harness.wait_all_closed(client, len(ids), timeout=90)
    workers.stop_all()

    assert {client.describe(i)["status"] for i in ids} == {"SUCCEEDED"}
    support.assert_replays(client)
    runs = harness.Journal.read(journal)
    assert runs.repeated() == {}
    assert client.refused() == []
    harness.assert_no_overlap(runs, [])
    assert harness.assert_history_names_workers(client, runs, ids) == 8 * len(ids)
    assert len({r.worker for r in runs.runs}) == 4  # every worker took part


SPREAD = """
Name: spread
Version: 1
Comment: Six items at once, then a step that outlives the lease, which only renewals keep.
StartAt: Items
States:
  Items:
    Type: Map
    ItemsPath: items
    ItemProcessor:
      StartAt: Item
      States:
        Item: {Type: Task, Activity: Crash.Step, End: true}
    ResultPath: items
    Next: Long
  Long: {Type: Task, Activity: Crash.Step, Parameters: {seconds: 1.5}, ResultPath: long, Next: Done}
  Done: {Type: Task, Activity: Crash.Step, ResultPath: done, End: true}
"""
