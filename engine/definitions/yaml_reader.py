"""Read YAML text into plain JSON values with the position of each, refusing what JSON lacks.

YAML is read from the parser's event stream rather than through ``yaml.compose``: the loop
below is iterative, so no document can exhaust the Python stack, and it sees every anchor and
alias, so recursive aliases and alias bombs are refused instead of expanded. Tags, timestamps
and YAML 1.1 booleans that would turn an author's text into something other than JSON are
refused or read as YAML 1.2 reads them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

import yaml

from cairn import errors
from cairn.definitions import messages, source
from cairn.definitions.source import MAX_DEPTH, Path, Position

# Aliases can make a small file stand for a huge value ("billion laughs"); this bounds the
# value every later stage walks, counted after expanding aliases.
MAX_VALUES = 500_000

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


def parse(text: str, file: str) -> source.Tree:
    """Parse one YAML document; raise DefinitionError listing what makes it no definition."""
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
        reader.report((1, 1), source.EMPTY)
    if reader.problems:
        raise errors.DefinitionError(reader.problems)
    return source.Tree(reader.root, reader.positions)


class _Stop(Exception):
    """Raised inside the reader to abandon a document after recording why."""


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
        self.positions = source.Positions()
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
            self.stop(
                position, f"{messages.shorten(event.value, 40)!r} is not a valid {_short_tag(tag)}"
            )
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
                integer = _SCALARS.construct_yaml_int(yaml.ScalarNode(tag, text))
                if source.big_integer(integer):
                    self.report(position, f"{messages.shorten(text, 40)} is {source.BIG_INTEGER}")
                return integer
            if tag == _YAML + "float":
                number = _SCALARS.construct_yaml_float(yaml.ScalarNode(tag, text))
                if not math.isfinite(number):
                    self.stop(position, f"{messages.shorten(text, 40)!r} is not a JSON number")
                return number
        except ValueError:
            # YAML 1.1 accepts forms such as 0b_ that Python cannot convert.
            self.stop(position, f"{messages.shorten(text, 40)!r} is not a valid number")
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
            self.report(
                frame.key_position, messages.duplicate_key(frame.key, first, frame.key_position)
            )
            return
        frame.value[frame.key] = value
        if frame.child is not None:
            self.positions.keys[frame.child] = frame.key_position

    def apply_merges(self, frame: _Frame) -> None:
        """Apply YAML merge keys (``<<: *defaults``): keys written out win over merged ones."""
        for value, position in frame.merges:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(mapping, dict) for mapping in sources):
                self.report(position, "a merge key (<<) takes a mapping or a list of mappings")
                continue
            for mapping in sources:
                for key, item in mapping.items():
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


def _yaml_problem(exc: yaml.YAMLError, text: str, file: str) -> errors.Problem:
    if isinstance(exc, yaml.reader.ReaderError):
        # libyaml reports a byte offset into the UTF-8 text, the Python reader a character one.
        before = (
            text.encode("utf-8")[: exc.position].decode("utf-8", "replace")
            if _BaseLoader is not yaml.SafeLoader
            else text[: exc.position]
        )
        line, column = source.position_after(before)
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


def _mark(event: Any) -> Position:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1)


def _short_tag(tag: str | None) -> str:
    return "!!" + tag[len(_YAML) :] if tag and tag.startswith(_YAML) else str(tag)
