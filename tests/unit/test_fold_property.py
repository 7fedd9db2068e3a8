"""Random valid workflows, random outcomes: the history always folds back to the decided state.

Hypothesis builds small definitions (chains and branches of Task, Pass, Choice, Wait,
Parallel, Map and Compensate with Retry and Catch), scripts random activity outcomes
(results, errors, timeouts), signals and a cancel, and drives ``decide`` through them with
an injected clock.  After every decision the invariants the store relies on must hold.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from cairn import testing
from cairn.core import events, evolve
from cairn.core import state as st
from cairn.testing import Outcome

ERRORS = ["E1", "E2"]
ACTIVITIES = ["A", "B", "C"]


class Names:
    """Unique state names across a whole definition, as the format requires."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)

    def __call__(self, kind: str) -> str:
        return f"{kind}{next(self.numbers)}"


def retriers(draw: Any) -> list[dict[str, Any]]:
    rules = []
    for names in draw(
        hs.lists(
            hs.sampled_from([["E1"], ["E2", "E1"], ["States.TaskFailed"], ["States.Timeout"]]),
            max_size=2,
            unique_by=tuple,
        )
    ) + (draw(hs.sampled_from([[], [["States.ALL"]]]))):
        rule: dict[str, Any] = {"ErrorEquals": names}
        rule["MaxAttempts"] = draw(hs.sampled_from([0, 1, 2, 2, 3]))
        if draw(hs.booleans()):
            rule["IntervalSeconds"] = draw(hs.integers(1, 5))
            rule["BackoffRate"] = draw(hs.sampled_from([1, 1.5, 2]))
        if draw(hs.booleans()):
            rule["JitterStrategy"] = "FULL"
        if draw(hs.booleans()):
            rule["MaxDelaySeconds"] = 3
        rules.append(rule)
    return rules


def catchers(draw: Any, later: list[str]) -> list[dict[str, Any]]:
    """Catch rules that only jump forward, so that every run ends."""
    rules = []
    for names in draw(
        hs.lists(hs.sampled_from([["E1"], ["States.Timeout"], ["States.ALL"]]), max_size=2)
    ):
        rule: dict[str, Any] = {"ErrorEquals": names, "Next": draw(hs.sampled_from(later))}
        rule["ResultPath"] = draw(hs.sampled_from(["error", None, "@"]))
        rules.append(rule)
    rules.sort(key=lambda r: r["ErrorEquals"] == ["States.ALL"])
    if [r["ErrorEquals"] for r in rules].count(["States.ALL"]) > 1:
        rules.pop()
    return rules


class Shape:
    """What a generated definition needs from the script to be sure to end."""

    def __init__(self) -> None:
        self.waits_for_signal_alone = False


@hs.composite
def scopes(draw: Any, names: Names, shape: Shape, depth: int) -> dict[str, Any]:
    """A chain of states ending in a terminal one; jumps only go forward (poll loops aside)."""
    kinds = ["Task", "Task", "Task", "Pass", "Wait", "Wait", "Choice", "Poll", "Compensate"]
    if depth < 2:
        kinds += ["Parallel", "Map"]
    size = draw(hs.integers(2, 6) if depth == 0 else hs.integers(1, 3))
    chain = [draw(hs.sampled_from(kinds)) for _ in range(size)]
    planned: list[tuple[str, str]] = []
    for kind in chain:
        planned.append((kind, names(kind)))
        if kind == "Poll":
            planned.append(("PollCheck", names("Check")))
    tail = names("End")
    order = [name for _, name in planned] + [tail]
    states: dict[str, Any] = {}
    for i, (kind, name) in enumerate(planned):
        after = order[i + 1]
        later = order[i + 1 :]
        body: dict[str, Any]
        if kind == "Task":
            body = {"Type": "Task", "Activity": draw(hs.sampled_from(ACTIVITIES))}
            body["ResultPath"] = draw(hs.sampled_from(["r", "r", "x.y", None, "@"]))
            if draw(hs.booleans()):
                body["Parameters"] = {"n.$": "n", "key.$": "$$.Task.IdempotencyKey"}
            if draw(hs.booleans()):
                body["Compensate"] = {"Activity": "Undo", "Parameters": {"r.$": "result"}}
            body["Retry"] = retriers(draw)
            body["Catch"] = catchers(draw, later)
        elif kind == "Poll":
            body = {"Type": "Task", "Activity": "Poll", "ResultPath": "poll"}
        elif kind == "PollCheck":
            poll = order[i - 1]
            body = {
                "Type": "Choice",
                "Choices": [{"Condition": "poll.done", "Next": order[i + 1]}],
                "Default": poll,
            }
        elif kind == "Pass":
            body = {"Type": "Pass"}
            if draw(hs.booleans()):
                body["Result"] = draw(hs.sampled_from([{"p": 1}, [1, 2], "text", None]))
            body["ResultPath"] = draw(hs.sampled_from(["p", None, "@"]))
        elif kind == "Wait":
            body = {"Type": "Wait"}
            forms = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath", "Signal", "Both"]
            form = draw(hs.sampled_from([*forms, "Both"]))
            if form in ("Seconds", "Both"):
                body["Seconds"] = draw(hs.integers(0, 100))
            elif form == "SecondsPath":
                body["SecondsPath"] = "n"
            elif form == "Timestamp":
                body["Timestamp"] = "2026-01-01T00:01:00Z"
            elif form == "TimestampPath":
                body["TimestampPath"] = "at"
            if form in ("Signal", "Both"):
                body["Signal"] = draw(hs.sampled_from(["go", "stop"]))
                body["ResultPath"] = "sig"
                shape.waits_for_signal_alone |= form == "Signal"
        elif kind == "Choice":
            body = {
                "Type": "Choice",
                "Choices": [
                    {
                        "Condition": draw(
                            hs.sampled_from(["n > `1`", "r.v", "`false`", "length(items) > `1`"])
                        ),
                        "Next": draw(hs.sampled_from(later)),
                    }
                ],
            }
            if draw(hs.booleans()):
                body["Default"] = after
            else:
                body["Choices"].append({"Condition": "`true`", "Next": after})
        elif kind == "Compensate":
            body = {"Type": "Compensate"}
        elif kind == "Parallel":
            branches = draw(hs.lists(scopes(names, shape, depth + 1), min_size=1, max_size=3))
            body = {"Type": "Parallel", "Branches": branches}
            body["ResultPath"] = draw(hs.sampled_from(["par", None, "@"]))
            body["Retry"] = retriers(draw)
            body["Catch"] = catchers(draw, later)
        else:
            body = {
                "Type": "Map",
                "ItemProcessor": draw(scopes(names, shape, depth + 1)),
                "ItemsPath": "items",
                "MaxConcurrency": draw(hs.integers(0, 2)),
            }
            if draw(hs.booleans()):
                body["ItemSelector"] = {"i.$": "$$.Map.Item.Index", "n.$": "$$.Map.Item.Value"}
            body["ResultPath"] = draw(hs.sampled_from(["map", None]))
            body["Retry"] = retriers(draw)
            body["Catch"] = catchers(draw, later)
        for field in ("Retry", "Catch"):
            if not body.get(field, True):
                del body[field]
        if body["Type"] != "Choice":
            body["Next"] = after
        states[name] = body
    states[tail] = draw(
        hs.sampled_from(
            [
                {"Type": "Succeed"},
                {"Type": "Pass", "End": True},
                {"Type": "Pass", "End": True},
                {"Type": "Fail", "Error": "Failed", "Cause": "by design"},
            ]
        )
    )
    return {"StartAt": order[0], "States": states}


OUTCOMES = hs.builds(
    lambda kind, value, error, after: {
        "result": Outcome.succeed(value, after=after),
        "error": Outcome.fail(error, "bad luck", after=after),
        "fatal": Outcome.fail(error, "no retry", retryable=False, after=after),
        "timeout": Outcome.time_out(after=after),
        "heartbeat": Outcome.time_out("States.HeartbeatTimeout", after=after),
    }[kind],
    hs.sampled_from(["result", "result", "result", "error", "fatal", "timeout", "heartbeat"]),
    hs.sampled_from([{"v": 1}, {"v": 0}, 7, None, [1]]),
    hs.sampled_from(ERRORS),
    hs.integers(0, 40),
)


@hs.composite
def scenarios(draw: Any) -> dict[str, Any]:
    shape = Shape()
    scope = draw(scopes(Names(), shape, 0))
    body: dict[str, Any] = {"Name": "generated", "Version": 1, **scope}
    if shape.waits_for_signal_alone or draw(hs.booleans()):
        body["TimeoutSeconds"] = draw(hs.sampled_from([30, 300, 3000]))
    script: dict[str, Any] = {
        name: draw(hs.lists(OUTCOMES, min_size=1, max_size=4)) for name in [*ACTIVITIES, "Undo"]
    }
    # A poll answers "done" from its second entry on, so its loop always ends.
    script["Poll"] = lambda task: Outcome.succeed({"done": int(task.key.rsplit(":", 1)[1]) >= 2})
    return {
        "definition": body,
        "input": {
            "n": draw(hs.integers(0, 3)),
            "items": draw(hs.lists(hs.integers(0, 9), max_size=3)),
            "at": "2026-01-01T00:00:30Z",
        },
        "outcomes": script,
        "signals": [
            testing.Signal(at=at, name=name)
            for at, name in draw(
                hs.lists(hs.tuples(hs.integers(0, 80), hs.sampled_from(["go", "stop"])), max_size=5)
            )
        ],
        "cancel_at": draw(hs.sampled_from([None] * 6 + [0, 10, 100])),
    }


def check_structure(state: st.Execution) -> None:
    """Every open task and timer belongs to a frame that points back at it."""
    if state.closed:
        assert (state.frames, state.tasks, state.timers) == ({}, {}, {})
        return
    for task in state.tasks.values():
        assert state.frames[task.scope].task == task.id
    for timer in state.timers.values():
        if timer.purpose != "execution":
            assert state.frames[timer.scope].timer == timer.id
    for scope in state.frames:
        if scope:
            parent, _ = st.parent_of(scope)
            assert parent in state.frames, f"{scope} is open but its Parallel/Map is not"


# On a failure, Hypothesis imports libcst to suggest a patch, and libcst's import of
# mypy_extensions.TypedDict warns; under filterwarnings=error that hid the falsifying example
# behind an INTERNALERROR.
@pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning")
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_decision_is_the_fold_of_the_history(scenario: dict[str, Any]) -> None:
    run = testing.simulate(max_steps=3000, **scenario)
    history = run.history

    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    assert run.state.closed, f"the run did not end: {run.state.status}"

    seen = 0
    before = st.initial_state()
    for step in run.steps:
        seen += len(step.decision.events)
        decided = st.to_json(step.decision.state)
        assert st.to_json(evolve.fold(history[:seen])) == decided
        assert st.to_json(st.from_json(decided)) == decided
        assert st.to_json(st.from_json(json.loads(json.dumps(decided)))) == decided
        after = step.decision.state
        work = testing.changes(before, after)
        assert set(after.tasks) == (set(before.tasks) - set(work.dropped_tasks)) | {
            t.id for t in work.new_tasks
        }
        assert set(after.timers) == (set(before.timers) - set(work.dropped_timers)) | {
            t.id for t in work.new_timers
        }
        check_structure(after)
        before = after

    for event in history:  # as the store writes and reads it back
        stored = json.loads(json.dumps(event.details))
        assert events.read(event.type, stored) == event.payload
        assert event.details == stored

    scheduled = [e.details["task_id"] for e in run.of_type(events.TASK_SCHEDULED)]
    assert len(scheduled) == len(set(scheduled))
    succeeded_at = {e.details["task_id"]: e.seq for e in run.of_type(events.TASK_SUCCEEDED)}
    for event in run.of_type(events.TASK_SCHEDULED, events.TASK_STARTED):
        done = succeeded_at.get(event.details["task_id"])
        assert done is None or event.seq < done
