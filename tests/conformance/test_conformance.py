"""Run the conformance cases in ``cases/*.yaml`` through the pure engine.

A case is ``{name, definition, input, outcomes, signals, cancel_at, expected, states}``:
``definition`` is a definition document (``Name`` and ``Version`` may be left out) or
``{file: PATH}`` from the repository root; ``outcomes`` maps activity names to an outcome, a
list of outcomes by attempt, or ``{calls: [...]}`` by call (see ``cairn.testing``, ``Script``
and ``Outcome.parse``); ``expected`` holds the
``status`` and the ``output`` or ``error`` (and optionally ``cause`` and ``tasks``, the
scheduled tasks as ``Activity#attempt``); ``states`` lists the states entered, in order.

``CAIRN_CASE=name pytest tests/conformance`` runs one case.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from cairn import testing
from cairn.core import events, evolve
from cairn.core import state as st

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "cases"


def load_cases() -> list[dict[str, Any]]:
    found = []
    for path in sorted(CASES.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            found.append({**case, "source": path.name})
    return found


ALL_CASES = load_cases()
ONLY = os.environ.get("CAIRN_CASE")
SELECTED = [c for c in ALL_CASES if not ONLY or c["name"] == ONLY]


def definition_of(case: dict[str, Any]) -> dict[str, Any]:
    body = case["definition"]
    if "file" in body:
        loaded: dict[str, Any] = yaml.safe_load((ROOT / body["file"]).read_text(encoding="utf-8"))
        return loaded
    return {"Name": "conformance", "Version": 1, **body}


def test_cases_are_named_uniquely_and_the_selection_is_not_empty() -> None:
    names = [c["name"] for c in ALL_CASES]
    assert len(names) == len(set(names)), "two cases share a name"
    assert SELECTED, f"no case named {ONLY!r}"


@pytest.mark.parametrize("case", SELECTED, ids=[c["name"] for c in SELECTED])
def test_case(case: dict[str, Any]) -> None:
    run = testing.simulate(
        definition_of(case),
        case.get("input"),
        case.get("outcomes", {}),
        signals=case.get("signals", ()),
        cancel_at=case.get("cancel_at"),
    )
    expected = case["expected"]

    assert run.status == expected["status"], f"{run.error}: {run.cause}"
    if "output" in expected:
        assert run.output == expected["output"]
    if "error" in expected:
        assert run.error == expected["error"]
    if "cause" in expected:
        assert run.cause == expected["cause"]
    if "tasks" in expected:
        scheduled = run.of_type(events.TASK_SCHEDULED)
        assert [f"{e.details['activity']}#{e.details['attempt']}" for e in scheduled] == expected[
            "tasks"
        ]
    assert run.entered == case["states"]
    assert st.to_json(evolve.fold(run.history)) == st.to_json(run.state)
