"""This repository's activity handlers; importing the package registers them all by name."""

from activities import orders

__all__ = ["orders"]
