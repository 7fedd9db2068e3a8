"""Cairn: a durable, declarative state-machine workflow engine.

The public API: ``activity`` and ``ActivityError`` for handler authors, ``Context`` for what
a handler receives, and ``open_service`` for programs that deploy, start and inspect
executions.
"""

from engine.activities import ActivityError, activity
from engine.invoke import Context
from engine.service import Service, open_service

__all__ = ["ActivityError", "Context", "Service", "activity", "open_service"]
