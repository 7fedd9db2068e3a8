"""The flows the engine benchmark runs: a definition, trivial activities and inputs for each.

The activities do no work and touch nothing outside the process, so what is measured is
the engine: deciding, writing events, leasing tasks and waking waiters.
"""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from cairn import activities
from cairn.core import model
from cairn.definitions import loader
from cairn.jsontypes import JSON

ROOT = pathlib.Path(__file__).resolve().parents[1]
ORDER_V1 = ROOT / "definitions" / "order" / "v1.yaml"
CHOICE_STATES = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """A workflow to benchmark: what to deploy, the handlers it needs, and fresh inputs."""

    label: str
    document: loader.Document
    registry: activities.Registry
    queues: tuple[str, ...]
    inputs: Callable[[], Iterator[JSON]]


def _result(**fields: str) -> activities.Handler:
    def handler(params: JSON, ctx: Any) -> JSON:
        return dict(fields)

    return handler


def order() -> Flow:
    """definitions/order/v1.yaml: ChargeCard → ReserveInventory → ShipPackage → email."""
    registry = activities.Registry()
    registry.register("ChargeCard", _result(charge_id="ch_bench"))
    registry.register("ReserveInventory", _result(reservation_id="res_bench"))
    registry.register("ShipPackage", _result(tracking_number="TRK-BENCH"))
    registry.register("SendConfirmationEmail", _result())
    # Compensations run only when a step fails; registered so the worker could take them.
    registry.register("RefundCard", _result())
    registry.register("ReleaseInventory", _result())
    document = loader.load(ORDER_V1, activities=list(registry))

    def inputs() -> Iterator[JSON]:
        for n in itertools.count():
            yield {
                "order_id": f"order-{n}",
                "email": f"buyer{n}@example.com",
                "card": "4242",
                "total": 42.5,
                "items": [{"sku": "BOOK-1", "qty": 1}, {"sku": "PEN-2", "qty": 3}],
                "address": "1 Bench Street",
            }

    return Flow(
        label="order (4 tasks)",
        document=document,
        registry=registry,
        queues=_queues(document.body),
        inputs=inputs,
    )


def choices(states: int = CHOICE_STATES) -> Flow:
    """A generated chain of Pass and Choice states (no tasks), every one of them visited.

    Pass states record their position; each Choice checks it and goes on, or jumps to the
    last state should the position be wrong (it never is).
    """
    names = [f"Step{n:02d}" for n in range(states)]
    body: dict[str, Any] = {
        "Name": f"bench-choices-{states}",
        "Version": 1,
        "Comment": f"{states} Pass and Choice states in a row, for the engine benchmark.",
        "StartAt": names[0],
        "States": {},
    }
    for n, name in enumerate(names):
        last = n == states - 1
        if n % 2 == 1 and not last:
            body["States"][name] = {
                "Type": "Choice",
                "Choices": [{"Condition": f"position == `{n - 1}`", "Next": names[n + 1]}],
                "Default": names[-1],
            }
        else:
            state: dict[str, Any] = {"Type": "Pass", "Result": n, "ResultPath": "position"}
            state.update({"End": True} if last else {"Next": names[n + 1]})
            body["States"][name] = state
    text = yaml.safe_dump(body, sort_keys=False)
    document = loader.loads(text, f"<bench-choices-{states}>")

    def inputs() -> Iterator[JSON]:
        for n in itertools.count():
            yield {"request": n, "tags": ["bench", "pass", "choice"]}

    return Flow(
        label=f"pass/choice ({states} states)",
        document=document,
        registry=activities.Registry(),
        queues=(model.DEFAULT_QUEUE,),
        inputs=inputs,
    )


def _queues(node: Any) -> tuple[str, ...]:
    """Every TaskQueue a definition names, and the default queue."""
    found = {model.DEFAULT_QUEUE}
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("TaskQueue"), str):
                found.add(item["TaskQueue"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return tuple(sorted(found))
