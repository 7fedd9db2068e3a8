"""The JSON value type that every layer passes around: inputs, outputs, payloads, details."""

from __future__ import annotations

from typing import TypeAlias

JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None
"""A JSON value: dict, list, str, int, float, bool or None."""
