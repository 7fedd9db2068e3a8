"""The JSON value type that every layer passes around: inputs, outputs, payloads, details."""

from __future__ import annotations

from typing import Any

JSON = Any
"""A JSON value: dict, list, str, int, float, bool or None."""
