"""The shell around the interpreter: database, tables, store, leases, wake-ups, the worker.

Everything here does I/O on behalf of ``cairn.core``: it loads an execution, asks the decider
what happens next, and writes the new events, tasks and timers in one transaction. All SQL
lives in ``store`` (and ``tables`` for the schema). It may import ``cairn.core`` and
``cairn.definitions``; nothing in the core imports it.
"""
