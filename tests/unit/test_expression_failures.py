"""Expressions that fail on the data fail their state with States.Runtime, never ``decide``.

jmespath lets Python's own errors out where its checks stop, and Python's numbers have no
bound a store shares: each of these once escaped the interpreter and left the execution
RUNNING with its task poisoning every worker that took it.
"""

from __future__ import annotations

from typing import Any

import pytest

from cairn import errors
from cairn.core import names
from cairn.core.expressions import DataError, Expression
from cairn.definitions import loader
from cairn.jsontypes import JSON
from cairn.testing import simulate

BIG = 4294967296  # 2**32: its square is 2**64, beyond 64 bits


def computing(expression: str) -> dict[str, Any]:
    """A definition whose Pass state computes ``expression`` over the input."""
    return {
        "Name": "compute",
        "Version": 1,
        "StartAt": "Compute",
        "States": {"Compute": {"Type": "Pass", "Parameters": {"value.$": expression}, "End": True}},
    }


def choosing(condition: str) -> dict[str, Any]:
    """A definition whose Choice tests ``condition``, with a Catch-all around nothing."""
    return {
        "Name": "choose",
        "Version": 1,
        "StartAt": "Pick",
        "States": {
            "Pick": {
                "Type": "Choice",
                "Choices": [{"Condition": condition, "Next": "Yes"}],
                "Default": "No",
            },
            "Yes": {"Type": "Succeed"},
            "No": {"Type": "Succeed"},
        },
    }


@pytest.mark.parametrize(
    ("expression", "data", "cause"),
    [
        ("multiply(price, qty)", {"price": BIG, "qty": BIG}, "multiply() gives an integer beyond"),
        ("add(a, a)", {"a": 2**63 - 1}, "add() gives an integer beyond 64 bits"),
        ("subtract(a, b)", {"a": -(2**63), "b": 1}, "subtract() gives an integer beyond"),
        ("multiply(a, b)", {"a": 1e308, "b": 10}, "multiply() gives a number beyond the range"),
        ("divide(a, b)", {"a": 1e308, "b": 1e-308}, "divide() gives a number beyond the range"),
        ("divide(a, b)", {"a": 10**300 * 10**10, "b": 1}, "divide() gives a number beyond"),
        ("sum(a)", {"a": [2**63 - 1, 1]}, "sum() gives an integer beyond 64 bits"),
        ("avg(a)", {"a": [1e308, 1e308]}, "avg() gives a number beyond the range"),
        ("ceil(a)", {"a": 1e300}, "ceil() gives an integer beyond 64 bits"),
        ("floor(a)", {"a": -1e300}, "floor() gives an integer beyond 64 bits"),
        ("to_number(a)", {"a": "1e400"}, "to_number() gives a number beyond the range"),
        ("to_number(a)", {"a": "99999999999999999999"}, "to_number() gives an integer beyond"),
        ("merge(defaults, overrides)", {"defaults": {"a": 1}}, "argument 2 is null"),
        ("merge(defaults, overrides)", {"defaults": {}, "overrides": [1]}, "argument 2 is an"),
        ("min_by(xs, &v)", {"xs": [{"v": 1}, {"v": "a"}]}, "'<' not supported"),
        ("max_by(xs, &v)", {"xs": [{"v": 1}, {"v": "a"}]}, "'>' not supported"),
        ("contains(a, b)", {"a": "text", "b": 1}, "TypeError"),
    ],
)
def test_a_function_that_fails_on_the_data_fails_the_state(
    expression: str, data: JSON, cause: str
) -> None:
    run = simulate(computing(expression), data)
    assert (run.status, run.error) == ("FAILED", names.RUNTIME)
    assert (run.cause or "").startswith(f"expression {expression!r} failed: ")
    assert cause in (run.cause or "")


@pytest.mark.parametrize(
    ("condition", "data"),
    [
        ("amount < `10`", {"amount": "5"}),
        ("amount >= limit", {"amount": 5, "limit": "10"}),
        ("multiply(price, qty) > `100`", {"price": BIG, "qty": BIG}),
        ("length(merge(a, b)) > `0`", {"a": {}}),
    ],
)
def test_a_condition_that_fails_on_the_data_fails_the_choice(condition: str, data: JSON) -> None:
    run = simulate(choosing(condition), data)
    assert (run.status, run.error) == ("FAILED", names.RUNTIME)
    assert (run.cause or "").startswith(f"expression {condition!r} failed: ")
    assert run.entered == ["Pick"]


@pytest.mark.parametrize(
    ("expression", "data", "expected"),
    [
        ("multiply(a, b)", {"a": 2**31, "b": 2**31}, 2**62),
        ("add(a, b)", {"a": 2**63 - 2, "b": 1}, 2**63 - 1),
        ("subtract(a, b)", {"a": -(2**63) + 1, "b": 1}, -(2**63)),
        ("multiply(a, b)", {"a": 1.5, "b": 2}, 3.0),
        ("sum(a)", {"a": [1, 2, 3]}, 6),
        ("avg(a)", {"a": []}, None),
        ("ceil(a)", {"a": 1.2}, 2),
        ("abs(a)", {"a": -3}, 3),
        ("to_number(a)", {"a": "12"}, 12),
        ("to_number(a)", {"a": "twelve"}, None),
        ("merge(a, b)", {"a": {"x": 1}, "b": {"y": 2}}, {"x": 1, "y": 2}),
        ("min_by(xs, &v).v", {"xs": [{"v": 2}, {"v": 1}]}, 1),
        ("a < b", {"a": "a", "b": "b"}, True),
    ],
)
def test_functions_within_range_compute_as_before(
    expression: str, data: JSON, expected: JSON
) -> None:
    assert Expression.compile(expression).evaluate(data) == expected


def test_the_cause_names_the_expression_and_the_problem() -> None:
    with pytest.raises(DataError) as raised:
        Expression.compile("a < `1`").evaluate({"a": "x"})
    assert str(raised.value) == (
        "expression 'a < `1`' failed: "
        "TypeError: '<' not supported between instances of 'str' and 'int'"
    )


def test_a_literal_no_store_could_hold_is_refused_by_validate() -> None:
    """Such a literal would only fail once the state that computes with it is stored."""
    text = (
        "Name: t\nVersion: 1\nStartAt: A\nStates:\n"
        "  A:\n    Type: Pass\n    Parameters:\n"
        "      big.$: 'add(n, `18446744073709551616`)'\n"
        "      far.$: '`[1, 1e400]`'\n"
        "      fine.$: 'add(n, `9223372036854775807`)'\n"
        "    End: true\n"
    )
    with pytest.raises(errors.DefinitionError) as caught:
        loader.loads(text, "d.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "d.yaml:8:14: invalid JMESPath expression 'add(n, `18446744073709551616`)': "
        "a literal holds an integer beyond 64 bits (at States.A.Parameters.big.$)",
        "d.yaml:9:14: invalid JMESPath expression '`[1, 1e400]`': "
        "a literal holds a number beyond the range of JSON numbers (at States.A.Parameters.far.$)",
    ]
