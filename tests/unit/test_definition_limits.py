"""Numbers in a definition: what ``cairn validate`` accepts is what deploy and run can take.

Each number the engine could not store or turn into a date is refused at its line, by the
YAML and JSON readers, by the schema's bounds (``cairn.core.limits``) or for a definition
built in Python; the largest numbers allowed load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cairn import errors
from cairn.cli.main import main
from cairn.core import limits
from cairn.definitions import loader, schema

BEYOND_64_BITS = (
    "is an integer beyond 64 bits: a definition's integers go from -2**63 to 2**63-1, "
    "as the engine stores them"
)


def problems(text: str, file: str = "d.yaml") -> list[str]:
    with pytest.raises(errors.DefinitionError) as caught:
        loader.loads(text, file, json=file.endswith(".json"))
    return [str(p) for p in caught.value.problems]


def yaml_states(body: str, version: str = "1") -> str:
    return f"Name: t\nVersion: {version}\nStartAt: A\nStates:\n{body}"


def json_state(state: dict[str, Any]) -> str:
    """A one-state JSON definition on one line, so that columns name the field."""
    return json.dumps({"Name": "t", "Version": 1, "StartAt": "A", "States": {"A": state}})


def test_a_version_past_64_bits_is_refused_at_its_line() -> None:
    text = yaml_states("  A: {Type: Succeed}\n", version="99999999999999999999999999")
    assert problems(text) == [f"d.yaml:2:10: 99999999999999999999999999 {BEYOND_64_BITS}"]


def test_a_version_past_the_stores_column_is_refused() -> None:
    text = yaml_states("  A: {Type: Succeed}\n", version="2147483648")
    assert problems(text) == [
        "d.yaml:2:10: 'Version' must be at most 2,147,483,647, not 2147483648 (at Version)"
    ]


def test_a_pass_result_past_64_bits_is_refused_in_yaml_and_json() -> None:
    text = yaml_states("  A:\n    Type: Pass\n    Result: 18446744073709551616\n    End: true\n")
    assert problems(text) == [f"d.yaml:7:13: 18446744073709551616 {BEYOND_64_BITS}"]
    body = json_state({"Type": "Pass", "Result": {"n": -9223372036854775809}, "End": True})
    column = body.index("-9223372036854775809") + 1
    assert problems(body, "d.json") == [f"d.json:1:{column}: -9223372036854775809 {BEYOND_64_BITS}"]


def test_a_task_timeout_of_1e40_is_past_the_longest_timeout() -> None:
    body = json_state({"Type": "Task", "Activity": "X", "TimeoutSeconds": 1e40, "End": True})
    column = body.index("1e+40") + 1
    assert problems(body, "d.json") == [
        f"d.json:1:{column}: 'TimeoutSeconds' must be at most 99,999,999, not 1e+40 "
        "(at States.A.TimeoutSeconds)"
    ]


@pytest.mark.parametrize(
    "state",
    [
        '{"Type": "Wait", "Seconds": 1e400, "End": true}',
        '{"Type": "Task", "Activity": "X", "End": true,'
        ' "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1e400}]}',
    ],
)
def test_a_number_past_the_doubles_is_refused_not_read_as_infinity(state: str) -> None:
    body = '{"Name": "t", "Version": 1, "StartAt": "A", "States": {"A": ' + state + "}}"
    column = body.index("1e400") + 1
    assert problems(body, "d.json") == [
        f"d.json:1:{column}: 1e400 is beyond the range of JSON numbers"
    ]


def test_a_wait_whose_end_is_no_date_is_refused() -> None:
    text = yaml_states("  A:\n    Type: Wait\n    Seconds: 300000000000\n    End: true\n")
    assert problems(text) == [
        "d.yaml:7:14: 'Seconds' must be at most 99,999,999, not 300000000000 (at States.A.Seconds)"
    ]


def test_retry_counts_and_delays_have_bounds() -> None:
    rule = (
        "    Retry:\n      - ErrorEquals: [States.ALL]\n        MaxAttempts: 100000000\n"
        "        MaxDelaySeconds: 100000000.5\n"
    )
    text = yaml_states(f"  A:\n    Type: Task\n    Activity: X\n    End: true\n{rule}")
    assert problems(text) == [
        "d.yaml:11:22: 'MaxAttempts' must be at most 99,999,999, not 100000000 "
        "(at States.A.Retry[0].MaxAttempts)",
        "d.yaml:12:26: 'MaxDelaySeconds' must be at most 99,999,999, not 100000000.5 "
        "(at States.A.Retry[0].MaxDelaySeconds)",
    ]


def test_a_pinned_child_version_must_be_one_that_can_be_deployed() -> None:
    text = yaml_states(
        "  A:\n    Type: Task\n    Workflow: echo@99999999999999999999999\n    End: true\n"
    )
    assert problems(text) == [
        "d.yaml:7:15: Workflow 'echo@99999999999999999999999' pins a version that cannot be "
        "deployed: versions go from 1 to 2,147,483,647 (at States.A.Workflow)"
    ]


def test_the_largest_numbers_allowed_load() -> None:
    text = yaml_states(
        "  A:\n    Type: Wait\n    Seconds: 99999999\n    Next: B\n"
        "  B:\n    Type: Task\n    Workflow: echo@2147483647\n    TimeoutSeconds: 99999999\n"
        "    Retry: [{ErrorEquals: [States.ALL], MaxAttempts: 99999999}]\n    Next: C\n"
        "  C:\n    Type: Pass\n    Result: [9223372036854775807, -9223372036854775808]\n"
        "    End: true\n",
        version="2147483647",
    )
    document = loader.loads(text, "d.yaml")
    assert document.version == limits.MAX_VERSION


def test_a_body_built_in_python_with_a_huge_integer_is_one_problem() -> None:
    body = json.loads(json_state({"Type": "Pass", "End": True}))
    body["States"]["A"]["Result"] = 10**5000
    with pytest.raises(errors.DefinitionError) as caught:
        loader.validate(body, "flow.py")
    assert [p.message for p in caught.value.problems] == [BEYOND_64_BITS.removeprefix("is ")]


def test_validate_of_a_python_file_holding_10_to_the_5000_prints_one_line(
    tmp_path: Path,
) -> None:
    flow = tmp_path / "huge_flow.py"
    flow.write_text(
        "from cairn import Flow, Value, workflow\n\n\n"
        '@workflow(name="huge", version=1)\n'
        "def huge(flow: Flow, order: Value) -> object:\n"
        '    return flow.compute({"n": 10**5000})\n'
    )
    result = CliRunner().invoke(main, ["validate", str(flow)])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"{flow}:6:12: {BEYOND_64_BITS.removeprefix('is ')} (at States.Compute.Result.n)\n"
    )


def test_the_schema_states_the_engines_bounds() -> None:
    found: dict[str, set[int]] = {}
    stack: list[Any] = [schema.schema()]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for name, field in node.get("properties", {}).items():
                if isinstance(field, dict) and "maximum" in field:
                    found.setdefault(name, set()).add(field["maximum"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    seconds = {limits.MAX_SECONDS}
    assert found == {
        "Version": {limits.MAX_VERSION},
        "TimeoutSeconds": seconds,
        "HeartbeatSeconds": seconds,
        "Seconds": seconds,
        "IntervalSeconds": seconds,
        "MaxDelaySeconds": seconds,
        "MaxAttempts": {limits.MAX_ATTEMPTS},
    }
