"""The definition JSON Schema: accepts the whole format, reports typos at the field at fault.

The schema is what editors show while a definition is written and the first check the engine
runs, so these tests hold it to the format and to errors that point at the deepest field.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from cairn.definitions import schema

ROOT = Path(__file__).resolve().parents[2]

# One state of each type with every field it takes.
FULL_STATES: dict[str, dict[str, Any]] = {
    "Task": {
        "Type": "Task",
        "Comment": "Charge the card.",
        "Activity": "ChargeCard",
        "InputPath": "order",
        "Parameters": {
            "card.$": "card",
            "amount.$": "total",
            "currency": "EUR",
            "when.$": "$$.State.EnteredTime",
            "meta": {"key.$": "$$.Task.IdempotencyKey", "tags": ["a", {"b.$": "c"}], "n": None},
        },
        "ResultSelector": {"id.$": "charge_id"},
        "ResultPath": "order.charge",
        "OutputPath": "@",
        "TimeoutSeconds": 30,
        "HeartbeatSeconds": 10,
        "TaskQueue": "payments",
        "Callback": False,
        "Retry": [
            {
                "Comment": "Network hiccups.",
                "ErrorEquals": ["CardNetworkError", "States.Timeout"],
                "IntervalSeconds": 0.5,
                "BackoffRate": 2.0,
                "MaxAttempts": 5,
                "MaxDelaySeconds": 60,
                "JitterStrategy": "FULL",
            },
            {"ErrorEquals": ["States.ALL"], "MaxAttempts": 0},
        ],
        "Catch": [
            {
                "Comment": "Declined.",
                "ErrorEquals": ["CardDeclined"],
                "ResultPath": "error",
                "Next": "Done",
            },
            {"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "Done"},
        ],
        "Compensate": {
            "Comment": "Refund.",
            "Activity": "RefundCard",
            "Parameters": {"charge_id.$": "result.id", "amount.$": "input.amount"},
            "Retry": [{"ErrorEquals": ["States.ALL"]}],
            "TaskQueue": "payments",
            "TimeoutSeconds": 30,
        },
        "Next": "Done",
    },
    "Pass": {
        "Type": "Pass",
        "Comment": "Set a constant.",
        "InputPath": None,
        "Parameters": {"status": "pending", "id.$": "order_id"},
        "Result": [1, "two", {"three": None}],
        "ResultPath": "@",
        "OutputPath": None,
        "End": True,
    },
    "Wait": {
        "Type": "Wait",
        "Comment": "The cancel window.",
        "SecondsPath": "cancel_window_seconds || `2592000`",
        "Signal": "cancel",
        "InputPath": "@",
        "ResultPath": "cancellation",
        "OutputPath": "@",
        "Next": "Done",
    },
    "Choice": {
        "Type": "Choice",
        "Comment": "Big orders are reviewed.",
        "InputPath": "order",
        "Choices": [
            {"Comment": "Over 100.", "Condition": "total > `100`", "Next": "Done"},
            {"Condition": "$$.Execution.Input.vip", "Next": "Done"},
        ],
        "Default": "Done",
        "OutputPath": "@",
    },
    "Parallel": {
        "Type": "Parallel",
        "Comment": "Two things at once.",
        "Branches": [
            {
                "Comment": "First.",
                "StartAt": "Left",
                "States": {"Left": {"Type": "Task", "Activity": "A", "End": True}},
            },
            {"StartAt": "Right", "States": {"Right": {"Type": "Succeed"}}},
        ],
        "InputPath": "@",
        "Parameters": {"x.$": "x"},
        "ResultSelector": {"left.$": "[0]"},
        "ResultPath": "both",
        "OutputPath": "@",
        "Retry": [{"ErrorEquals": ["States.ALL"]}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}],
        "Next": "Done",
    },
    "Map": {
        "Type": "Map",
        "Comment": "Each line.",
        "ItemProcessor": {
            "Comment": "One line.",
            "StartAt": "Line",
            "States": {"Line": {"Type": "Task", "Activity": "ReserveLine", "End": True}},
        },
        "InputPath": "@",
        "ItemsPath": "items",
        "ItemSelector": {"sku.$": "$$.Map.Item.Value.sku", "index.$": "$$.Map.Item.Index"},
        "MaxConcurrency": 0,
        "ResultSelector": {"lines.$": "@"},
        "ResultPath": "lines",
        "OutputPath": "@",
        "Retry": [{"ErrorEquals": ["States.ALL"]}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}],
        "End": True,
    },
    "Succeed": {"Type": "Succeed", "Comment": "All good.", "InputPath": "@", "OutputPath": "@"},
    "Fail": {
        "Type": "Fail",
        "Comment": "Declined.",
        "Error": "PaymentDeclined",
        "CausePath": "error.Cause",
    },
    "Compensate": {"Type": "Compensate", "Comment": "Undo.", "Next": "Done"},
    "ContinueAsNew": {
        "Type": "ContinueAsNew",
        "Comment": "Next month.",
        "InputPath": "@",
        "Parameters": {"month.$": "next_month"},
        "Version": "latest",
    },
}


_DROP = object()  # a field value meaning "remove this field"


def definition(state: Any, **top: Any) -> dict[str, Any]:
    """A definition whose state X is `state`, beside a Succeed state Done."""
    return {
        "Name": "test",
        "Version": 1,
        "StartAt": "X",
        "States": {"X": state, "Done": {"Type": "Succeed"}},
        **top,
    }


def errors(instance: Any) -> list[tuple[str, str]]:
    """Every schema error as (dotted path, keyword), sorted."""
    return sorted(
        (".".join(str(p) for p in e.absolute_path), str(e.validator))
        for e in schema.validator().iter_errors(instance)
    )


def with_field(state_type: str, **fields: Any) -> dict[str, Any]:
    """A definition around the full example of `state_type`, fields replaced or dropped."""
    state = copy.deepcopy(FULL_STATES[state_type])
    for key, value in fields.items():
        if value is _DROP:
            del state[key]
        else:
            state[key] = value
    return definition(state)


def test_schema_is_valid_draft_2020_12() -> None:
    document = schema.schema()
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == "https://cairn.dev/schemas/definition.schema.json"
    jsonschema.Draft202012Validator.check_schema(document)


def test_validator_is_built_once() -> None:
    assert schema.validator() is schema.validator()


def test_examples_cover_every_state_type() -> None:
    assert set(FULL_STATES) == set(schema.schema()["$defs"]["State"]["properties"]["Type"]["enum"])


@pytest.mark.parametrize("state_type", sorted(FULL_STATES))
def test_full_example_of_each_state_type_is_accepted(state_type: str) -> None:
    assert errors(definition(FULL_STATES[state_type])) == []


def test_full_top_level_is_accepted() -> None:
    top = definition(
        FULL_STATES["Task"],
        Comment="Everything at the top.",
        TimeoutSeconds=3456000,
        InputSchema={"type": "object", "required": ["order_id"]},
        Queries={"status": "shipment.status", "charge.id": "charge.charge_id"},
    )
    assert errors(top) == []


@pytest.mark.parametrize(
    "path", sorted(ROOT.glob("definitions/*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_repository_definitions_are_accepted(path: Path) -> None:
    assert errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize(
    "path", sorted(ROOT.glob("definitions/*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_editor_schema_comment_points_at_the_schema(path: Path) -> None:
    found = re.search(r"#\s*yaml-language-server:\s*\$schema=(\S+)", path.read_text("utf-8"))
    if found is None:
        pytest.skip("no yaml-language-server comment")
    target = (path.parent / found.group(1)).resolve()
    assert target == ROOT / "schemas" / "definition.schema.json"


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        pytest.param(
            with_field("Task", Nxt="Done"),
            [("States.X", "additionalProperties")],
            id="unknown-field-in-task",
        ),
        pytest.param(
            with_field("Wait", Seconds="10", SecondsPath=_DROP),
            [("States.X.Seconds", "type")],
            id="seconds-as-string",
        ),
        pytest.param(
            with_field("Task", Type="Taks"),
            [("States.X.Type", "enum")],
            id="unknown-type",
        ),
        pytest.param(
            with_field("Task", Type=_DROP),
            [("States.X", "required")],
            id="missing-type",
        ),
        pytest.param(definition(None), [("States.X", "type")], id="state-is-null"),
        pytest.param(
            with_field("Pass", Parameters={"id.$": 1}),
            [("States.X.Parameters.id.$", "type")],
            id="expression-key-with-number",
        ),
        pytest.param(
            with_field("Task", Parameters={"outer": {"list": [{"inner.$": {"a": 1}}]}}),
            [("States.X.Parameters.outer.list.0.inner.$", "type")],
            id="nested-expression-key-with-object",
        ),
        pytest.param(
            with_field("Map", ItemSelector={"sku.$": ""}),
            [("States.X.ItemSelector.sku.$", "minLength")],
            id="empty-expression",
        ),
        pytest.param(
            with_field("Task", ResultPath="$.charge"),
            [("States.X.ResultPath", "pattern")],
            id="result-path-jsonpath",
        ),
        pytest.param(
            with_field("Pass", ResultPath="order..id"),
            [("States.X.ResultPath", "pattern")],
            id="result-path-empty-segment",
        ),
        pytest.param(
            with_field("Task", Retry=[{"MaxAttempts": 2}]),
            [("States.X.Retry.0", "required")],
            id="retry-without-error-equals",
        ),
        pytest.param(
            with_field("Task", Retry=[{"ErrorEquals": []}]),
            [("States.X.Retry.0.ErrorEquals", "minItems")],
            id="retry-with-no-error-names",
        ),
        pytest.param(
            with_field("Task", Retry=[{"ErrorEquals": ["A"], "JitterStrategy": "HALF"}]),
            [("States.X.Retry.0.JitterStrategy", "enum")],
            id="unknown-jitter",
        ),
        pytest.param(
            with_field("Task", Catch=[{"ErrorEquals": ["A"]}]),
            [("States.X.Catch.0", "required")],
            id="catch-without-next",
        ),
        pytest.param(
            with_field("Task", Compensate={"Parameters": {}}),
            [("States.X.Compensate", "required")],
            id="compensate-without-activity",
        ),
        pytest.param(
            with_field("Task", Workflow="invoice@v2", Activity=_DROP),
            [("States.X.Workflow", "pattern")],
            id="workflow-version-not-a-number",
        ),
        pytest.param(
            with_field("Pass", End=False),
            [("States.X.End", "const")],
            id="end-false",
        ),
        pytest.param(
            with_field("Succeed", Next="Done"),
            [("States.X", "additionalProperties")],
            id="next-on-succeed",
        ),
        pytest.param(
            with_field("Choice", Next="Done"),
            [("States.X", "additionalProperties")],
            id="next-on-choice",
        ),
        pytest.param(
            with_field("Fail", OutputPath="@"),
            [("States.X", "additionalProperties")],
            id="path-on-fail",
        ),
        pytest.param(
            with_field("Fail", ErrorPath="error.Error"),
            [("States.X", "not")],
            id="fail-error-and-error-path",
        ),
        pytest.param(
            with_field("ContinueAsNew", Version="newest"),
            [("States.X.Version", "enum")],
            id="continue-as-new-version",
        ),
        pytest.param(
            with_field("Map", MaxConcurrency=-1),
            [("States.X.MaxConcurrency", "minimum")],
            id="negative-concurrency",
        ),
        pytest.param(
            with_field("Choice", Choices=[{"Condition": "a", "Next": "Done", "Default": "X"}]),
            [("States.X.Choices.0", "additionalProperties")],
            id="unknown-field-in-choice-rule",
        ),
        pytest.param(
            with_field(
                "Parallel",
                Branches=[
                    {
                        "StartAt": "Inner",
                        "States": {"Inner": {"Type": "Task", "Activity": "A", "Ned": True}},
                    }
                ],
            ),
            [("States.X.Branches.0.States.Inner", "additionalProperties")],
            id="typo-in-parallel-branch",
        ),
        pytest.param(
            with_field(
                "Map",
                ItemProcessor={
                    "StartAt": "Inner",
                    "States": {
                        "Inner": {
                            "Type": "Parallel",
                            "Branches": [
                                {
                                    "StartAt": "Deep",
                                    "States": {"Deep": {"Type": "Wait", "Seconds": 1.5}},
                                }
                            ],
                            "End": True,
                        }
                    },
                },
            ),
            [("States.X.ItemProcessor.States.Inner.Branches.0.States.Deep.Seconds", "type")],
            id="typo-in-map-in-parallel",
        ),
        pytest.param(
            with_field("Parallel", Branches=[{"StartAt": "A", "States": {}}]),
            [("States.X.Branches.0.States", "minProperties")],
            id="empty-branch",
        ),
        pytest.param(
            {**definition(FULL_STATES["Succeed"]), "Extra": 1},
            [("", "additionalProperties")],
            id="unknown-top-level-field",
        ),
        pytest.param(
            {**definition(FULL_STATES["Succeed"]), "Version": 0},
            [("Version", "minimum")],
            id="version-zero",
        ),
        pytest.param(
            {**definition(FULL_STATES["Succeed"]), "Name": "my order"},
            [("Name", "pattern")],
            id="name-with-space",
        ),
        pytest.param(
            {"Name": "t", "Version": 1, "StartAt": "a/b", "States": {"a/b": {"Type": "Succeed"}}},
            [("StartAt", "pattern"), ("States", "pattern")],
            id="state-name-with-slash",
        ),
        pytest.param(
            {**definition(FULL_STATES["Succeed"]), "Queries": {"status": 3}},
            [("Queries.status", "type")],
            id="query-not-a-string",
        ),
    ],
)
def test_mistake_is_reported_once_at_the_field_at_fault(
    instance: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert errors(instance) == expected


@pytest.mark.parametrize(
    "instance",
    [
        pytest.param(with_field("Wait", Timestamp="tomorrow"), id="timestamp-not-rfc3339"),
        pytest.param(with_field("Wait", Seconds=10), id="seconds-and-seconds-path"),
        pytest.param(with_field("Wait", SecondsPath=_DROP, Signal=_DROP), id="wait-for-nothing"),
        pytest.param(with_field("Task", Workflow="invoice"), id="activity-and-workflow"),
        pytest.param(with_field("Task", Activity=_DROP), id="neither-activity-nor-workflow"),
        pytest.param(with_field("Task", End=True), id="next-and-end"),
        pytest.param(with_field("Task", Next=_DROP), id="neither-next-nor-end"),
    ],
)
def test_rules_left_to_the_semantic_checks_pass_the_schema(instance: dict[str, Any]) -> None:
    assert errors(instance) == []


def test_every_field_has_a_title_and_a_description() -> None:
    document = schema.schema()
    missing: list[str] = []

    def documented(node: dict[str, Any]) -> bool:
        if "$ref" in node and not {"title", "description"} <= node.keys():
            node = {**document["$defs"][node["$ref"].rsplit("/", 1)[-1]], **node}
        return {"title", "description"} <= node.keys()

    def walk(node: Any, where: str) -> None:
        if not isinstance(node, dict):
            return
        for name, field in node.get("properties", {}).items():
            if not documented(field):
                missing.append(f"{where}.{name}")
        for key, value in node.items():
            if key == "if":
                continue  # the dispatch conditions are not fields
            if isinstance(value, dict):
                walk(value, f"{where}.{key}")
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    walk(item, f"{where}.{key}[{index}]")

    walk(document, "")
    undocumented_defs = [name for name, d in document["$defs"].items() if not documented(d)]
    assert missing == []
    assert undocumented_defs == []


LITERAL_KEYS = st.text(max_size=8).filter(lambda key: not key.endswith(".$"))
JSON_DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(LITERAL_KEYS, children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(LITERAL_KEYS, JSON_DATA, max_size=4))
def test_template_takes_any_literal_json(template: dict[str, Any]) -> None:
    assert errors(with_field("Pass", Parameters=template)) == []


@given(
    st.lists(LITERAL_KEYS, max_size=3),
    JSON_DATA.filter(lambda value: not isinstance(value, str)),
)
def test_template_expression_key_takes_only_a_string(nesting: list[str], value: Any) -> None:
    template: dict[str, Any] = {"key.$": value}
    for key in reversed(nesting):
        template = {key: template}
    path = ".".join(["States.X.ResultSelector", *nesting, "key.$"])
    assert errors(with_field("Task", ResultSelector=template)) == [(path, "type")]
