"""Fuzzing the interpreter end to end in memory: whatever a definition, an input or an
activity does, an execution ends cleanly, and its history is the proof of how.

Hypothesis writes definitions from a small grammar of states (Pass, Choice, Wait, Task with
Retry and Catch, Parallel, Map, Succeed, Fail) wired at random, Choice rules and Catch
targets jumping back as well as forward, with JMESPath expressions of a few shapes over
fields the input may or may not have; only what the loader accepts is run.  Inputs are any
JSON the door takes (numbers at the 64-bit and float edges, nesting near the depth limit,
text with odd characters).  Activities are real handlers run through the worker's own
``invoke``: they return any JSON, raise ``ActivityError`` or any exception (``SystemExit``
and ``KeyboardInterrupt`` included), return what is not JSON, or time out.

``cairn.testing.simulate`` drives each execution to its end, and then: no exception left
``decide``, the execution closed (SUCCEEDED, FAILED or TIMED_OUT) within a bounded number
of commands, the fold of its history is its final state, and every failure recorded names
an error and gives a cause.

The suite runs a few dozen cases, in a few seconds; ``CAIRN_FUZZ_EXAMPLES=100000`` runs more,
by hand.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as hs

from cairn import errors, testing
from cairn.core import events, evolve, names
from cairn.core import state as st
from cairn.core.expressions import Expression
from cairn.definitions import loader
from cairn.runtime import payloads
from cairn.testing import Outcome
from tests.unit.fuzz_activities import NOT_JSON, RAISED, Behaviour, nest

EXAMPLES = int(os.environ.get("CAIRN_FUZZ_EXAMPLES", "75"))
"""Cases per run: small in the suite, raised by hand (``CAIRN_FUZZ_EXAMPLES``)."""

HISTORY_LIMIT = 2_000
"""A run's event limit here: a loop that never ends reaches it in a few hundred commands."""

MAX_COMMANDS = HISTORY_LIMIT + 1
"""Every command the driver applies records at least one event, so a run that respects the
history limit closes within this many."""

CLOSED = ("SUCCEEDED", "FAILED", "TIMED_OUT")
FAILURES = frozenset(
    {
        events.TASK_FAILED,
        events.TASK_TIMED_OUT,
        events.RETRY_SCHEDULED,
        events.BRANCH_FAILED,
        events.EXECUTION_FAILED,
        events.EXECUTION_TIMED_OUT,
    }
)
"""The events that record a failure: each names its error and gives its cause."""
ACTIVITIES = ("A", "B", "C")
FIELDS = ("a", "b", "n", "s", "items", "obj")
"""The input fields expressions read; an input may hold any of them, of any type, or none."""

# -- inputs and values ------------------------------------------------------------------------
ODD_TEXT = hs.sampled_from(
    [
        *("", "'", '"', "\\", "`", "$$.x", "a.b", "\u2028", "\ufeff", "\u202e", "\U0001f600"),
        *("é", "\\u0000", "%s{}", "NaN", "9" * 40, "2026-01-01T00:00:00Z", "x" * 300),
    ]
)
TEXT = hs.text(hs.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)
NUMBERS = hs.one_of(
    hs.integers(-(2**63), 2**63 - 1),
    hs.sampled_from([2**63 - 1, -(2**63), 2**32, 2**53 + 1, 0, -1, 1, 2, 3]),
    hs.floats(allow_nan=False, allow_infinity=False),
    hs.sampled_from([1e308, -1e308, 5e-324, -0.0, 0.5, 1.5]),
)
SCALARS = hs.one_of(hs.none(), hs.booleans(), NUMBERS, TEXT, ODD_TEXT)
KEYS = hs.sampled_from([*FIELDS, "x", "y", "Error", "odd key"]) | TEXT
VALUES = hs.recursive(
    SCALARS,
    lambda inner: hs.lists(inner, max_size=4) | hs.dictionaries(KEYS, inner, max_size=4),
    max_leaves=10,
)


DEEP = hs.builds(nest, SCALARS, hs.integers(1, payloads.DEPTH - 1), hs.booleans())
ITEMS = hs.lists(
    hs.fixed_dictionaries({}, optional={"x": VALUES, "y": VALUES}) | VALUES, max_size=4
)
# Mostly objects with a list of items, which Map states iterate; now and then anything.
INPUTS = hs.one_of(
    hs.fixed_dictionaries({"items": ITEMS, "n": NUMBERS}, optional={"a": VALUES, "b": VALUES}),
    hs.fixed_dictionaries({"items": ITEMS}, optional=dict.fromkeys(FIELDS[:-2], VALUES)),
    hs.fixed_dictionaries({}, optional={**dict.fromkeys(FIELDS, VALUES), "items": ITEMS}),
    VALUES,
    DEEP,
)

# -- expressions ------------------------------------------------------------------------------
PATHS = [*FIELDS, "obj.a", "items[0]", "items[-1].x", "missing.deeper", "r", "r.x", '"odd key"']
SHAPES = [
    "{x}",
    "{x}.{y}",
    "{x}[0]",
    "{x}[*].{y}",
    "{x}[?{y}]",
    "{x}[1:3]",
    "{x}[]",
    "{x}.*",
    "length({x})",
    "{x} > {y}",
    "{x} < `1`",
    "{x} == {y}",
    "{x} != 'text'",
    "!{x}",
    "{x} && {y}",
    "{x} || {y}",
    "add({x}, {y})",
    "subtract({x}, `1`)",
    "multiply({x}, {y})",
    "multiply({x}, `4294967296`)",
    "add({x}, `9223372036854775807`)",
    "divide({x}, {y})",
    "mod({x}, {y})",
    "merge({x}, {y})",
    "max_by({x}, &{y})",
    "min_by({x}, &{y})",
    "sort_by({x}, &{y})",
    "sort({x})",
    "sum({x})",
    "avg({x})",
    "max({x})",
    "abs({x})",
    "ceil({x})",
    "to_number({x})",
    "to_string({x})",
    "keys({x})",
    "values({x})",
    "join(', ', {x})",
    "contains({x}, {y})",
    "starts_with({x}, {y})",
    "reverse({x})",
    "type({x})",
    "not_null({x}, {y})",
    "map(&{y}, {x})",
    "{{k: {x}, v: {y}}}",
    "[{x}, {y}]",
    "`1e308`",
    "@",
    "$$.Execution.Input.{x}",
    "$$.State.Name",
    "$$.State.RetryCount",
]


def compiles(source: str) -> bool:
    """Whether a shape filled with these paths is an expression (a definition would refuse
    it, and the case would be thrown away)."""
    try:
        Expression.compile(source)
    except Exception:
        return False
    return True


# Half are plain paths, which never fail (a missing field reads as null), so that runs get
# past their first states as often as they fail on the data.
EXPRESSIONS = hs.sampled_from(PATHS) | hs.builds(
    str.format, hs.sampled_from(SHAPES), x=hs.sampled_from(PATHS), y=hs.sampled_from(PATHS)
).filter(compiles)
RESULT_PATHS = hs.sampled_from(["r", "r", "obj.r", "a", "@", None])


@hs.composite
def templates(draw: Any, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """A payload template: computed fields, literal fields and a nested template."""
    body: dict[str, Any] = {}
    for key in draw(hs.lists(hs.sampled_from(["k", "v", "w"]), min_size=1, max_size=3)):
        body[f"{key}.$"] = draw(EXPRESSIONS | hs.sampled_from(extra) if extra else EXPRESSIONS)
    if draw(hs.booleans()):
        body["lit"] = draw(VALUES)
    if draw(hs.booleans()):
        body["inner"] = {"m.$": draw(EXPRESSIONS), "z": draw(SCALARS)}
    return body


# -- definitions ------------------------------------------------------------------------------
ERROR_NAMES = hs.sampled_from(
    [
        ["E1"],
        ["ValueError", "E1"],
        [names.TASK_FAILED],
        [names.TIMEOUT],
        [names.HEARTBEAT_TIMEOUT],
        [names.DATA_LIMIT_EXCEEDED],
        [names.NO_CHOICE_MATCHED],
        ["E2", names.TASK_FAILED],
    ]
)


class Names:
    """State names unique across the whole definition, as the format requires."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)

    def __call__(self, kind: str) -> str:
        return f"{kind}{next(self.numbers)}"


def retriers(draw: Any) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    lists = draw(hs.lists(ERROR_NAMES, max_size=2)) + draw(hs.sampled_from([[], [[names.ALL]]]))
    for errors_equal in lists:
        rule: dict[str, Any] = {"ErrorEquals": errors_equal}
        rule["MaxAttempts"] = draw(hs.integers(0, 3))
        if draw(hs.booleans()):
            rule["IntervalSeconds"] = draw(hs.integers(1, 3))
            rule["BackoffRate"] = draw(hs.sampled_from([1, 1.5, 2.0, 3]))
        if draw(hs.booleans()):
            rule["MaxDelaySeconds"] = draw(hs.integers(1, 5))
        if draw(hs.booleans()):
            rule["JitterStrategy"] = "FULL"
        rules.append(rule)
    return rules


def catchers(draw: Any, targets: list[str]) -> list[dict[str, Any]]:
    lists = draw(hs.lists(ERROR_NAMES, max_size=2)) + draw(hs.sampled_from([[], [[names.ALL]]]))
    return [
        {
            "ErrorEquals": errors_equal,
            "Next": draw(hs.sampled_from(targets)),
            "ResultPath": draw(hs.sampled_from(["err", None, "@"])),
        }
        for errors_equal in lists
    ]


def paths(draw: Any, body: dict[str, Any], *fields: str) -> None:
    """Now and then an input or output path over the data."""
    for name in fields:
        if draw(hs.integers(0, 5)) == 0:
            body[name] = draw(EXPRESSIONS)


@hs.composite
def scopes(draw: Any, names_: Names, depth: int) -> dict[str, Any]:
    """A chain of states, each going on to the next; Choice rules and Catch may jump to any
    state of the scope, back as well as forward, or to a Fail state of its own."""
    kinds = ["Task", "Task", "Pass", "Choice", "Wait"] + (["Parallel", "Map"] if depth < 2 else [])
    chain = [(kind, names_(kind)) for kind in draw(hs.lists(hs.sampled_from(kinds), max_size=5))]
    tail = draw(hs.sampled_from(["Succeed", "Fail", "Pass", "Task"]))
    order = [name for _, name in chain] + [names_(tail)]
    bail = names_("Bail")
    targets = [*order, bail]
    states: dict[str, Any] = {}
    for i, (kind, name) in enumerate([*chain, (tail, order[-1])]):
        after = order[i + 1] if i + 1 < len(order) else None
        body = draw(state_bodies(kind, names_, depth, targets))
        if kind not in ("Succeed", "Fail", "Choice"):
            if after is None:
                body["End"] = True
            else:
                body["Next"] = after
        elif kind == "Choice" and after is not None and draw(hs.integers(0, 3)) > 0:
            body["Default"] = after
        elif kind == "Choice":
            # Without a Default the last rule is the way on; sometimes none matches.
            body["Choices"].append({"Condition": draw(EXPRESSIONS), "Next": order[-1]})
        states[name] = body
    if bail in str(states):
        states[bail] = draw(state_bodies("Fail", names_, depth, targets))
    return {"StartAt": order[0], "States": states}


@hs.composite
def state_bodies(draw: Any, kind: str, names_: Names, depth: int, targets: list[str]) -> Any:
    body: dict[str, Any] = {"Type": kind}
    if kind == "Pass":
        if draw(hs.booleans()):
            body["Result"] = draw(VALUES)
        elif draw(hs.booleans()):
            body["Parameters"] = draw(templates())
        body["ResultPath"] = draw(RESULT_PATHS)
        paths(draw, body, "InputPath", "OutputPath")
    elif kind == "Choice":
        rules = draw(hs.lists(hs.tuples(EXPRESSIONS, hs.sampled_from(targets)), max_size=3))
        body["Choices"] = [{"Condition": c, "Next": n} for c, n in rules]
        paths(draw, body, "InputPath", "OutputPath")
    elif kind == "Wait":
        form = draw(hs.sampled_from(["Seconds"] * 6 + ["SecondsPath", "TimestampPath"]))
        body[form] = draw(hs.integers(0, 5)) if form == "Seconds" else draw(EXPRESSIONS)
        paths(draw, body, "InputPath", "OutputPath")
    elif kind == "Task":
        body["Activity"] = draw(hs.sampled_from(ACTIVITIES))
        if draw(hs.booleans()):
            body["Parameters"] = draw(templates(("$$.Task.IdempotencyKey",)))
        if draw(hs.integers(0, 3)) == 0:
            body["ResultSelector"] = draw(templates())
        if draw(hs.booleans()):
            body["TimeoutSeconds"] = draw(hs.integers(1, 60))
        body["ResultPath"] = draw(RESULT_PATHS)
        body["Retry"] = retriers(draw)
        body["Catch"] = catchers(draw, targets)
        paths(draw, body, "InputPath", "OutputPath")
    elif kind == "Parallel":
        body["Branches"] = draw(hs.lists(scopes(names_, depth + 1), min_size=1, max_size=3))
        body["ResultPath"] = draw(RESULT_PATHS)
        body["Retry"] = retriers(draw)
        body["Catch"] = catchers(draw, targets)
    elif kind == "Map":
        body["ItemProcessor"] = draw(scopes(names_, depth + 1))
        body["ItemsPath"] = draw(hs.sampled_from(["items"] * 8 + ["a", "obj"]) | EXPRESSIONS)
        body["MaxConcurrency"] = draw(hs.integers(0, 3))
        if draw(hs.booleans()):
            body["ItemSelector"] = {
                "value.$": "$$.Map.Item.Value",
                "index.$": "$$.Map.Item.Index",
                "n.$": draw(EXPRESSIONS),
            }
        body["ResultPath"] = draw(RESULT_PATHS)
        body["Retry"] = retriers(draw)
        body["Catch"] = catchers(draw, targets)
    elif kind == "Fail":
        if draw(hs.booleans()):
            body["Error"] = draw(hs.sampled_from(["Failed", "E1", "Custom.Error"]))
        else:
            body["ErrorPath"] = draw(EXPRESSIONS)
        if draw(hs.booleans()):
            body["Cause"] = "by design"
        else:
            body["CausePath"] = draw(EXPRESSIONS)
    else:
        paths(draw, body, "InputPath", "OutputPath")
    for name in ("Retry", "Catch"):
        if body.get(name) == []:
            del body[name]
    return body


# -- activities: what each attempt does (tests/unit/fuzz_activities.py) ----------------------
AFTER = hs.integers(0, 5)
BEHAVIOURS = hs.one_of(
    hs.builds(Behaviour, hs.just("return"), VALUES, after=AFTER),
    hs.builds(Behaviour, hs.just("echo"), after=AFTER),
    hs.builds(
        Behaviour,
        hs.just("activity_error"),
        hs.sampled_from(
            ["E1", "E2", "ValueError", names.TASK_FAILED, names.TIMEOUT, "Odd.Name", "", "A\x00B"]
        ),
        hs.booleans(),
        AFTER,
    ),
    hs.builds(Behaviour, hs.just("raise"), hs.sampled_from(sorted(RAISED)), after=AFTER),
    hs.builds(Behaviour, hs.just("not_json"), hs.sampled_from(sorted(NOT_JSON)), after=AFTER),
    hs.builds(
        Behaviour,
        hs.just("timeout"),
        hs.sampled_from([names.TIMEOUT, names.HEARTBEAT_TIMEOUT]),
        after=AFTER,
    ),
)


# -- the test ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Case:
    """An accepted definition, an input the door takes, and what each activity does."""

    definition: dict[str, Any]
    input: Any
    behaviours: dict[str, list[Behaviour]]

    def outcome(self, task: st.Task) -> Outcome:
        """Attempt ``n`` of an activity does its ``n``-th behaviour; the last repeats."""
        plan = self.behaviours[task.activity]
        return plan[min(task.attempt, len(plan)) - 1].outcome(task)


@hs.composite
def cases(draw: Any) -> Case:
    body: dict[str, Any] = {"Name": "fuzzed", "Version": 1, **draw(scopes(Names(), 0))}
    if draw(hs.booleans()):
        body["TimeoutSeconds"] = draw(hs.integers(1, 120))
    try:
        loader.validate(body)
    except errors.DefinitionError:
        reject()
    try:
        value = payloads.plain(draw(INPUTS), "the input")
    except errors.InvalidInput:
        reject()
    plans = {name: draw(hs.lists(BEHAVIOURS, min_size=1, max_size=4)) for name in ACTIVITIES}
    return Case(definition=body, input=value, behaviours=plans)


@pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
@given(cases())
def test_every_accepted_definition_runs_to_a_clean_end(case: Case) -> None:
    run = testing.simulate(
        case.definition,
        case.input,
        case.outcome,
        max_steps=MAX_COMMANDS,
        history_limit=HISTORY_LIMIT,
    )

    assert run.status in CLOSED, f"the execution stopped {run.status} with nothing left to do"
    assert st.to_json(evolve.fold(run.history)) == st.to_json(run.state)
    for recorded in run.history:
        error = getattr(recorded.payload, "error", None)
        if error is not None or recorded.type in FAILURES:
            assert isinstance(error, str) and error, f"no error name: {recorded}"
        if recorded.type in FAILURES:
            assert isinstance(getattr(recorded.payload, "cause", None), str), (
                f"no cause: {recorded}"
            )
    if run.status != "SUCCEEDED":
        assert run.error and run.cause is not None, (run.error, run.cause)
    # What the cases reached, for --hypothesis-show-statistics.
    hypothesis.event(f"{run.status} {run.error or ''}".strip())
