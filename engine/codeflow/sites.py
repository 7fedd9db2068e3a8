"""Where in the user's code: the file, line and column a code workflow's problem points at.

A code workflow is built by running the user's function, so a mistake is found while that
function runs (or just after). Reporting it at the adapter's own line would help no one:
these helpers find the user's frame (the innermost one outside the adapter), the line a
function returned from, and the ``return``/``break`` statements that would leave a
``with flow.if_()`` block at deploy time and silently drop the rest of a branch.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
import os
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, NoReturn

from cairn import errors

INTERNAL_FILES: set[str] = set()
"""The adapter's own modules (each adds itself): a user's site is any frame outside them."""

_LIBRARIES = tuple(
    os.path.abspath(p) for p in {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")}
)


def internal(file: str) -> None:
    """Declare a module file part of the adapter."""
    INTERNAL_FILES.add(os.path.abspath(file))


@dataclass(frozen=True, slots=True)
class Site:
    """A place in the user's code: file, line and column (1-based)."""

    file: str
    line: int
    column: int

    def problem(self, message: str, path: str = "") -> errors.Problem:
        return errors.Problem(
            file=self.file, line=self.line, column=self.column, message=message, path=path
        )

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


UNKNOWN = Site("<unknown>", 0, 0)


def shown_file(file: str) -> str:
    """A file as people want to read it: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(file)
    except ValueError:  # another drive on Windows
        return file
    return file if relative.startswith(os.pardir) else relative


def frame_site(frame: FrameType) -> Site:
    """The site of the instruction a frame is executing."""
    line, column = frame.f_lineno, 0
    positions = getattr(frame.f_code, "co_positions", None)
    if positions is not None and frame.f_lasti >= 0:
        # Python 3.11+: the column of the very expression being run.
        start_line, _, start_column, _ = list(positions())[frame.f_lasti // 2]
        if start_line is not None and start_column is not None:
            line, column = start_line, start_column + 1
    if column == 0:
        text = linecache.getline(frame.f_code.co_filename, line)
        column = len(text) - len(text.lstrip()) + 1
    return Site(shown_file(frame.f_code.co_filename), line, column)


def user_frame() -> FrameType | None:
    """The innermost frame of the user's code (outside the adapter's own modules)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename) in INTERNAL_FILES:
        frame = frame.f_back
    return frame


def user_site() -> Site:
    """Where the user's code called into the adapter."""
    frame = user_frame()
    return frame_site(frame) if frame is not None else UNKNOWN


def refuse(message: str) -> NoReturn:
    """Stop the build: the user's code did something that cannot work at deploy time."""
    raise errors.DefinitionError([user_site().problem(message)])


def raised_at(exc: BaseException, fallback: Site) -> Site:
    """The user's line an exception came from: its innermost frame in their own code."""
    frames = []
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        file = os.path.abspath(tb.tb_frame.f_code.co_filename)
        if file not in INTERNAL_FILES:
            frames.append((tb, file))
        tb = tb.tb_next
    own = [(t, f) for t, f in frames if not f.startswith(_LIBRARIES)]
    chosen = own or frames
    if isinstance(exc, SyntaxError) and exc.filename:
        return Site(shown_file(exc.filename), exc.lineno or 0, exc.offset or 0)
    if not chosen:
        return fallback
    tb, _ = chosen[-1]
    site = frame_site(tb.tb_frame)
    return Site(site.file, tb.tb_lineno, site.column if site.line == tb.tb_lineno else 1)


def call(
    function: Callable[..., object], arguments: tuple[object, ...]
) -> tuple[object, Site | None]:
    """Call a user function; also return the site of the ``return`` that ended it."""
    code = getattr(function, "__code__", None)
    returned: list[Site] = []
    previous: Any = sys.getprofile()

    def watch(frame: Any, event: str, arg: object) -> None:
        if event == "return" and frame.f_code is code:
            returned.append(frame_site(frame))
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(watch)
    try:
        output = function(*arguments)
    finally:
        sys.setprofile(previous)
    return output, returned[-1] if returned else None


def parameters(function: Callable[..., Any]) -> list[str]:
    """The names of a function's positional parameters (for Map items and handlers)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in signature.parameters.values() if p.kind in kinds]


# --- Python statements that would run at deploy time ---------------------------------------


@functools.lru_cache(maxsize=64)
def _module_tree(file: str, size: int) -> ast.Module | None:
    source = "".join(linecache.getlines(file))
    try:
        return ast.parse(source, file) if source else None
    except SyntaxError:
        return None


def escaping_statement(frame: FrameType, block: str) -> errors.Problem | None:
    """A ``return``, ``break`` or ``continue`` that would leave the ``with`` block entered now.

    The function runs once, at deploy: such a statement would stop building the flow in
    the middle of a branch and drop the steps after the block without a word.
    """
    file = frame.f_code.co_filename
    tree = _module_tree(file, len(linecache.getlines(file)))
    if tree is None:
        return None
    line = frame_site(frame).line
    candidates = [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.With, ast.AsyncWith))
        and any(
            item.context_expr.lineno <= line <= (item.context_expr.end_lineno or line)
            for item in node.items
        )
    ]
    if not candidates:
        return None
    found = _escape(max(candidates, key=lambda n: n.lineno).body, in_loop=False)
    if found is None:
        return None
    keyword = type(found).__name__.lower()
    advice = (
        "end this path with flow.end(value), flow.fail(...) or flow.succeed(...) instead"
        if keyword == "return"
        else "a loop in the flow is written `with flow.while_(condition):`"
    )
    message = (
        f"`{keyword}` inside `with flow.{block}` would run at deploy time, stop building "
        f"this branch and drop the steps after the block; {advice}"
    )
    return Site(shown_file(file), found.lineno, found.col_offset + 1).problem(message)


def _escape(statements: list[ast.stmt], *, in_loop: bool) -> ast.stmt | None:
    for statement in statements:
        if isinstance(statement, ast.Return):
            return statement
        if isinstance(statement, (ast.Break, ast.Continue)) and not in_loop:
            return statement
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        loop = isinstance(statement, (ast.For, ast.AsyncFor, ast.While))
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(statement, field, None)
            if not isinstance(children, list):
                continue
            inner_loop = in_loop or (loop and field == "body")
            for child in children:
                nested = (
                    child.body
                    if isinstance(child, (ast.ExceptHandler, ast.match_case))
                    else [child]
                )
                found = _escape(nested, in_loop=inner_loop)
                if found is not None:
                    return found
    return None


internal(__file__)
