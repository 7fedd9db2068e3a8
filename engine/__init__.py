"""Cairn: a durable, declarative state-machine workflow engine.

The public API: ``activity`` and ``ActivityError`` for handler authors, ``Context`` for what
a handler receives, ``open_service`` for programs that deploy, start and inspect
executions, and ``workflow`` with ``Flow``, ``Value``, ``Retry``, ``Catch``, ``Undo``,
``Errors`` and ``fn`` for flows written in Python.

Each name is imported when it is first used, so that ``import cairn`` (and every ``cairn``
command, which imports this package first) does not pay for SQLAlchemy, the schema
validator and the code-workflow adapter until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cairn.activities import ActivityError, activity
    from cairn.codeflow.adapter import Workflow, workflow
    from cairn.codeflow.flow import Flow
    from cairn.codeflow.options import Catch, Errors, Retry, Undo
    from cairn.codeflow.symbolic import Value, fn
    from cairn.runtime.invoke import Context
    from cairn.runtime.service import Service, open_service

_WHERE = {
    "ActivityError": "cairn.activities",
    "activity": "cairn.activities",
    "Workflow": "cairn.codeflow.adapter",
    "workflow": "cairn.codeflow.adapter",
    "Flow": "cairn.codeflow.flow",
    "Catch": "cairn.codeflow.options",
    "Errors": "cairn.codeflow.options",
    "Retry": "cairn.codeflow.options",
    "Undo": "cairn.codeflow.options",
    "Value": "cairn.codeflow.symbolic",
    "fn": "cairn.codeflow.symbolic",
    "Context": "cairn.runtime.invoke",
    "Service": "cairn.runtime.service",
    "open_service": "cairn.runtime.service",
}

__all__ = [
    "ActivityError",
    "Catch",
    "Context",
    "Errors",
    "Flow",
    "Retry",
    "Service",
    "Undo",
    "Value",
    "Workflow",
    "activity",
    "fn",
    "open_service",
    "workflow",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cairn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
