"""Cairn: a durable, declarative state-machine workflow engine."""
