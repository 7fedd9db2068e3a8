"""The activity registry: handlers are found by name, never by Python path.

A definition names an activity (``Activity: ChargeCard``); the worker looks the name up here.
Keeping the name separate from the import path lets teams move and rename code without
touching deployed definitions.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from cairn import errors

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)


class ActivityError(Exception):
    """Raised by a handler to fail its task with a chosen error name and cause."""

    def __init__(self, name: str, cause: str = "", *, retryable: bool = True) -> None:
        super().__init__(f"{name}: {cause}" if cause else name)
        self.name = name
        self.cause = cause
        self.retryable = retryable


class Registry(Mapping[str, Handler]):
    """Activity handlers by name; registering a second handler under one name is refused."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        existing = self._handlers.get(name)
        if existing is not None and existing is not handler:
            raise errors.CairnError(
                f"activity {name!r} is registered twice ({_where(existing)} and {_where(handler)})"
            )
        self._handlers[name] = handler

    def __getitem__(self, name: str) -> Handler:
        return self._handlers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


def _where(handler: Handler) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', '?')}"


registry = Registry()
"""The process-wide registry that ``@activity`` fills and the worker reads."""


def activity(name: str) -> Callable[[H], H]:
    """Register the decorated function as the handler of activity ``name``."""

    def register(handler: H) -> H:
        registry.register(name, handler)
        return handler

    return register


DEFAULT_MODULE = "activities"
"""The package a worker imports when told nothing else: the name the README teaches."""
MODULES_VARIABLE = "CAIRN_ACTIVITIES"
"""Environment variable naming the modules to import instead (comma-separated)."""


def load(modules: Sequence[str] = (), paths: Sequence[str] = ()) -> Registry:
    """Import the modules that register activities and return the registry.

    Like ``celery`` and ``rq worker``, the modules are looked for in the current directory
    (then in ``paths``) before anything installed, so a user runs ``cairn worker`` in their
    project folder with no ``PYTHONPATH``, and their own ``activities`` package is the one
    imported. With no ``modules``, ``CAIRN_ACTIVITIES`` names them, else ``activities``.
    """
    search_first(paths)
    if not modules:
        configured = os.environ.get(MODULES_VARIABLE, "")
        modules = [m.strip() for m in configured.split(",") if m.strip()] or [DEFAULT_MODULE]
    for module in modules:
        import_module(module)
    return registry


def search_first(paths: Sequence[str] = ()) -> None:
    """Put the current directory, then ``paths``, at the front of the module search path."""
    for entry in reversed([os.getcwd(), *(os.path.abspath(p) for p in paths)]):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)


def import_module(module: str) -> Registry:
    """Import ``module`` so that its ``@activity`` handlers register; return the registry."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        hint = ""
        if exc.name == module.partition(".")[0]:
            hint = (
                f" (looked in {os.getcwd()} and the installed packages; name the module with"
                f" --activities or {MODULES_VARIABLE}, or add its folder with --path)"
            )
        raise errors.CairnError(f"cannot import activities module {module!r}: {exc}{hint}") from exc
    return registry
