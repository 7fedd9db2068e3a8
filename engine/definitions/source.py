"""Read a definition's text into plain JSON values, remembering where each value was written.

Error messages must name a line and column, but a JSON Schema validator sees only plain dicts
and lists. So the reader builds the plain value and, beside it, a table from each value's path
to its position, and to its key's position (an unknown field is reported where the key is).
It also turns everything a definition cannot be (missing, huge, not UTF-8, binary, nested
without end, not one JSON-shaped document) into problems, never into a traceback.

YAML is read from the parser's event stream rather than through ``yaml.compose``: the loop
below is iterative, so no document can exhaust the Python stack, and it sees every anchor and
alias, so recursive aliases and alias bombs are refused instead of expanded.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

import yaml

from cairn import errors

Path = tuple[str | int, ...]
"""Where a value sits in a document: keys and list indexes from the top."""

Position = tuple[int, int]
"""A 1-based line and column; (0, 0) when unknown."""

MAX_BYTES = 1 << 20
MAX_DEPTH = 100
# Aliases can make a small file stand for a huge value ("billion laughs"); this bounds the
# value every later stage walks, counted after expanding aliases.
MAX_VALUES = 500_000

_EMPTY = "the file holds no definition; it should start with Name, Version, StartAt, States"

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML = "tag:yaml.org,2002:"
_BOOL = _YAML + "bool"


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader with YAML 1.2 scalars where YAML 1.1 surprises authors.

    Timestamps stay strings (``Timestamp: 2026-01-01T00:00:00Z`` is checked as RFC 3339 text,
    not turned into a datetime), and only true/false are booleans, so a state named ``No`` or
    ``On`` stays a name instead of becoming ``False`` or ``True``.
    """

    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[str, re.Pattern[str]]]]] = {
        first: [
            (tag, regexp) for tag, regexp in resolvers if tag not in (_YAML + "timestamp", _BOOL)
        ]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF")

_SCALARS = yaml.constructor.SafeConstructor()
_MERGE = _YAML + "merge"
_TYPED = frozenset(_YAML + name for name in ("int", "float", "bool", "null"))
_MAPPING_TAGS = (None, "!", _YAML + "map")
_SEQUENCE_TAGS = (None, "!", _YAML + "seq")


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
        raise _error(path, "no such file") from None
    except IsADirectoryError:
        raise _error(path, "is a directory, not a definition file") from None
    except OSError as exc:
        raise _error(path, f"cannot read the file: {exc.strerror or exc}") from None
    return decode(data, path)


def decode(data: bytes, file: str) -> str:
    """Decode a definition's bytes as UTF-8 text (a leading byte order mark is allowed)."""
    _check_size(len(data), file)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _offset_position(data[: exc.start].decode("utf-8", "replace"))
        bad = data[exc.start : exc.start + 1].hex()
        message = f"not a text file: byte 0x{bad} is not valid UTF-8"
        raise _error(file, message, line, column) from None


def check_text(text: str, file: str) -> str:
    """Check that ``text`` can be a definition's text: within the size limit, valid Unicode."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line, column = _offset_position(text[: exc.start])
        message = f"the text holds a lone surrogate {text[exc.start]!r}, which is not Unicode"
        raise _error(file, message, line, column) from None
    _check_size(size, file)
    return text


def parse(text: str, file: str, *, json: bool = False) -> Tree:
    """Parse YAML (or, with ``json``, strict JSON) text; raise DefinitionError if malformed."""
    if not text.strip():
        raise _error(file, _EMPTY, 1, 1)
    return _parse_json(text, file) if json else _parse_yaml(text, file)


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
        elif not isinstance(item, (str, int, float, bool, type(None))):
            problems.append(_problem(file, f"a {type(item).__name__} is not a JSON value", path))
    return problems


class _Stop(Exception):
    """Raised inside a reader to abandon a document after recording why."""


def _error(file: str, message: str, line: int = 0, column: int = 0) -> errors.DefinitionError:
    problem = errors.Problem(file=file, line=line, column=column, message=message)
    return errors.DefinitionError([problem])


def _problem(file: str, message: str, path: Path) -> errors.Problem:
    return errors.Problem(file=file, line=0, column=0, message=message, path=dotted(path))


def _check_size(size: int, file: str) -> None:
    if size > MAX_BYTES:
        message = f"the file is {size:,} bytes or more; a definition may be at most 1 MiB"
        raise _error(file, message)


def _duplicate(key: str, first: Position, again: Position) -> str:
    if first[0] == again[0]:
        return (
            f"duplicate key {key!r}: twice on line {again[0]}, at columns {first[1]} and {again[1]}"
        )
    return f"duplicate key {key!r}: first on line {first[0]}, again on line {again[0]}"


def _offset_position(before: str) -> Position:
    """The position just after ``before`` (the text up to an error's offset)."""
    line = before.count("\n") + 1
    return line, len(before) - (before.rfind("\n") + 1) + 1


# --- YAML --------------------------------------------------------------------------------

_MERGE_KEY = object()
"""Stands for a ``<<`` merge key, so it never clashes with a key written as text."""


@dataclass(slots=True)
class _Anchor:
    """An anchored value: open while its collection is being read, for alias checks."""

    value: Any = None
    size: int = 0
    height: int = 0
    open: bool = True


@dataclass(slots=True)
class _Frame:
    """A mapping or sequence being built; ``path`` is None for one that is a mapping key."""

    value: Any
    path: Path | None
    position: Position
    anchor: str | None
    size: int = 1
    height: int = 1
    key: Any = None
    key_position: Position = (0, 0)
    child: Path | None = None  # the path of the value that follows the key, if recorded
    has_key: bool = False
    bad_key: bool = False
    merges: list[tuple[Any, Position]] = field(default_factory=list)


class _YamlReader:
    """Builds one plain value from a YAML event stream, with positions and problems."""

    def __init__(self, file: str, resolve: Callable[[type, str, Any], str]) -> None:
        self.file = file
        self.resolve = resolve
        self.positions = Positions()
        self.problems: list[errors.Problem] = []
        self.anchors: dict[str, _Anchor] = {}
        self.stack: list[_Frame] = []
        self.count = 0
        self.documents = 0
        self.root: Any = None
        # Definitions repeat the same few words (Type, Next, Task...): resolve each once.
        self.tags: dict[tuple[str, Any], str] = {}
        self.handlers: dict[type, Callable[[Any], None]] = {
            yaml.ScalarEvent: self.scalar,
            yaml.MappingStartEvent: self.start,
            yaml.SequenceStartEvent: self.start,
            yaml.MappingEndEvent: self.end,
            yaml.SequenceEndEvent: self.end,
            yaml.AliasEvent: self.alias,
            yaml.DocumentStartEvent: self.document,
        }

    def read(self, events: Iterator[Any]) -> None:
        handlers = self.handlers
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)

    def document(self, event: yaml.DocumentStartEvent) -> None:
        self.documents += 1
        if self.documents > 1:
            self.stop(_mark(event), "a definition file holds one YAML document, not more")

    def report(self, position: Position, message: str) -> None:
        line, column = position
        self.problems.append(
            errors.Problem(file=self.file, line=line, column=column, message=message)
        )

    def stop(self, position: Position, message: str) -> NoReturn:
        self.report(position, message)
        raise _Stop

    def grow(self, size: int, position: Position) -> None:
        self.count += size
        if self.count > MAX_VALUES:
            self.stop(position, f"the document holds more than {MAX_VALUES:,} values")

    def scalar(self, event: yaml.ScalarEvent) -> None:
        position = _mark(event)
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.tags.get((event.value, event.implicit))
            if tag is None:
                tag = self.resolve(yaml.ScalarNode, event.value, event.implicit)
                self.tags[(event.value, event.implicit)] = tag
        elif tag in _TYPED and tag != self.resolve(yaml.ScalarNode, event.value, (True, False)):
            # An explicit tag must agree with the text: `!!int abc` is no integer.
            self.stop(position, f"{_shorten(event.value)!r} is not a valid {_short_tag(tag)}")
        parent = self.stack[-1] if self.stack else None
        if tag == _MERGE and parent and isinstance(parent.value, dict) and not parent.has_key:
            value: Any = _MERGE_KEY
        else:
            value = self.construct(tag, event.value, position)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(value, 1, 0, open=False)
        self.add(value, position, 1, 0)

    def construct(self, tag: str, text: str, position: Position) -> Any:
        try:
            if tag in (_YAML + "str", _MERGE):
                return text
            if tag == _YAML + "null":
                return None
            if tag == _BOOL:
                return text.lower() == "true"
            if tag == _YAML + "int":
                return _SCALARS.construct_yaml_int(yaml.ScalarNode(tag, text))
            if tag == _YAML + "float":
                number = _SCALARS.construct_yaml_float(yaml.ScalarNode(tag, text))
                if not math.isfinite(number):
                    self.stop(position, f"{_shorten(text)!r} is not a JSON number")
                return number
        except ValueError:
            # YAML 1.1 accepts forms such as 0b_ that Python cannot convert.
            self.stop(position, f"{_shorten(text)!r} is not a valid number")
        self.stop(position, f"{_short_tag(tag)} values are not allowed; use JSON values only")

    def start(self, event: yaml.MappingStartEvent | yaml.SequenceStartEvent) -> None:
        position = _mark(event)
        mapping = isinstance(event, yaml.MappingStartEvent)
        if event.tag not in (_MAPPING_TAGS if mapping else _SEQUENCE_TAGS):
            self.stop(
                position, f"{_short_tag(event.tag)} values are not allowed; use JSON values only"
            )
        if len(self.stack) >= MAX_DEPTH:
            self.stop(position, f"nested more than {MAX_DEPTH} levels deep")
        self.grow(1, position)
        path = self.child_path()
        if path is not None:
            self.positions.values[path] = position
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor()
        self.stack.append(_Frame({} if mapping else [], path, position, event.anchor))

    def end(self, event: yaml.CollectionEndEvent) -> None:
        frame = self.stack.pop()
        if isinstance(frame.value, dict):
            self.apply_merges(frame)
        if frame.anchor is not None:
            self.anchors[frame.anchor] = _Anchor(frame.value, frame.size, frame.height, False)
        self.place(frame.value, frame.position, frame.size, frame.height)

    def alias(self, event: yaml.AliasEvent) -> None:
        position = _mark(event)
        anchor = self.anchors.get(event.anchor or "")
        if anchor is None:
            self.stop(position, f"alias *{event.anchor} names no anchor defined before it")
        if anchor.open:
            self.stop(position, f"alias *{event.anchor} refers to a value that contains it")
        if len(self.stack) + anchor.height > MAX_DEPTH:
            self.stop(position, f"nested more than {MAX_DEPTH} levels deep")
        self.grow(anchor.size - 1, position)
        self.add(anchor.value, position, anchor.size, anchor.height)

    def add(self, value: Any, position: Position, size: int, height: int) -> None:
        """Place a scalar or an alias, recording its position."""
        self.grow(1, position)
        path = self.child_path()
        if path is not None:
            self.positions.values[path] = position
        self.place(value, position, size, height)

    def child_path(self) -> Path | None:
        """The path of the value that comes next, or None for a mapping key."""
        if not self.stack:
            return ()
        parent = self.stack[-1]
        if isinstance(parent.value, dict):
            return parent.child if parent.has_key else None
        return None if parent.path is None else (*parent.path, len(parent.value))

    def place(self, value: Any, position: Position, size: int, height: int) -> None:
        """Put a finished value into its parent (or make it the document)."""
        if not self.stack:
            self.root = value
            return
        frame = self.stack[-1]
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if isinstance(frame.value, list):
            frame.value.append(value)
        elif not frame.has_key:
            self.take_key(frame, value, position)
        else:
            self.put(frame, value)

    def take_key(self, frame: _Frame, key: Any, position: Position) -> None:
        frame.has_key, frame.key, frame.key_position = True, key, position
        frame.bad_key = key is not _MERGE_KEY and not isinstance(key, str)
        frame.child = None
        if frame.path is not None and isinstance(key, str):
            frame.child = (*frame.path, key)
        if frame.bad_key:
            shown = "a collection" if isinstance(key, (dict, list)) else repr(key)
            self.report(position, f"mapping keys must be strings, not {shown}; quote the key")

    def put(self, frame: _Frame, value: Any) -> None:
        frame.has_key = False
        if frame.bad_key:
            return
        if frame.key is _MERGE_KEY:
            frame.merges.append((value, frame.key_position))
            return
        if frame.key in frame.value:
            first = self.positions.keys.get(frame.child, (0, 0)) if frame.child else (0, 0)
            self.report(frame.key_position, _duplicate(frame.key, first, frame.key_position))
            return
        frame.value[frame.key] = value
        if frame.child is not None:
            self.positions.keys[frame.child] = frame.key_position

    def apply_merges(self, frame: _Frame) -> None:
        """Apply YAML merge keys (``<<: *defaults``): keys written out win over merged ones."""
        for value, position in frame.merges:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(source, dict) for source in sources):
                self.report(position, "a merge key (<<) takes a mapping or a list of mappings")
                continue
            for source in sources:
                for key, item in source.items():
                    if key in frame.value:
                        continue
                    frame.value[key] = item
                    if frame.path is not None:
                        merged = (*frame.path, key)
                        self.positions.keys[merged] = position
                        self.positions.values[merged] = position


def _events(loader: Any) -> Iterator[Any]:
    while True:
        event = loader.get_event()
        if event is None or isinstance(event, yaml.StreamEndEvent):
            return
        yield event


def _parse_yaml(text: str, file: str) -> Tree:
    loader = _Loader(text)
    reader = _YamlReader(file, loader.resolve)
    try:
        reader.read(_events(loader))
    except _Stop:
        pass
    except yaml.YAMLError as exc:
        reader.problems.append(_yaml_problem(exc, text, file))
    finally:
        loader.dispose()
    if not reader.problems and reader.documents == 0:
        reader.report((1, 1), _EMPTY)
    if reader.problems:
        raise errors.DefinitionError(reader.problems)
    return Tree(reader.root, reader.positions)


def _yaml_problem(exc: yaml.YAMLError, text: str, file: str) -> errors.Problem:
    if isinstance(exc, yaml.reader.ReaderError):
        # libyaml reports a byte offset into the UTF-8 text, the Python reader a character one.
        before = (
            text.encode("utf-8")[: exc.position].decode("utf-8", "replace")
            if _BaseLoader is not yaml.SafeLoader
            else text[: exc.position]
        )
        line, column = _offset_position(before)
        message = f"invalid YAML: {exc.reason} (character {exc.character!r})"
        return errors.Problem(file=file, line=line, column=column, message=message)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        problem = f"{problem} ({context} started on line {context_mark.line + 1})"
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return errors.Problem(file=file, line=line, column=column, message=f"invalid YAML: {problem}")


def _shorten(text: str) -> str:
    """Keep a quoted value short, so that one problem stays one line."""
    return text if len(text) <= 40 else text[:37] + "..."


def _mark(event: Any) -> Position:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1)


def _short_tag(tag: str | None) -> str:
    return "!!" + tag[len(_YAML) :] if tag and tag.startswith(_YAML) else str(tag)


# --- JSON --------------------------------------------------------------------------------


class _NotJSON(Exception):
    """Raised by the json module's hooks for what strict JSON does not allow."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _NotJSON("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON number")


# The json module's own string decoder, so keys are read exactly as json.loads reads them.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_TOKEN = re.compile(r'[ \t\n\r]*(?:([{}\[\]:,])|(")|([^ \t\n\r{}\[\]:,"]+))')
_CONSTANTS = ("NaN", "Infinity", "-Infinity")


def _parse_json(text: str, file: str) -> Tree:
    """Parse strict JSON with the json module; a token scan finds positions when needed.

    The json module decides what is valid. The scan only says where things are, so it can be
    simple; it runs when a problem needs a position, and it stops at the depth limit.
    """
    try:
        value = json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
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
        raise errors.DefinitionError(located or [_error(file, message, 1, 1).problems[0]]) from None
    if _depth(value) > MAX_DEPTH:
        raise errors.DefinitionError(_JsonScan(text, file).run().problems)
    return Tree(value, Positions(scan=lambda: _JsonScan(text, file).run().positions))


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
        self.positions = Positions()
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
            self.report(offset, _duplicate(string, first, position))
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
