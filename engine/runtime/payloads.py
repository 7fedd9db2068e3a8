"""Data handed to the engine from outside: ids, names, inputs, signal payloads, callback outputs.

What comes in is checked before anything is decided on it, so that a bad value is refused
with a clear message at the door instead of failing an execution halfway.  The limits are
one set, the same on SQLite and PostgreSQL: what one database would take and the other
refuse (a 300-character id, a NUL character) is refused on both, and what JSON cannot hold
(NaN, an integer past 64 bits) is refused rather than stored as something else.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from cairn import errors
from cairn.core import limits, model
from cairn.jsontypes import JSON

if TYPE_CHECKING:
    # Loaded on first use (see check_input).
    import referencing

PAYLOAD_LIMIT = 256 * 1024
"""Largest input, result, signal payload or callback output by default, in bytes of compact
JSON (as Step Functions)."""
LIMIT_SETTING = "CAIRN_PAYLOAD_LIMIT_KIB"
"""The environment variable that sets the payload limit, in KiB."""
LARGEST_LIMIT_KIB = 16 * 1024
"""The largest payload limit the setting takes: every payload is also held in the
execution's snapshot, a single value that PostgreSQL caps at 255 MiB."""
DEPTH = 64
"""The deepest nesting of lists and objects in a payload: past it a value is data gone wrong,
and the interpreter, the store's encoder and PostgreSQL each stop at some depth of their own."""
SMALLEST_INTEGER, LARGEST_INTEGER = -(2**63), 2**63 - 1
"""Integers are 64-bit: the store's JSON encoder refuses larger ones, and so would many of
the programs that read an execution's data."""
ID_LENGTH = 100
"""The longest execution id: the id columns hold 200 characters, and the ids derived from an
execution's (a child's ``{id}:{state}:{entry}:{attempt}``) need the rest."""
STORED_ID_LENGTH = 200
"""The longest id an execution row can have (a child's included)."""
TOKEN_LENGTH = 300
"""The longest task token: the task id column's length."""
NAME_LENGTH = 200
"""The longest workflow, signal or error name (the name columns hold 200 characters)."""
ID = re.compile(r"[A-Za-z0-9_.@-]+")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A key shown bare in a place; any other is quoted, as JMESPath quotes it."""
SIGNAL = WORKFLOW = re.compile(r"[A-Za-z0-9_.-]+")
"""A signal name as a Wait's ``Signal`` spells it, and a workflow name as ``Name`` does (the
definition schema's pattern)."""


def size_limit() -> int:
    """The payload limit in bytes: ``CAIRN_PAYLOAD_LIMIT_KIB`` KiB, else 256 KiB."""
    text = os.environ.get(LIMIT_SETTING, "").strip()
    if not text:
        return PAYLOAD_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= LARGEST_LIMIT_KIB:
        raise errors.CairnError(
            f"{LIMIT_SETTING} must be a whole number of KiB from 1 to {LARGEST_LIMIT_KIB}, "
            f"not {text[:40]!r}"
        )
    return int(text) * 1024


def plain(value: JSON, what: str) -> JSON:
    """``value`` as it will be stored and read back (tuples as lists, keys as strings), or
    InvalidInput naming what makes it unfit and where.

    Decisions are taken on the value in memory and replayed from the stored one: they must
    be the same value.
    """
    problem = unfit(value)
    if problem is not None:
        raise errors.InvalidInput(f"{what} {problem}")
    try:
        encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:  # a string that is not Unicode text, say
        raise errors.InvalidInput(f"{what} is not JSON: {exc}") from None
    limit = size_limit()
    if len(encoded) > limit:
        raise errors.InvalidInput(f"{what} {over_limit(len(encoded), limit)}")
    stored: JSON = orjson.loads(encoded)
    return stored


def over_limit(size: int, limit: int) -> str:
    """The words for a payload of ``size`` bytes past the limit."""
    return f"is {size} bytes of JSON, over the limit of {limit // 1024} KiB ({LIMIT_SETTING})"


def unfit(value: object) -> str | None:
    """Why ``value`` cannot be stored as JSON on both databases, naming where; None if it can.

    Walked with a stack, not recursion, so that a value nested thousands deep is refused
    rather than ending in a RecursionError.
    """
    stack: list[tuple[object, _Where | None, int]] = [(value, None, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, Mapping):
            if depth >= DEPTH:
                return f"is nested deeper than {DEPTH} levels of lists and objects"
            for key, inner in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return f"holds a key with a NUL character (\\u0000){_at(where)}"
                if not isinstance(key, str | int | float | bool | type(None)) or (
                    isinstance(key, int) and not SMALLEST_INTEGER <= key <= LARGEST_INTEGER
                ):
                    return f"holds a key that is neither text nor a number{_at(where)}"
                # Stored, every key is text: a number or true is shown as the text it becomes.
                name = key if isinstance(key, str) else json.dumps(key)
                stack.append((inner, _Where(where, name), depth + 1))
        elif isinstance(item, list | tuple):
            if depth >= DEPTH:
                return f"is nested deeper than {DEPTH} levels of lists and objects"
            stack.extend((inner, _Where(where, i), depth + 1) for i, inner in enumerate(item))
        elif isinstance(item, str):
            if "\x00" in item:
                return f"holds a NUL character (\\u0000){_at(where)}, which cannot be stored"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not SMALLEST_INTEGER <= item <= LARGEST_INTEGER:
                return f"holds an integer past 64 bits{_at(where)} (from -2**63 to 2**63-1)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                number = "NaN" if math.isnan(item) else "Infinity" if item > 0 else "-Infinity"
                return f"holds {number}{_at(where)}, which JSON cannot hold"
        else:
            return f"holds a {type(item).__name__}{_at(where)}, which is not JSON"
    return None


class _Where:
    """A place in a value, kept as a link to its parent: spelt out only for a message.

    ``key`` is a list index (an int) or an object's key (text).
    """

    __slots__ = ("key", "parent")

    def __init__(self, parent: _Where | None, key: int | str) -> None:
        self.parent, self.key = parent, key

    def __str__(self) -> str:
        parts: list[str] = []
        node: _Where | None = self
        while node is not None:
            key = node.key
            if isinstance(key, int):
                parts.append(f"[{key}]")
            else:
                parts.append(f".{key}" if NAME.fullmatch(key) else f".{json.dumps(key)}")
            node = node.parent
        return _shorten("".join(reversed(parts)).lstrip("."))


def _at(where: _Where | None) -> str:
    return "" if where is None else f" at {where}"


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- ids and names -----------------------------------------------------------------------
def _name(value: object, what: str, length: int) -> str:
    """``value`` as a non-empty string of at most ``length`` characters, else refused."""
    if not isinstance(value, str) or not value:
        article = "an" if what[0] in "aeiou" else "a"
        raise errors.InvalidInput(f"{article} {what} is a non-empty string, not {value!r}")
    if len(value) > length:
        raise errors.InvalidInput(
            f"{what} {_shorten(value, 40)!r} is {len(value)} characters long; the limit is {length}"
        )
    return value


def new_execution_id(execution_id: object) -> str:
    """An id a new execution may take: up to 100 letters, digits, '_', '.', '-' or '@'."""
    name = _name(execution_id, "execution id", ID_LENGTH)
    if not ID.fullmatch(name):
        raise errors.InvalidInput(
            f"execution id {name!r} may hold only letters, digits, '_', '.', '-' and '@'"
        )
    return name


def known_execution_id(execution_id: object) -> str:
    """An id to look an execution up by; one no execution can have is NotFound."""
    if (
        not isinstance(execution_id, str)
        or len(execution_id) > STORED_ID_LENGTH
        or "\x00" in execution_id
    ):
        shown = _shorten(execution_id, 40) if isinstance(execution_id, str) else execution_id
        raise errors.NotFound(f"no execution {shown!r}")
    return execution_id


def known_token(token: object) -> str:
    """A task token to look a callback task up by; one no task can have is unknown."""
    if not isinstance(token, str) or len(token) > TOKEN_LENGTH or "\x00" in token:
        shown = _shorten(token, 40) if isinstance(token, str) else token
        raise errors.UnknownTaskToken(f"unknown task token {shown!r}")
    return token


def known_workflow(name: object, version: object = None) -> tuple[str, int | None]:
    """A workflow (and version) to look up; one that no definition can have is NotFound,
    as one not deployed is."""
    if not isinstance(name, str) or len(name) > NAME_LENGTH or not WORKFLOW.fullmatch(name):
        shown = _shorten(name, 40) if isinstance(name, str) else name
        raise errors.NotFound(f"no workflow {shown!r} is deployed")
    if version is None:
        return name, None
    if isinstance(version, bool) or not isinstance(version, int):
        raise errors.NotFound(f"no version {version!r} of workflow {name}: versions are numbers")
    if not 1 <= version <= limits.MAX_VERSION:
        raise errors.NotFound(
            f"no such version of workflow {name}: versions run from 1 to {limits.MAX_VERSION}"
        )
    return name, version


def storable(text: object) -> bool:
    """Whether ``text`` could be stored in a name column on both databases: a filter by
    anything else matches nothing."""
    return isinstance(text, str) and len(text) <= NAME_LENGTH and "\x00" not in text


def row_limit(limit: object) -> int:
    """How many rows a listing may return: a whole number from 0 (one past any count is
    every row, on both databases)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise errors.InvalidInput(f"a limit is a whole number from 0, not {limit!r}")
    return min(limit, LARGEST_INTEGER)


def signal_name(name: object) -> str:
    """A signal name a Wait can take: up to 200 letters, digits, '_', '.' or '-'."""
    checked = _name(name, "signal name", NAME_LENGTH)
    if not SIGNAL.fullmatch(checked):
        raise errors.InvalidInput(
            f"signal name {checked!r} may hold only letters, digits, '_', '.' and '-', "
            "as a Wait's Signal does"
        )
    return checked


def error_name(name: object) -> str:
    """The error a callback fails with: a non-empty name of up to 200 characters."""
    checked = _name(name, "error name", NAME_LENGTH)
    if "\x00" in checked:
        raise errors.InvalidInput(f"error name {checked!r} holds a NUL character (\\u0000)")
    return checked


def text(value: object, what: str) -> str:
    """Free text stored with an execution (a cause, a reason): a string within the limit."""
    if not isinstance(value, str):
        raise errors.InvalidInput(f"{what} is a string, not {type(value).__name__}")
    if "\x00" in value:
        raise errors.InvalidInput(f"{what} holds a NUL character (\\u0000), which cannot be stored")
    try:
        size, limit = len(value.encode()), size_limit()
    except UnicodeEncodeError:
        raise errors.InvalidInput(f"{what} holds a lone surrogate, which is not text") from None
    if size > limit:
        raise errors.InvalidInput(f"{what} {over_limit(size, limit)}")
    return value


# -- inputs ------------------------------------------------------------------------------
def check_input(spec: model.Definition, input: JSON) -> None:
    """Refuse an input that is too large or does not match the definition's InputSchema."""
    size, limit = len(orjson.dumps(input, option=orjson.OPT_NON_STR_KEYS)), size_limit()
    if size > limit:
        raise errors.InvalidInput(f"the input {over_limit(size, limit)}")
    if spec.input_schema is None:
        return
    # Imported on first use: a command that only reads executions need not load them.
    import jsonschema
    import referencing.exceptions

    validator = jsonschema.Draft202012Validator(spec.input_schema, registry=_nothing_fetched())
    try:
        problems = sorted(validator.iter_errors(input), key=lambda e: list(e.absolute_path))
    except referencing.exceptions.Unresolvable as exc:
        # Validate refuses such a reference; a definition deployed before it did lands here.
        raise errors.InvalidInput(
            f"the InputSchema of {spec.name}@{spec.version} cannot be checked: {_unresolved(exc)}"
        ) from None
    if problems:
        lines = [f"input{_path(list(p.absolute_path))}: {p.message}" for p in problems]
        raise errors.InvalidInput(
            f"the input does not match the InputSchema of {spec.name}@{spec.version}: "
            + "; ".join(lines)
        )


def _nothing_fetched() -> referencing.Registry[Any]:
    """A schema registry that retrieves nothing: a ``$ref`` out of the schema is unresolvable
    instead of a request to any host or a file of this machine read at every start."""
    import referencing
    import referencing.exceptions

    def refuse(uri: str) -> referencing.Resource[Any]:
        # referencing's own attrs wrapper hides its fields from mypy.
        raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]

    return referencing.Registry(retrieve=refuse)  # type: ignore[call-arg]


def _unresolved(exc: Exception) -> str:
    """Why a reference did not resolve, without the schema text its message may quote."""
    import referencing.exceptions

    cause = getattr(exc, "_wrapped", exc)  # jsonschema wraps the referencing library's error
    ref = getattr(cause, "ref", None)
    shown = repr(_shorten(ref, 200)) if isinstance(ref, str) else "a reference"
    if isinstance(cause, referencing.exceptions.PointerToNowhere):
        return f"its $ref '#{shown[1:]} points to nothing within it"
    return f"its $ref {shown} is not within it, and nothing is fetched when an execution starts"


def _path(parts: list[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
