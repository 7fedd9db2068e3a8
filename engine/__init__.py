"""Cairn: a durable, declarative state-machine workflow engine.

The public API: ``activity`` and ``ActivityError`` for handler authors, ``Context`` for what
a handler receives, ``open_client`` (a ``Client``) for programs that deploy, start and
inspect executions, ``Worker`` to run activities in a program of one's own, and
``workflow`` with ``Flow``, ``Value``, ``Retry``, ``Catch``, ``Undo``, ``Errors`` and ``fn``
for flows written in Python.

Each name is imported when it is first used, so that ``import cairn`` (and every ``cairn``
command, which imports this package first) does not pay for SQLAlchemy, the schema
validator and the code-workflow adapter until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cairn.activities import ActivityError, activity
    from cairn.client import Client, open_client
    from cairn.codeflow.adapter import Workflow, workflow
    from cairn.codeflow.flow import Flow
    from cairn.codeflow.options import Catch, Errors, Retry, Undo
    from cairn.codeflow.symbolic import Value, fn
    from cairn.runtime.invoke import Context
    from cairn.runtime.worker import Worker

_WHERE = {
    "ActivityError": "cairn.activities",
    "activity": "cairn.activities",
    "Client": "cairn.client",
    "open_client": "cairn.client",
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
    "Worker": "cairn.runtime.worker",
}

__all__ = [
    "ActivityError",
    "Catch",
    "Client",
    "Context",
    "Errors",
    "Flow",
    "Retry",
    "Undo",
    "Value",
    "Worker",
    "Workflow",
    "activity",
    "fn",
    "open_client",
    "workflow",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cairn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
