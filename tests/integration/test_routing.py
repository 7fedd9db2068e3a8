"""Workers take only tasks of the queues they serve, for activities they have."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from cairn.client import Client
from cairn.core import events
from cairn.runtime import leasing, tables, worker
from cairn.runtime.dispatcher import Dispatcher
from tests.integration import support
from tests.integration.support import Recorder

ROUTED = """
Name: routed
Version: 1
StartAt: A
States:
  A:
    Type: Task
    Activity: A
    Next: B
  B:
    Type: Task
    Activity: B
    TaskQueue: special
    Next: C
  C:
    Type: Task
    Activity: C
    End: true
"""


def registry_of(recorder: Recorder, *names: str) -> Recorder:
    for name in names:
        recorder.add(name, lambda params, ctx: params)
    return recorder


MISSING = "(no task)"


def owner_of(client: Client, activity: str) -> object:
    """The worker holding the task of ``activity``: None if nobody, MISSING if no such task."""
    with client.writer.read() as conn:
        row = conn.execute(
            sa.select(tables.tasks.c.lease_owner).where(tables.tasks.c.activity == activity)
        ).first()
    return MISSING if row is None else row.lease_owner


def test_claim_matches_both_the_queue_and_the_activity(
    dispatcher: Dispatcher, client: Client
) -> None:
    support.deploy(client, ROUTED)
    client.start("routed", {})
    assert dispatcher.claim(support.offer(["B", "C"], queues=["default", "special"])) == []
    assert dispatcher.claim(support.offer(["A"], queues=["special"])) == []
    assert dispatcher.claim(support.offer([], queues=["default"])) == []
    assert dispatcher.claim(support.offer(["A"], queues=[])) == []
    (claim,) = dispatcher.claim(support.offer(["A", "B"], queues=["default"]))
    assert claim.activity == "A"
    support.assert_replays(client)


@pytest.fixture
def counted_claims(dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each worker has looked for work."""
    looks: Counter[str] = Counter()
    lock = threading.Lock()
    claim = dispatcher.claim

    def counting(offer: leasing.Offer) -> list[leasing.Claim]:
        with lock:
            looks[offer.worker] += 1
        return claim(offer)

    monkeypatch.setattr(dispatcher, "claim", counting)
    return looks


def test_workers_leave_tasks_they_cannot_run_to_workers_that_can(
    dispatcher: Dispatcher,
    client: Client,
    counted_claims: Counter[str],
    start_worker: Callable[..., worker.Worker],
) -> None:
    support.deploy(client, ROUTED)
    execution_id = client.start("routed", {"x": 1})["id"]
    a_and_b = registry_of(Recorder(), "A", "B")
    only_b = registry_of(Recorder(), "B")
    only_c = registry_of(Recorder(), "C")

    def looked_again(*workers: worker.Worker, times: int = 3) -> None:
        before = {w.id: counted_claims[w.id] for w in workers}
        support.wait_until(
            lambda: all(counted_claims[w.id] >= before[w.id] + times for w in workers),
            f"{times} more looks for work by {[w.id for w in workers]}",
        )

    # w1 serves the default queue with A and B: it runs A, and leaves B (queue special).
    w1 = start_worker(dispatcher, a_and_b.registry, queues=("default",), worker_id="w1")
    support.wait_until(lambda: owner_of(client, "B") is None, "B to be queued")
    assert a_and_b.count("A") == 1
    looked_again(w1)
    assert owner_of(client, "B") is None
    assert a_and_b.count("B") == 0

    # w2 serves queue special with B only: it runs B; nobody runs C until w3 comes.
    w2 = start_worker(dispatcher, only_b.registry, queues=("special",), worker_id="w2")
    support.wait_until(lambda: support.entered(client, execution_id)[-1:] == ["C"], "C entered")
    looked_again(w1, w2)
    assert owner_of(client, "C") is None
    assert (a_and_b.count("C"), only_b.count()) == (0, 1)

    start_worker(dispatcher, only_c.registry, queues=("default", "special"), worker_id="w3")
    view = support.wait_closed(client, execution_id)
    assert (view["status"], view["output"]) == ("SUCCEEDED", {"x": 1})
    started = support.history(client, execution_id, events.TASK_STARTED)
    assert [(e.state, e.details["worker"]) for e in started] == [
        ("A", "w1"),
        ("B", "w2"),
        ("C", "w3"),
    ]
    assert (a_and_b.count(), only_b.count(), only_c.count()) == (1, 1, 1)
    support.assert_replays(client)
