"""What every reader of definition text shares: paths, positions, limits and the raw text.

Error messages must name a line and column, but a JSON Schema validator sees only plain dicts
and lists. So a reader (``yaml_reader``, ``json_reader``) builds the plain value and, beside
it, a table from each value's path to its position, and to its key's position (an unknown
field is reported where the key is). This module holds those tables and the checks every
input passes before either reader sees it (readable, at most 1 MiB, UTF-8), and for a body
built in Python, the check that it is plain JSON: whatever a definition cannot be becomes a
problem, never a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn import errors
from cairn.core import expressions

Path = tuple[str | int, ...]
"""Where a value sits in a document: keys and list indexes from the top."""

Position = tuple[int, int]
"""A 1-based line and column; (0, 0) when unknown."""

MAX_BYTES = 1 << 20
MAX_DEPTH = 100

EMPTY = "the file holds no definition; it should start with Name, Version, StartAt, States"
BIG_INTEGER = (
    "an integer beyond 64 bits: a definition's integers go from -2**63 to 2**63-1, "
    "as the engine stores them"
)


class Positions:
    """Where each value, and each mapping key, of a document was written.

    The tables may be filled on first use by ``scan``: a valid document never needs them,
    so JSON, whose positions take a second pass, only pays for them when reporting.
    """

    __slots__ = ("_keys", "_scan", "_values")

    def __init__(
        self,
        values: dict[Path, Position] | None = None,
        keys: dict[Path, Position] | None = None,
        *,
        scan: Callable[[], Positions] | None = None,
    ) -> None:
        self._values = {} if values is None else values
        self._keys = {} if keys is None else keys
        self._scan = scan

    @property
    def values(self) -> dict[Path, Position]:
        """Position of each value, by path."""
        self._load()
        return self._values

    @property
    def keys(self) -> dict[Path, Position]:
        """Position of the key of each mapping value, by the value's path."""
        self._load()
        return self._keys

    def _load(self) -> None:
        if self._scan is not None:
            scanned, self._scan = self._scan(), None
            self._values, self._keys = scanned.values, scanned.keys

    def value(self, path: Path) -> Position:
        """The position of the value at ``path``, or of its nearest recorded container."""
        values = self.values
        for end in range(len(path), -1, -1):
            found = values.get(path[:end])
            if found is not None:
                return found
        return (0, 0)

    def key(self, path: Path) -> Position:
        """The position of the key naming ``path``, or of its value when it has no key."""
        return self.keys.get(path) or self.value(path)


def dotted(path: Path) -> str:
    """A path in ASL's dotted form: ``States.P.Branches[0].States.A.Next``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


@dataclass(frozen=True, slots=True)
class Tree:
    """A parsed document: its plain JSON value and where each part of it was written."""

    value: Any
    positions: Positions


def read_path(path: str) -> str:
    """Return the text of the definition file ``path``; raise DefinitionError if unreadable."""
    try:
        with open(path, "rb") as stream:
            # Read one byte past the limit rather than trusting stat: pipes and devices lie.
            data = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise refusal(path, "no such file") from None
    except IsADirectoryError:
        raise refusal(path, "is a directory, not a definition file") from None
    except OSError as exc:
        raise refusal(path, f"cannot read the file: {exc.strerror or exc}") from None
    return decode(data, path)


def decode(data: bytes, file: str) -> str:
    """Decode a definition's bytes as UTF-8 text (a leading byte order mark is allowed)."""
    _check_size(len(data), file)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = position_after(data[: exc.start].decode("utf-8", "replace"))
        bad = data[exc.start : exc.start + 1].hex()
        message = f"not a text file: byte 0x{bad} is not valid UTF-8"
        raise refusal(file, message, line, column) from None


def check_text(text: str, file: str) -> str:
    """Check that ``text`` can be a definition's text: within the size limit, valid Unicode."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line, column = position_after(text[: exc.start])
        message = f"the text holds a lone surrogate {text[exc.start]!r}, which is not Unicode"
        raise refusal(file, message, line, column) from None
    _check_size(size, file)
    return text


def big_integer(value: Any) -> bool:
    """Whether ``value`` is an integer the stores cannot keep exactly (never shown: a
    Python integer may have too many digits to print)."""
    low, high = expressions.INTEGER_RANGE
    return isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high


def big_integers(value: Any) -> list[Path]:
    """Where plain JSON ``value`` holds integers beyond 64 bits."""
    found: list[Path] = []
    stack: list[tuple[Any, Path]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, (*path, key)) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(item))
        elif big_integer(item):
            found.append(path)
    return sorted(found, key=str)


def plain_problems(value: Any, file: str) -> list[errors.Problem]:
    """Problems that make ``value`` (built in Python) something other than plain JSON."""
    stack: list[tuple[Any, Path]] = [(value, ())]
    problems: list[errors.Problem] = []
    while stack and not problems:
        item, path = stack.pop()
        if len(path) > MAX_DEPTH:
            problems.append(_problem(file, f"nested more than {MAX_DEPTH} levels deep", path))
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    problems.append(_problem(file, f"key {key!r} is not a string", path))
                stack.append((child, (*path, str(key))))
        elif isinstance(item, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(_problem(file, f"{item} is not a JSON number", path))
        elif big_integer(item):
            problems.append(_problem(file, BIG_INTEGER, path))
        elif not isinstance(item, (str, int, float, bool, type(None))):
            problems.append(_problem(file, f"a {type(item).__name__} is not a JSON value", path))
    return problems


def refusal(file: str, message: str, line: int = 0, column: int = 0) -> errors.DefinitionError:
    """The error for text that cannot be read any further: one problem, where it stopped."""
    problem = errors.Problem(file=file, line=line, column=column, message=message)
    return errors.DefinitionError([problem])


def position_after(before: str) -> Position:
    """The position just after ``before`` (the text up to an error's offset)."""
    line = before.count("\n") + 1
    return line, len(before) - (before.rfind("\n") + 1) + 1


def _problem(file: str, message: str, path: Path) -> errors.Problem:
    return errors.Problem(file=file, line=0, column=0, message=message, path=dotted(path))


def _check_size(size: int, file: str) -> None:
    if size > MAX_BYTES:
        message = f"the file is {size:,} bytes or more; a definition may be at most 1 MiB"
        raise refusal(file, message)
