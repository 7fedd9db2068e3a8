"""Loading and checking definitions: what is accepted, and the exact line every mistake gets."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from cairn import errors
from cairn.definitions import loader, semantics, source
from cairn.jsontypes import JSON

# Every state type, nested scopes, a poll loop through a Wait, aliases and a merge key.
FULL = """\
Name: full
Version: 3
Comment: every state type
StartAt: Prepare
TimeoutSeconds: 3600
InputSchema: {type: object, required: [order_id]}
Queries:
  status: shipment.status
States:
  Prepare:
    Type: Pass
    Parameters:
      order_id.$: order_id
      started.$: $$.Execution.StartTime
      lines: [{sku.$: sku}, 3]
    ResultPath: prepared
    Next: Charge
  Charge:
    Type: Task
    Activity: ChargeCard
    TimeoutSeconds: 30
    HeartbeatSeconds: 10
    Retry: &retry
      - ErrorEquals: [CardNetworkError]
        MaxAttempts: 5
      - ErrorEquals: [States.ALL]
    Catch:
      - ErrorEquals: [CardDeclined]
        Next: Declined
    Compensate: {Activity: RefundCard, Parameters: {charge.$: result.id}}
    Next: Fulfil
  Fulfil:
    Type: Parallel
    Branches:
      - StartAt: Ship
        States:
          Ship:
            Type: Task
            Workflow: shipping@2
            Retry: *retry
            End: true
      - StartAt: EachLine
        States:
          EachLine:
            Type: Map
            ItemsPath: lines
            MaxConcurrency: 4
            ItemProcessor:
              StartAt: Reserve
              States:
                Reserve:
                  Type: Task
                  Activity: Reserve
                  End: true
            End: true
    Next: Poll
  Poll:
    Type: Task
    Activity: CheckShipment
    ResultPath: shipment
    Next: Delivered
  Delivered:
    Type: Choice
    Choices:
      - Condition: shipment.status == 'delivered'
        Next: Done
    Default: Later
  Later:
    <<: {Comment: merged in}
    Type: Wait
    Timestamp: 2026-01-01T00:00:00Z
    Signal: delivered
    Next: Poll
  Done:
    Type: Succeed
  Declined:
    Type: Fail
    Error: CardDeclined
    Cause: declined
"""

TINY_STATES: dict[str, JSON] = {
    "Work": {"Type": "Task", "Activity": "Work", "Next": "Done"},
    "Done": {"Type": "Succeed"},
}
TINY: dict[str, JSON] = {"Name": "tiny", "Version": 1, "StartAt": "Work", "States": TINY_STATES}


def problems(text: str | bytes, **options: Any) -> list[str]:
    """The problem lines of a definition text, which must be invalid."""
    with pytest.raises(errors.DefinitionError) as caught:
        loader.loads(text, "d.yaml", **options)
    return [str(p) for p in caught.value.problems]


def one(text: str | bytes, **options: Any) -> str:
    (line,) = problems(text, **options)
    return line


def states(body: str) -> str:
    """A definition whose States are the given YAML block."""
    return f"Name: t\nVersion: 1\nStartAt: A\nStates:\n{body}"


# --- accepted ----------------------------------------------------------------------------


def test_a_definition_with_every_state_type_loads() -> None:
    document = loader.loads(FULL, "full.yaml")
    assert (document.name, document.version, document.file) == ("full", 3, "full.yaml")
    assert document.source == FULL
    later = document.body["States"]["Later"]
    assert later["Timestamp"] == "2026-01-01T00:00:00Z"
    assert later["Comment"] == "merged in"
    ship = document.body["States"]["Fulfil"]["Branches"][0]["States"]["Ship"]
    assert ship["Retry"] == document.body["States"]["Charge"]["Retry"]


def test_yaml_and_json_spellings_hash_the_same() -> None:
    from_yaml = loader.loads(FULL, "full.yaml")
    as_json = json.dumps(from_yaml.body, indent=1)
    from_json = loader.loads(as_json, "full.json", json=True)
    assert from_json.body == from_yaml.body
    assert from_json.sha256 == from_yaml.sha256 == loader.digest(from_yaml.body)
    assert loader.loads(FULL.replace("Version: 3", "Version: 4")).sha256 != from_yaml.sha256


def test_load_reads_json_by_extension(tmp_path: Path) -> None:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    assert loader.load(path).body == TINY
    path.write_text("Name: tiny  # YAML is not JSON\n")
    with pytest.raises(errors.DefinitionError, match=r"tiny.json:1:1: invalid JSON"):
        loader.load(path)


def test_bytes_with_a_byte_order_mark_load() -> None:
    document = loader.loads(b"\xef\xbb\xbf" + yaml.safe_dump(TINY).encode())
    assert document.body == TINY


def test_yaml_1_1_booleans_stay_names() -> None:
    body = states(
        "  A:\n    Type: Choice\n    Choices:\n      - Condition: ok\n        Next: Yes\n"
        "    Default: No\n  Yes: {Type: Succeed}\n  No: {Type: Fail}\n"
    )
    assert set(loader.loads(body).body["States"]) == {"A", "Yes", "No"}


def test_a_wait_or_task_makes_a_loop_intended() -> None:
    poll = states(
        "  A:\n    Type: Task\n    Activity: Poll\n    Next: B\n"
        "  B:\n    Type: Choice\n    Choices:\n      - Condition: done\n        Next: A\n"
        "    Default: A\n"
    )
    loader.loads(poll)
    waits = states("  A:\n    Type: Wait\n    Signal: go\n    Next: A\n")
    loader.loads(waits)


def test_validate_accepts_a_body_built_in_python() -> None:
    loader.validate(TINY)


def test_known_activities_pass() -> None:
    loader.loads(FULL, activities={"ChargeCard", "RefundCard", "Reserve", "CheckShipment"})


# --- garbage in, one clear problem out -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "d.yaml:1:1: the file holds no definition"),
        ("  \n# only a comment\n", "d.yaml:1:1: the file holds no definition"),
        (b"\x00\xff\xfe", "d.yaml:1:2: not a text file: byte 0xff is not valid UTF-8"),
        ("- a\n- b\n", "d.yaml:1:1: a definition is a mapping of fields"),
        ("services:\n  db: {image: pg}\nvolumes: {}\n", "d.yaml:1:1: not a Cairn definition"),
        (
            "42\n",
            "d.yaml:1:1: a definition is a mapping of fields (Name, Version, States...), "
            "not an integer",
        ),
        ("a: 1\n---\nb: 2\n", "d.yaml:2:1: a definition file holds one YAML document"),
        ("a: [1\n", "d.yaml:2:1: invalid YAML: did not find expected ',' or ']'"),
        ("a: !!set {x}\n", "d.yaml:1:4: !!set values are not allowed"),
        ("a: !custom 1\n", "d.yaml:1:4: !custom values are not allowed"),
        ("? [a]\n: 1\n", "d.yaml:1:3: mapping keys must be strings, not a collection"),
        ("~: 1\n", "d.yaml:1:1: mapping keys must be strings, not None"),
        ("a: 0b_\n", "d.yaml:1:4: '0b_' is not a valid number"),
        ("a: .nan\n", "d.yaml:1:4: '.nan' is not a JSON number"),
        ("a: *nowhere\n", "d.yaml:1:4: alias *nowhere names no anchor defined before it"),
        ("a: &x [*x]\n", "d.yaml:1:8: alias *x refers to a value that contains it"),
        ("a: \ud800\n", "d.yaml:1:4: the text holds a lone surrogate"),
        ("a: " + "[" * 101 + "]" * 101, "d.yaml:1:103: nested more than 100 levels deep"),
        ("a: " + "9" * 5000, "d.yaml:1:4: '99999"),
    ],
)
def test_unreadable_yaml_is_one_problem(text: str | bytes, expected: str) -> None:
    assert one(text).startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1,\n "a": 2}', "d.yaml:2:2: duplicate key 'a': first on line 1, again on line 2"),
        (
            '{"a": 1, "a": 2}',
            "d.yaml:1:10: duplicate key 'a': twice on line 1, at columns 2 and 10",
        ),
        ('{"a": [Infinity]}', "d.yaml:1:8: Infinity is not a JSON number"),
        ('{"a": 1,}', "d.yaml:1:9: invalid JSON: Expecting property name"),
        ("{'a': 1}", "d.yaml:1:2: invalid JSON"),
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "d.yaml:1:106: nested more than 100 levels"),
        ('{"a": ' + "9" * 5000 + "}", "d.yaml:1:1: invalid JSON: Exceeds the limit"),
        ("[1, 2]", "d.yaml:1:1: a definition is a mapping of fields"),
    ],
)
def test_malformed_json_is_one_problem(text: str, expected: str) -> None:
    assert one(text, json=True).startswith(expected)


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert "more than 500,000 values" in one("\n".join(lines))


def test_deep_nesting_within_the_limit_is_checked_not_crashed() -> None:
    # 95 levels of a Parameters template: the schema validator recurses into each of them.
    deep = "{a: " * 95 + "1" + "}" * 95
    text = states(f"  A:\n    Type: Pass\n    Parameters: {deep}\n    End: true\n")
    assert loader.loads(text).body["States"]["A"]["Parameters"]["a"]


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    for path, expected in [
        (tmp_path / "missing.yaml", "missing.yaml:0:0: no such file"),
        (tmp_path, ":0:0: is a directory, not a definition file"),
    ]:
        with pytest.raises(errors.DefinitionError) as caught:
            loader.load(path)
        assert str(caught.value).endswith(expected)


def test_files_over_one_mebibyte_are_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"[" * (source.MAX_BYTES + 1))
    with pytest.raises(errors.DefinitionError, match="may be at most 1 MiB"):
        loader.load(path)
    with pytest.raises(errors.DefinitionError, match="may be at most 1 MiB"):
        loader.loads("#" * (source.MAX_BYTES + 1))


@pytest.mark.parametrize(
    "body",
    [
        {**TINY, "Version": (1,)},
        {**TINY, "Comment": math.nan},
        dict([*TINY.items(), (1, "x")]),  # a key that is not a string
        {**TINY, "Comment": object()},
    ],
)
def test_validate_refuses_what_is_not_json(body: dict[str, Any]) -> None:
    with pytest.raises(errors.DefinitionError):
        loader.validate(body)


def test_validate_refuses_a_cyclic_body() -> None:
    body: dict[str, Any] = dict(TINY)
    body["InputSchema"] = body
    with pytest.raises(errors.DefinitionError, match="nested more than 100 levels"):
        loader.validate(body)


# --- schema problems, in words, where they are ---------------------------------------------


def test_every_schema_problem_is_reported_at_once_sorted_by_line() -> None:
    text = (
        "Name: my order\nVersion: '1'\nStartAt: A\nStates:\n"
        "  A:\n    Type: Task\n    Activity: Go\n    Nxt: B\n"
        "  B:\n    Type: Wait\n    Seconds: '3'\n    Next: C\n"
        "  C:\n    Type: Tsak\n"
    )
    assert problems(text) == [
        "d.yaml:1:7: 'Name' may only hold letters, digits, '_', '.' and '-', not 'my order' (at "
        "Name)",
        "d.yaml:2:10: 'Version' must be an integer, not a string (at Version)",
        "d.yaml:8:5: unknown field 'Nxt' in Task state 'A' (did you mean 'Next'?) (at "
        "States.A.Nxt)",
        "d.yaml:11:14: 'Seconds' must be an integer, not a string (at States.B.Seconds)",
        "d.yaml:14:11: Type must be one of Task, Pass, Wait, Choice, Parallel, Map, Succeed, Fail, "
        "Compensate, ContinueAsNew, not 'Tsak' (did you mean 'Task'?) (at States.C.Type)",
    ]


def test_paths_name_branches_and_rules() -> None:
    text = states(
        "  A:\n    Type: Parallel\n    Branches:\n      - StartAt: X\n        States:\n"
        "          X: {Type: Pass, Next: Y, Bogus: 1}\n          Y: {Type: Succeed}\n"
        "    Next: C\n"
        "  C:\n    Type: Choice\n    Choices:\n      - {Condition: a, Next: A}\n"
        "      - {Condition: 7, Next: A}\n"
    )
    assert problems(text) == [
        "d.yaml:10:36: unknown field 'Bogus' in Pass state 'X' (at "
        "States.A.Branches[0].States.X.Bogus)",
        "d.yaml:17:21: 'Condition' must be a string, not an integer (at "
        "States.C.Choices[1].Condition)",
    ]


def test_missing_fields_point_at_the_object_that_lacks_them() -> None:
    text = "Name: t\nVersion: 1\nStartAt: A\nStates:\n  A:\n    Type: Choice\n    Default: A\n"
    assert one(text) == (
        "d.yaml:5:3: missing required field 'Choices' in Choice state 'A' (at States.A.Choices)"
    )


def test_a_misspelt_required_field_is_reported_once() -> None:
    text = "Name: t\nVersion: 1\nStartAt: A\nStates:\n  A:\n    Type: Choice\n    Choice:\n"
    text += "      - {Condition: a, Next: A}\n"
    assert one(text) == (
        "d.yaml:7:5: unknown field 'Choice' in Choice state 'A' (did you mean 'Choices'?) "
        "(at States.A.Choice)"
    )


def test_json_problems_carry_json_positions() -> None:
    text = json.dumps({**TINY, "States": {**TINY_STATES, "Done": {"Type": 5}}}, indent=2)
    assert one(text, json=True) == (
        "d.yaml:12:15: Type must be one of Task, Pass, Wait, Choice, Parallel, Map, Succeed, "
        "Fail, Compensate, ContinueAsNew, not 5 (at States.Done.Type)"
    )


def test_validate_names_the_path_without_positions() -> None:
    body = {**TINY, "States": {**TINY_STATES, "Done": {"Type": "Succeed", "Next": "Work"}}}
    with pytest.raises(errors.DefinitionError) as caught:
        loader.validate(body, "built")
    assert [str(p) for p in caught.value.problems] == [
        "built:0:0: 'Next' is not allowed in Succeed state 'Done' (at States.Done.Next)"
    ]


# --- semantic problems ----------------------------------------------------------------------


def test_targets_must_exist_in_their_own_scope() -> None:
    text = states(
        "  A:\n    Type: Parallel\n    Branches:\n      - StartAt: X\n        States:\n"
        "          X: {Type: Pass, Next: A}\n    Catch:\n      - {ErrorEquals: [E], Next: Fial}\n"
        "    Next: X\n  Fail: {Type: Fail}\n"
    )
    assert problems(text) == [
        "d.yaml:10:33: Next cannot name 'A': it is a state of the top level, and transitions "
        "never leave their scope (at States.A.Branches[0].States.X.Next)",
        "d.yaml:12:34: Next names unknown state 'Fial' (did you mean 'Fail'?) (at "
        "States.A.Catch[0].Next)",
        "d.yaml:13:11: Next cannot name 'X': it is a state of States.A.Branches[0], and "
        "transitions never leave their scope (at States.A.Next)",
    ]


def test_state_names_are_unique_across_scopes() -> None:
    text = states(
        "  A:\n    Type: Map\n    ItemProcessor:\n      StartAt: A\n      States:\n"
        "        A: {Type: Succeed}\n    End: true\n"
    )
    assert one(text) == (
        "d.yaml:10:9: state name 'A' is already used at States.A; names must be unique "
        "(at States.A.ItemProcessor.States.A)"
    )


def test_unreachable_states_and_endless_loops() -> None:
    text = states("  A: {Type: Pass, Next: B}\n  B: {Type: Pass, Next: A}\n  C: {Type: Succeed}\n")
    assert problems(text) == [
        "d.yaml:5:3: no end state can be reached from 'A': it loops through 'A', 'B' forever, "
        "with no Wait or Task in the loop (at States.A)",
        "d.yaml:7:3: state 'C' is unreachable: no transition from StartAt leads to it (at "
        "States.C)",
    ]


def test_a_loop_with_a_way_out_is_fine() -> None:
    text = states(
        "  A: {Type: Pass, Next: B}\n  B:\n    Type: Choice\n"
        "    Choices: [{Condition: done, Next: C}]\n    Default: A\n  C: {Type: Succeed}\n"
    )
    loader.loads(text)


def test_retry_and_catch_rules() -> None:
    text = states(
        "  A:\n    Type: Task\n    Activity: Go\n    TimeoutSeconds: 5\n    HeartbeatSeconds: 9\n"
        "    Retry:\n      - ErrorEquals: [States.ALL]\n      - ErrorEquals: [States.Runtime]\n"
        "    Catch:\n      - ErrorEquals: [Oops, States.ALL]\n        Next: A\n"
        "    Compensate:\n      Activity: Undo\n      Retry: [{ErrorEquals: [States.Runtime]}]\n"
        "    End: true\n"
    )
    assert problems(text) == [
        "d.yaml:9:23: HeartbeatSeconds (9) must be less than TimeoutSeconds (5) (at "
        "States.A.HeartbeatSeconds)",
        "d.yaml:11:23: a Retry rule with States.ALL must be the last Retry rule "
        "(at States.A.Retry[0].ErrorEquals[0])",
        "d.yaml:12:23: States.Runtime (a bad path or data) is never retried; remove it "
        "(at States.A.Retry[1].ErrorEquals[0])",
        "d.yaml:14:29: States.ALL must be alone in its ErrorEquals (at "
        "States.A.Catch[0].ErrorEquals[1])",
        "d.yaml:18:30: States.Runtime (a bad path or data) is never retried; remove it "
        "(at States.A.Compensate.Retry[0].ErrorEquals[0])",
    ]


def test_expressions_compile_everywhere_they_appear() -> None:
    text = (
        "Name: t\nVersion: 1\nStartAt: A\nQueries: {q: 'a[?'}\nStates:\n"
        "  A:\n    Type: Map\n    ItemsPath: 'items[?'\n    ItemSelector: {v.$: "
        "'$$.Map.Item.Value'}\n"
        "    ItemProcessor:\n      StartAt: B\n      States:\n"
        "        B: {Type: Fail, ErrorPath: 'a..b', CausePath: '$$.bad..path'}\n"
        "    ResultSelector: {x: [{y.$: '$.y'}]}\n    End: true\n"
    )
    assert problems(text) == [
        "d.yaml:4:14: invalid JMESPath expression 'a[?': it ends too early (at Queries.q)",
        "d.yaml:8:16: invalid JMESPath expression 'items[?': it ends too early (at "
        "States.A.ItemsPath)",
        "d.yaml:13:36: invalid JMESPath expression 'a..b': unexpected '.' at character 3 "
        "(at States.A.ItemProcessor.States.B.ErrorPath)",
        "d.yaml:13:55: invalid JMESPath expression '$$.bad..path': unexpected '.' at character 8 "
        "(at States.A.ItemProcessor.States.B.CausePath)",
        "d.yaml:14:32: invalid JMESPath expression '$.y': unexpected '$' at character 1 "
        "(Cairn uses JMESPath: write 'y') (at States.A.ResultSelector.x[0].y.$)",
    ]


def test_wait_forms() -> None:
    text = states(
        "  A: {Type: Wait, SecondsPath: s, TimestampPath: t, Next: B}\n"
        "  B: {Type: Wait, Timestamp: '2026-01-01 00:00:00', Next: C}\n"
        "  C: {Type: Wait, Next: D}\n"
        "  D: {Type: Wait, Timestamp: '2026-01-01T00:00:00.123456789+01:00', End: true}\n"
    )
    assert problems(text) == [
        "d.yaml:5:35: Wait state 'A' has both SecondsPath and TimestampPath; give one of Seconds, "
        "SecondsPath, Timestamp or TimestampPath (at States.A.TimestampPath)",
        "d.yaml:6:30: 'Timestamp' must be an RFC 3339 date-time like 2026-01-01T00:00:00Z, "
        "not '2026-01-01 00:00:00' (at States.B.Timestamp)",
        "d.yaml:7:3: Wait state 'C' needs Seconds, SecondsPath, Timestamp, TimestampPath or Signal "
        "(at States.C)",
    ]


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2026-01-01T00:00:00Z", True),
        ("2026-01-01t00:00:00.5z", True),
        ("2026-02-28T23:59:59-05:30", True),
        ("2026-02-30T00:00:00Z", False),
        ("2026-01-01T00:00:00", False),
        ("2026-01-01", False),
        ("2026-01-01T25:00:00Z", False),
    ],
)
def test_rfc3339(text: str, valid: bool) -> None:
    assert semantics.is_rfc3339(text) is valid


def test_input_schema_must_be_a_json_schema() -> None:
    text = "Name: t\nVersion: 1\nStartAt: A\nInputSchema: {type: object, required: yes}\n"
    text += "States:\n  A: {Type: Succeed}\n"
    assert one(text) == (
        "d.yaml:4:39: InputSchema is not a valid JSON Schema: 'yes' is not of type 'array' "
        "(at InputSchema.required)"
    )


def test_unknown_activities_when_the_registry_is_given() -> None:
    text = states(
        "  A:\n    Type: Task\n    Activity: ChargCard\n"
        "    Compensate: {Activity: Refund}\n    End: true\n"
    )
    assert problems(text, activities=["ChargeCard", "RefundCard"]) == [
        "d.yaml:7:15: activity 'ChargCard' is not registered (did you mean 'ChargeCard'?) "
        "(at States.A.Activity)",
        "d.yaml:8:28: activity 'Refund' is not registered (did you mean 'RefundCard'?) "
        "(at States.A.Compensate.Activity)",
    ]
    loader.loads(text)


def test_schema_problems_do_not_hide_semantic_ones_elsewhere() -> None:
    text = states(
        "  A: {Type: Pass, Next: Gone}\n"
        "  B:\n    Type: Map\n    ItemProcessor:\n      StartAt: X\n      States:\n"
        "        X: {Type: Pass, Result: 1, End: yes please}\n    End: true\n"
    )
    assert problems(text) == [
        "d.yaml:5:25: Next names unknown state 'Gone' (at States.A.Next)",
        "d.yaml:11:41: 'End' must be true, not 'yes please' (at "
        "States.B.ItemProcessor.States.X.End)",
    ]
