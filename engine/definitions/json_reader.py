"""Read strict JSON text into plain JSON values, finding positions only when a problem needs them.

The json module decides what is valid JSON, and does it fast; what it cannot say is where a
value was written. A token scan records that, and it runs only when a problem must be
reported: a valid definition never pays for a second pass over its text.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cairn import errors
from cairn.definitions import messages, source
from cairn.definitions.source import MAX_DEPTH, Path, Position

# The json module's own string decoder, so keys are read exactly as json.loads reads them.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_TOKEN = re.compile(r'[ \t\n\r]*(?:([{}\[\]:,])|(")|([^ \t\n\r{}\[\]:,"]+))')
_CONSTANTS = ("NaN", "Infinity", "-Infinity")


def parse(text: str, file: str) -> source.Tree:
    """Parse strict JSON; raise DefinitionError, located by the token scan, if it is not.

    The scan only says where things are, so it can be simple; it stops at the depth limit.
    """
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_pairs,
            parse_constant=_no_constant,
            parse_float=_finite,
        )
    except json.JSONDecodeError as exc:
        problem = errors.Problem(
            file=file, line=exc.lineno, column=exc.colno, message=f"invalid JSON: {exc.msg}"
        )
        raise errors.DefinitionError([problem]) from None
    except (ValueError, RecursionError, _NotJSON) as exc:
        # Duplicates, constants and depth are located by the scan; integers too long to
        # convert are not.
        located = _JsonScan(text, file).run().problems
        message = f"invalid JSON: {str(exc).split(';')[0]}"
        unlocated = errors.Problem(file=file, line=1, column=1, message=message)
        raise errors.DefinitionError(located or [unlocated]) from None
    if _depth(value) > MAX_DEPTH:
        raise errors.DefinitionError(_JsonScan(text, file).run().problems)
    if source.big_integers(value):
        raise errors.DefinitionError(_JsonScan(text, file).run().problems)
    return source.Tree(value, source.Positions(scan=lambda: _JsonScan(text, file).run().positions))


class _NotJSON(Exception):
    """Raised by the json module's hooks for what strict JSON does not allow."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _NotJSON("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON number")


def _depth(value: Any) -> int:
    """How many containers deep ``value`` goes, walking no further than the limit allows."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                children = node.values() if isinstance(node, dict) else node
                stack.extend((child, depth) for child in children)
    return deepest


def _finite(text: str) -> float:
    """A JSON number as a float; one past the doubles' range (``1e400``) is refused, as the
    json module would read it as infinity, which no store keeps."""
    number = float(text)
    if not math.isfinite(number):
        raise _NotJSON(f"{text} is beyond the range of JSON numbers")
    return number


def _number_problem(token: str) -> str | None:
    """What is wrong with a number as written, if anything: past 64 bits, past a double."""
    try:
        if re.fullmatch(r"-?[0-9]+", token):
            return f"is {source.BIG_INTEGER}" if source.big_integer(int(token)) else None
        return None if math.isfinite(float(token)) else "is beyond the range of JSON numbers"
    except ValueError:
        return None  # not a number, or too many digits: json.loads has said so


@dataclass(slots=True)
class _JsonFrame:
    path: Path
    is_object: bool
    index: int = 0
    key: str | None = None
    seen: dict[str, Position] = field(default_factory=dict)


class _JsonScan:
    """Records the position of every value and key of JSON text, stopping at what is wrong."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.lines = [0, *(m.end() for m in re.finditer("\n", text))]
        self.positions = source.Positions()
        self.problems: list[errors.Problem] = []
        self.stack: list[_JsonFrame] = []

    def position(self, offset: int) -> Position:
        line = bisect.bisect_right(self.lines, offset)
        return line, offset - self.lines[line - 1] + 1

    def report(self, offset: int, message: str) -> None:
        line, column = self.position(offset)
        self.problems.append(
            errors.Problem(file=self.file, line=line, column=column, message=message)
        )

    def run(self) -> _JsonScan:
        offset = 0
        while True:
            match = _TOKEN.match(self.text, offset)
            if match is None:
                return self
            start = match.start(match.lastindex or 0)
            offset = match.end()
            if match.group(1):
                if not self.punctuation(match.group(1), start):
                    return self
            elif match.group(2):
                try:
                    string, offset = _scanstring(self.text, offset)
                except ValueError:
                    return self  # json.loads reports malformed strings with their position
                self.string(string, start)
            else:
                if match.group(3) in _CONSTANTS:
                    self.report(start, f"{match.group(3)} is not a JSON number")
                elif (problem := _number_problem(match.group(3))) is not None:
                    self.report(start, f"{messages.shorten(match.group(3), 40)} {problem}")
                self.value(start)
                self.finish()

    def punctuation(self, char: str, offset: int) -> bool:
        if char in "{[":
            if len(self.stack) >= MAX_DEPTH:
                self.report(offset, f"nested more than {MAX_DEPTH} levels deep")
                return False
            path = self.value(offset)
            if path is None:
                return False
            self.stack.append(_JsonFrame(path, char == "{"))
        elif char in "}]":
            if not self.stack:
                return False
            self.stack.pop()
            self.finish()
        return True

    def string(self, string: str, offset: int) -> None:
        frame = self.stack[-1] if self.stack else None
        if frame is None or not frame.is_object or frame.key is not None:
            self.value(offset)
            self.finish()
            return
        position = self.position(offset)
        first = frame.seen.get(string)
        if first is not None:
            self.report(offset, messages.duplicate_key(string, first, position))
        else:
            frame.seen[string] = position
            key_path = (*frame.path, string)
            self.positions.keys[key_path] = position
        frame.key = string

    def value(self, offset: int) -> Path | None:
        """Record where the value starting at ``offset`` is; return its path."""
        if not self.stack:
            path: Path = ()
        else:
            frame = self.stack[-1]
            if frame.is_object and frame.key is None:
                return None
            path = (*frame.path, frame.index if frame.key is None else frame.key)
        self.positions.values.setdefault(path, self.position(offset))
        return path

    def finish(self) -> None:
        """A value of the innermost container is complete: move to its next slot."""
        if self.stack:
            frame = self.stack[-1]
            frame.key = None
            frame.index += 1
