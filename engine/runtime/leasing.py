"""What a worker is leased and what it offers to take: the worker protocol's vocabulary.

The write path and the store lease tasks, the hand-off of idle slots delivers them, and the
worker runs them; all of them speak of the same claims and offers, so these live in a module
of their own.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from cairn.core import state as st
from cairn.jsontypes import JSON

DEFAULT_LEASE = 30.0
"""Lease of a task without HeartbeatSeconds; the worker renews it while the activity runs.

A worker presumed dead holds its tasks this long.  ``cairn worker --lease`` (or
``CAIRN_LEASE_SECONDS``) changes it per worker: shorter hands a dead worker's tasks on
sooner, at the price of more renewals.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A task leased to a worker: what the activity needs to run.

    One type whichever way the lease was taken: by the transaction that created the task
    (``claim``) or by a worker's claim statement (``store.claim``).
    """

    task_id: str
    execution_id: str
    activity: str
    state: str
    input: JSON
    attempt: int
    key: str
    timeout: int | None
    heartbeat: int | None
    started_at: float
    heartbeat_details: JSON = None
    lease: float = DEFAULT_LEASE
    """How long the worker's lease lasts between renewals (without HeartbeatSeconds)."""

    @property
    def deadline(self) -> float | None:
        """When TimeoutSeconds runs out: it counts from the moment the task was leased."""
        return None if self.timeout is None else self.started_at + self.timeout


def claim(execution_id: str, task: st.Task, now: float, lease: float) -> Claim:
    """The claim of a task the write path holds, leased at ``now``."""
    return Claim(
        task_id=task.id,
        execution_id=execution_id,
        activity=task.activity,
        state=task.state,
        input=task.input,
        attempt=task.attempt,
        key=task.key,
        timeout=task.timeout,
        heartbeat=task.heartbeat,
        started_at=now,
        heartbeat_details=task.heartbeat_details,
        lease=lease,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    """Which worker began a task, and when: recorded as TaskStarted if it is not yet."""

    task_id: str
    worker: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """What a worker can take on in the transaction that completes its current task."""

    worker: str
    queues: Collection[str]
    activities: Collection[str]
    slots: int = 1
    lease: float = DEFAULT_LEASE


def lease_for(heartbeat: int | None, timeout: int | None, lease: float = DEFAULT_LEASE) -> float:
    """How long a fresh lease lasts: the heartbeat interval, else the worker's lease, capped
    by the task timeout (``store`` computes the same in SQL when it claims)."""
    length = float(heartbeat) if heartbeat is not None else lease
    return min(length, float(timeout)) if timeout is not None else length
