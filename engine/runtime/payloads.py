"""Data handed to the engine from outside: inputs, signal payloads, callback outputs.

What comes in is checked before anything is decided on it, so that a bad value is refused
with a clear message at the door instead of failing an execution halfway.
"""

from __future__ import annotations

from typing import Any

import orjson

from cairn import errors
from cairn.core import model
from cairn.jsontypes import JSON
from cairn.runtime import store
from cairn.runtime.invoke import PAYLOAD_LIMIT


def plain(value: JSON, what: str) -> JSON:
    """``value`` as it will be stored and read back (tuples as lists, keys as strings).

    Decisions are taken on the value in memory and replayed from the stored one: they must
    be the same value.
    """
    try:
        stored: JSON = orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
        return stored
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise errors.InvalidInput(f"{what} is not JSON: {exc}") from exc


def check_input(spec: model.Definition, input: JSON) -> None:
    """Refuse an input that is too large or does not match the definition's InputSchema."""
    if store.json_size(input) > PAYLOAD_LIMIT:
        raise errors.InvalidInput(f"the input is larger than {PAYLOAD_LIMIT // 1024} KiB")
    if spec.input_schema is None:
        return
    # Imported on first use: a command that only reads executions need not load it.
    import jsonschema

    problems = sorted(
        jsonschema.Draft202012Validator(spec.input_schema).iter_errors(input),
        key=lambda e: list(e.absolute_path),
    )
    if problems:
        lines = [f"input{_path(list(p.absolute_path))}: {p.message}" for p in problems]
        raise errors.InvalidInput(
            f"the input does not match the InputSchema of {spec.name}@{spec.version}: "
            + "; ".join(lines)
        )


def _path(parts: list[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
