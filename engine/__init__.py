"""Cairn: a durable, declarative state-machine workflow engine.

The public API: ``activity`` and ``ActivityError`` for handler authors, ``Context`` for what
a handler receives, ``open_service`` for programs that deploy, start and inspect
executions, and ``workflow`` with ``Flow``, ``Value``, ``Retry``, ``Catch``, ``Undo``,
``Errors`` and ``fn`` for flows written in Python.
"""

from engine.activities import ActivityError, activity
from engine.adapter import Workflow, workflow
from engine.flow import Flow
from engine.flowspec import Catch, Errors, Retry, Undo
from engine.invoke import Context
from engine.service import Service, open_service
from engine.symbolic import Value, fn

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
