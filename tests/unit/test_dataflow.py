"""Data flow: where results go (``place``), and the path and template functions around it."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from cairn.core import dataflow, model
from cairn.core.expressions import DataError, Expression, Template, truthy
from cairn.jsontypes import JSON
from cairn.testing import as_object

CONTEXT: dict[str, JSON] = {
    "Execution": {"Id": "exec-1", "Input": {"first": True}},
    "State": {"Name": "S", "RetryCount": 2},
    "Task": {"IdempotencyKey": "exec-1:S:1"},
}


def state(**fields: Any) -> model.State:
    """The model of a Pass state with these ASL fields."""
    built = model.build(
        {"Name": "t", "Version": 1, "StartAt": "S", "States": {"S": {"Type": "Pass", **fields}}}
    )
    return built.states["S"]


# -- place -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "value", "expected"),
    [
        ({"a": 1}, None, 9, {"a": 1}),
        ({"a": 1}, (), 9, 9),
        ("not an object", (), 9, 9),
        ("not an object", None, 9, "not an object"),
        ({"a": 1}, ("b",), 9, {"a": 1, "b": 9}),
        ({"a": 1}, ("a",), 9, {"a": 9}),
        ({"a": 1}, ("b", "c", "d"), 9, {"a": 1, "b": {"c": {"d": 9}}}),
        ({"a": {"x": 1}}, ("a", "y"), 9, {"a": {"x": 1, "y": 9}}),
        ({"a": None}, ("a", "y"), 9, {"a": {"y": 9}}),
        ({"a": {"b": {"c": 1}}}, ("a", "b", "c"), None, {"a": {"b": {"c": None}}}),
        ({}, ("a",), {"deep": [1]}, {"a": {"deep": [1]}}),
    ],
)
def test_place_puts_the_value_at_the_path(
    data: Any, path: model.ResultPath, value: Any, expected: Any
) -> None:
    assert dataflow.place(data, path, value) == expected


def test_place_never_changes_its_input() -> None:
    inner: dict[str, JSON] = {"x": 1, "keep": [1, 2]}
    data: dict[str, JSON] = {"a": inner, "b": 2}
    before = copy.deepcopy(data)

    placed = dataflow.place(data, ("a", "y"), 3)

    assert data == before
    assert isinstance(placed, dict)
    placed_inner = placed["a"]
    assert isinstance(placed_inner, dict)
    assert placed_inner is not inner
    assert placed_inner["keep"] is inner["keep"]  # untouched branches are shared, not copied


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ([1, 2], ("a",), "ResultPath 'a' needs an object input, got an array"),
        ("s", ("a",), "needs an object input, got a string"),
        (None, ("a",), "needs an object input, got null"),
        (3, ("a", "b"), "needs an object input, got a number"),
        (True, ("a",), "got a boolean"),
        ({"a": 5}, ("a", "b"), "ResultPath 'a.b': 'a' is a number"),
        ({"a": {"b": "s"}}, ("a", "b", "c"), "ResultPath 'a.b.c': 'a.b' is a string"),
        ({"a": [1]}, ("a", "b"), "'a' is an array"),
        ({"a": False}, ("a", "b"), "'a' is a boolean"),
    ],
)
def test_place_into_something_that_is_not_an_object_is_a_data_error(
    data: Any, path: tuple[str, ...], message: str
) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        dataflow.place(data, path, 1)


# -- input and output paths --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"a": {"b": 1}, "l": [1, 2]}),
        ({"InputPath": "a"}, {"b": 1}),
        ({"InputPath": "a.b"}, 1),
        ({"InputPath": "missing"}, None),
        ({"InputPath": "l[-1]"}, 2),
        ({"InputPath": "{x: a.b, n: length(l)}"}, {"x": 1, "n": 2}),
        ({"InputPath": None}, {}),
        ({"InputPath": "$$.State.Name"}, "S"),
        ({"InputPath": "$$.Execution.Input"}, {"first": True}),
    ],
)
def test_select_input(fields: dict[str, Any], expected: Any) -> None:
    data: JSON = {"a": {"b": 1}, "l": [1, 2]}

    assert dataflow.select_input(state(**fields), data, CONTEXT) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"a": 1}),
        ({"OutputPath": "a"}, 1),
        ({"OutputPath": None}, {}),
        ({"OutputPath": "$$.Task.IdempotencyKey"}, "exec-1:S:1"),
    ],
)
def test_filter_output(fields: dict[str, Any], expected: Any) -> None:
    assert dataflow.filter_output(state(**fields), {"a": 1}, CONTEXT) == expected


def test_effective_input_applies_input_path_then_parameters() -> None:
    s = state(
        InputPath="order",
        Parameters={
            "id.$": "id",
            "key.$": "$$.Task.IdempotencyKey",
            "retries.$": "$$.State.RetryCount",
            "fixed": {"n": 1, "deeper.$": "lines[0]"},
            "list": [{"first.$": "lines[0]"}, "plain", 3],
            "untouched": ["a.$", {"b": 2}],
        },
    )

    got = dataflow.effective_input(s, {"order": {"id": "o1", "lines": ["l1"]}}, CONTEXT)

    assert got == {
        "id": "o1",
        "key": "exec-1:S:1",
        "retries": 2,
        "fixed": {"n": 1, "deeper": "l1"},
        "list": [{"first": "l1"}, "plain", 3],
        "untouched": ["a.$", {"b": 2}],
    }


def test_state_output_places_the_result_into_the_raw_input_not_the_selected_one() -> None:
    s = state(InputPath="a", ResultSelector={"v.$": "value"}, ResultPath="a.out", OutputPath="a")

    got = dataflow.state_output(s, {"a": {"x": 1}, "z": 0}, {"value": 5, "noise": 1}, CONTEXT)

    assert got == {"x": 1, "out": {"v": 5}}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "R"),
        ({"ResultPath": None}, {"in": 1}),
        ({"ResultPath": "r"}, {"in": 1, "r": "R"}),
        ({"ResultPath": "@", "OutputPath": None}, {}),
        ({"ResultSelector": {"len.$": "length(@)"}}, {"len": 1}),
        (
            {"ResultSelector": {"ctx.$": "$$.State.Name"}, "ResultPath": "r"},
            {"in": 1, "r": {"ctx": "S"}},
        ),
    ],
)
def test_state_output(fields: dict[str, Any], expected: Any) -> None:
    assert dataflow.state_output(state(**fields), {"in": 1}, "R", CONTEXT) == expected


def test_a_failing_expression_is_a_data_error_naming_it() -> None:
    s = state(InputPath="length(n)")

    with pytest.raises(DataError, match=r"expression 'length\(n\)' failed"):
        dataflow.select_input(s, {"n": 5}, CONTEXT)


# -- expressions and templates -----------------------------------------------------------------


def test_a_context_expression_reads_the_context_and_keeps_its_source() -> None:
    on_context = Expression.compile("$$.State.RetryCount")
    on_data = Expression.compile("State.RetryCount")

    assert (on_context.on_context, on_context.source) == (True, "$$.State.RetryCount")
    assert on_context.evaluate({"State": {"RetryCount": 99}}, CONTEXT) == 2
    assert on_data.evaluate({"State": {"RetryCount": 99}}, CONTEXT) == 99
    assert on_context.evaluate({}, None) is None


def test_a_template_evaluates_the_same_twice_and_keeps_literals_apart() -> None:
    template = Template.compile({"fixed": {"n": 1}, "v.$": "v"})

    first = template.evaluate({"v": 1})
    second = template.evaluate({"v": 2})

    assert (first, second) == ({"fixed": {"n": 1}, "v": 1}, {"fixed": {"n": 1}, "v": 2})
    assert as_object(first)["fixed"] is not as_object(second)["fixed"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (0, True),
        (0.0, True),
        ("false", True),
        ([None], True),
        ({"a": None}, True),
    ],
)
def test_jmespath_truthiness(value: Any, expected: bool) -> None:
    assert truthy(value) is expected
