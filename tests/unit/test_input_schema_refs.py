"""An InputSchema may refer only within itself: validate refuses anything that would be fetched.

The reproducers of a remote ``$ref`` (``http://...`` requested and ``file:///...`` read at
every start) are refused here, at the line of the reference, with the reason; what a start
does with such a schema deployed before this check is in
tests/integration/test_input_schema_fetch.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cairn import errors
from cairn.cli.main import main
from cairn.definitions import loader

HEAD = "Name: t\nVersion: 1\nStartAt: A\nStates:\n  A: {Type: Succeed}\nInputSchema:\n"


def problems(schema: str) -> list[str]:
    with pytest.raises(errors.DefinitionError) as caught:
        loader.loads(HEAD + schema, "d.yaml")
    return [str(p) for p in caught.value.problems]


REFUSED = (
    "is refused: only references within the InputSchema itself ('#/...') are allowed, "
    "as nothing is fetched when an execution starts"
)


@pytest.mark.parametrize(
    "reference",
    [
        "http://127.0.0.1:8000/order.json",
        "file:///etc/secret.json",
        "order.json",
        "order.json#/$defs/line",
        "https://json-schema.org/draft/2020-12/schema",
        "#line",
    ],
)
def test_a_reference_out_of_the_schema_is_refused_at_its_line(reference: str) -> None:
    schema = f"  type: object\n  properties:\n    order:\n      $ref: '{reference}'\n"
    assert problems(schema) == [
        f"d.yaml:10:13: InputSchema $ref {reference!r} {REFUSED} "
        "(at InputSchema.properties.order.$ref)"
    ]


def test_a_dynamic_reference_out_of_the_schema_is_refused() -> None:
    assert problems("  $dynamicRef: 'http://example.com/x'\n") == [
        f"d.yaml:7:16: InputSchema $dynamicRef 'http://example.com/x' {REFUSED} "
        "(at InputSchema.$dynamicRef)"
    ]


def test_a_reference_hidden_under_an_unknown_keyword_is_refused() -> None:
    # Reached through the pointer, the unknown keyword's content is a schema all the same.
    schema = "  $ref: '#/x-shared'\n  x-shared:\n    $ref: 'file:///etc/secret.json'\n"
    assert problems(schema) == [
        f"d.yaml:9:11: InputSchema $ref 'file:///etc/secret.json' {REFUSED} "
        "(at InputSchema.x-shared.$ref)"
    ]


@pytest.mark.parametrize(
    ("reference", "line"),
    [("#/$defs/missing", "d.yaml:7:9"), ("#/$defs/line/properties/sku/9", "d.yaml:7:9")],
)
def test_a_pointer_to_nothing_is_refused(reference: str, line: str) -> None:
    schema = f"  $ref: '{reference}'\n  $defs:\n    line:\n      properties:\n        sku: {{}}\n"
    assert problems(schema) == [
        f"{line}: InputSchema $ref {reference!r} points to nothing within the InputSchema "
        "(at InputSchema.$ref)"
    ]


def test_every_bad_reference_is_reported_at_once() -> None:
    schema = "  allOf:\n    - $ref: 'a.json'\n    - $ref: '#/nowhere'\n"
    assert problems(schema) == [
        f"d.yaml:8:13: InputSchema $ref 'a.json' {REFUSED} (at InputSchema.allOf[0].$ref)",
        "d.yaml:9:13: InputSchema $ref '#/nowhere' points to nothing within the InputSchema "
        "(at InputSchema.allOf[1].$ref)",
    ]


@pytest.mark.parametrize(
    "schema",
    [
        # pointers into the schema itself, the root included
        {"$ref": "#/$defs/line", "$defs": {"line": {"type": "object"}}},
        {"type": "object", "properties": {"child": {"$ref": "#"}}},
        {"$ref": "#/$defs/a~1b/items", "$defs": {"a/b": {"items": {"type": "string"}}}},
        {"$ref": "#/$defs/a%20b", "$defs": {"a b": {"type": "string"}}},
        {"prefixItems": [{"type": "string"}], "items": {"$ref": "#/prefixItems/0"}},
        # a fragment is read in the nearest schema with an $id
        {"$defs": {"x": {"$id": "http://example.com/x", "$ref": "#/$defs/y", "$defs": {"y": {}}}}},
        # "$ref" as a property name, or as instance data, is no reference
        {"properties": {"$ref": {"type": "string"}}, "required": ["$ref"]},
        {"const": {"$ref": "http://example.com/x"}, "default": {"$ref": "file:///x"}},
    ],
    ids=["defs", "root", "escaped", "percent", "array", "id", "property", "data"],
)
def test_references_within_the_schema_are_accepted(schema: dict[str, object]) -> None:
    document = loader.loads(HEAD.replace("InputSchema:\n", f"InputSchema: {json.dumps(schema)}\n"))
    assert document.body["InputSchema"] == schema


def test_cairn_validate_names_the_refused_reference(tmp_path: Path) -> None:
    path = tmp_path / "remote.yaml"
    path.write_text(HEAD + "  $ref: 'http://127.0.0.1:9/schema.json'\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{path}:7:9: InputSchema $ref 'http://127.0.0.1:9/schema.json' {REFUSED} "
        "(at InputSchema.$ref)\n"
    )
