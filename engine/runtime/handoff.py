"""Hand-offs inside one process: tasks to idle worker slots, news to waiting threads.

A transaction that creates a task an idle slot of this process can run leases it to that
slot and hands it over after the commit: no polling delay, no claim transaction.  Threads
that wait for something (an execution to close, work to claim) are woken by a notifier
rather than by reading the database again and again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from cairn.core import state as st
from cairn.runtime import leasing


@dataclass(slots=True)
class Notifier:
    """Wakes waiters of this process at once; other processes find out by reading."""

    condition: threading.Condition = field(default_factory=threading.Condition)
    generation: int = 0

    def notify(self) -> None:
        with self.condition:
            self.generation += 1
            self.condition.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self.condition:
            if self.generation == seen:
                self.condition.wait(timeout)
            return self.generation


class Parked:
    """An idle worker slot of this process, waiting to be handed a task directly.

    A transaction that creates a task this slot can run leases it to the slot on the spot
    and hands it over after the commit: no polling delay, no claim transaction.
    """

    def __init__(self, offer: leasing.Offer) -> None:
        self.offer = offer
        self.claim: leasing.Claim | None = None
        self._done = threading.Event()

    def deliver(self, claim: leasing.Claim | None) -> None:
        self.claim = claim
        self._done.set()

    def wait(self, timeout: float | None) -> bool:
        return self._done.wait(timeout)


class Slots:
    """The parked slots of this process, and the workers that stopped parking them."""

    def __init__(self) -> None:
        self.parked: list[Parked] = []
        self._lock = threading.Lock()
        self._leaving: set[str] = set()
        """Workers that stopped: their slots park no more."""

    def park(
        self, offer: leasing.Offer, on_parked: Callable[[], None] | None = None
    ) -> leasing.Claim | None:
        """Wait, idle, until handed a task: one created in this process, or one that a claim
        for idle slots (``idle``) took.  None when the worker stops."""
        slot = Parked(offer)
        with self._lock:
            if offer.worker in self._leaving:
                return None
            self.parked.append(slot)
        if on_parked is not None:
            on_parked()
        slot.wait(None)
        return slot.claim

    def idle(self, worker: str) -> list[Parked]:
        """Take ``worker``'s idle slots out of the hand-off pool, to claim tasks for them.

        Deliver a claim to each, or give the rest back with ``put_back``.
        """
        with self._lock:
            mine = [p for p in self.parked if p.offer.worker == worker]
            if mine:
                self.parked = [p for p in self.parked if p.offer.worker != worker]
        return mine

    def put_back(self, slots: Collection[Parked]) -> None:
        """Slots taken by ``idle`` that got nothing wait again (or end, when stopping)."""
        with self._lock:
            leaving = [p for p in slots if p.offer.worker in self._leaving]
            self.parked.extend(p for p in slots if p.offer.worker not in self._leaving)
        for slot in leaving:
            slot.deliver(None)

    def unpark(self, worker: str) -> None:
        """A stopping worker's idle slots take nothing more."""
        with self._lock:
            self._leaving.add(worker)
            leaving = [p for p in self.parked if p.offer.worker == worker]
            self.parked = [p for p in self.parked if p.offer.worker != worker]
        for slot in leaving:
            slot.deliver(None)

    def take(self, task: st.Task) -> Parked | None:
        """A parked slot that can run ``task``, out of the pool; None if there is none."""
        with self._lock:
            for slot in self.parked:
                if task.queue in slot.offer.queues and task.activity in slot.offer.activities:
                    self.parked.remove(slot)
                    return slot
        return None
