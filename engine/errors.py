"""Exceptions Cairn raises for misuse and infrastructure problems.

Workflow failures (activity errors, timeouts, ``States.*``) are events and state, never
exceptions; the classes here are for what a caller did wrong or what the machine could not do.
Each docstring is the meaning a user sees.
"""

from __future__ import annotations

from dataclasses import dataclass


class CairnError(Exception):
    """Something Cairn could not do; the message says what and where."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One mistake in a definition, with where it is."""

    file: str
    line: int
    column: int
    message: str
    path: str = ""

    def __str__(self) -> str:
        where = f" (at {self.path})" if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {self.message}{where}"


class DefinitionError(CairnError):
    """The definition is not valid; every problem found is listed, one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class NotFound(CairnError):
    """No such execution, workflow or version."""

    exit_code = 2


class InvalidInput(CairnError):
    """The input does not fit the workflow (InputSchema, JSON, size); nothing was started."""

    exit_code = 2


class UnknownTaskToken(CairnError):
    """No task waits for this token: unknown, or already completed, timed out or cancelled."""

    exit_code = 1


class Conflict(CairnError):
    """The request contradicts what is recorded (a different definition or input)."""

    exit_code = 1
