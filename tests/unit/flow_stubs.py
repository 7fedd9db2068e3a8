"""Activities that code workflows in the unit tests name: registered, never run."""

from __future__ import annotations

from typing import Any

from cairn import activity


@activity("X")
def x(params: dict[str, Any], ctx: Any) -> None:
    """A stand-in handler."""
